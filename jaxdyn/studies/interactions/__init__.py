"""Decompositional interdependence of word pairs against syntax (thesis, feature interactions).

Modules: ``config`` (``interactions.*`` keys), ``pairs`` (word pairs and padded batches),
``compute`` (training, DI tables), ``findings`` (the verdict rule), ``report``.
"""
