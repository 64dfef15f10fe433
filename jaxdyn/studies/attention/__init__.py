"""Syntactic attention structure over training (Chen et al. 2024) on a Transformer run.

Modules: ``config`` (``attention.*`` keys), ``compute`` (EWT sentences, attachment
counts per checkpoint, layer and head), ``findings`` (best head per layer, onset,
verdicts), ``report`` (table, plot, section, stage).
"""
