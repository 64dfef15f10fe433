"""jaxdyn: training dynamics of neural language models in JAX."""

__version__ = "0.1.0"
