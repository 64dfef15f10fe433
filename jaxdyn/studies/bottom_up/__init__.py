"""Bottom-up composition on synthetic bracket languages (Saphra & Lopez 2020, Sec. 5).

Modules: ``config`` (``bottom_up.*`` keys), ``compute`` (training, measures at the
closing symbol), ``findings`` (the verdict rules), ``report`` (tables, plots, section).
"""
