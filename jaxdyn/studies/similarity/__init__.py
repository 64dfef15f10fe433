"""Representation similarity of a language model and taggers over training (SVCCA chapter).

Modules: ``config`` (``similarity.*`` keys), ``runs`` (data, training, activations),
``compute`` (comparisons through ``jaxdyn.analysis.pairwise``), ``probes``, ``findings``
(the verdict rules), ``report`` (tables, plots, section, stage).
"""
