"""Sparsity of activations and gradients per word type over training (thesis chapter 3).

Modules: ``config`` (``sparsity.*`` keys), ``compute`` (per-type trajectories on
device), ``findings`` (the verdict rules), ``report`` (tables, plots, section, stage).
"""
