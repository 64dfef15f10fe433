"""Analysis kernels: pure, jit/vmap-able functions over arrays (samples first).

- sparsity: ``te_norm``, ``gini``, ``hoyer``, ``zero_fraction``, ``dead_fraction``,
  ``token_statistics``; streaming per-word-type moments in ``per_type``.
- similarity: ``cca``, ``svcca``, ``pwcca`` (conventions "paper" and "google"),
  ``google_cca_summary``, ``linear_cka``, ``rbf_cka``, minibatch CKA and covariance CCA
  accumulators, ``pairwise`` (all or listed pairs); the per-view factors and per-pair
  steps they are built from (``cca_factor`` + ``cca_pair`` / ``svcca_pair`` /
  ``pwcca_pair``, ``google_factor`` + ``google_pair`` / ``google_pwcca_pair``,
  ``linear_cka_factor`` + ``linear_cka_pair``).
- interactions: ``di_ratio``, ``di_ratio_linear`` (decompositional interdependence of
  given parts, or of their images under a linear map). The
  LSTM decompositions (CD, DI) live in :mod:`jaxdyn.decompose`; their old names here
  are deprecated aliases.
"""

from jaxdyn.analysis.cka import (
    linear_cka,
    linear_cka_factor,
    linear_cka_pair,
    minibatch_cka_finalize,
    minibatch_cka_init,
    minibatch_cka_update,
    rbf_cka,
)
from jaxdyn.analysis.interactions import di_ratio, di_ratio_linear
from jaxdyn.analysis.pairwise import pairwise
from jaxdyn.analysis.per_type import (
    aggregate_finalize,
    aggregate_init,
    aggregate_update,
    per_type_finalize,
    per_type_init,
    per_type_update,
    stats_from_trace,
)
from jaxdyn.analysis.similarity import (
    cca,
    cca_accumulate_finalize,
    cca_accumulate_init,
    cca_accumulate_update,
    cca_factor,
    cca_pair,
    google_cca_summary,
    google_factor,
    google_pair,
    google_pwcca_pair,
    pwcca,
    pwcca_pair,
    svcca,
    svcca_pair,
)
from jaxdyn.analysis.sparsity import (
    STATISTICS,
    dead_fraction,
    dead_units,
    gini,
    hoyer,
    l1_norm,
    l2_norm,
    te_norm,
    token_statistics,
    zero_fraction,
)

__all__ = [
    "STATISTICS",
    "aggregate_finalize",
    "aggregate_init",
    "aggregate_update",
    "cca",
    "cca_accumulate_finalize",
    "cca_accumulate_init",
    "cca_accumulate_update",
    "cca_factor",
    "cca_pair",
    "dead_fraction",
    "dead_units",
    "di_ratio",
    "di_ratio_linear",
    "gini",
    "google_cca_summary",
    "google_factor",
    "google_pair",
    "google_pwcca_pair",
    "hoyer",
    "l1_norm",
    "l2_norm",
    "linear_cka",
    "linear_cka_factor",
    "linear_cka_pair",
    "minibatch_cka_finalize",
    "minibatch_cka_init",
    "minibatch_cka_update",
    "pairwise",
    "per_type_finalize",
    "per_type_init",
    "per_type_update",
    "pwcca",
    "pwcca_pair",
    "rbf_cka",
    "stats_from_trace",
    "svcca",
    "svcca_pair",
    "te_norm",
    "token_statistics",
    "zero_fraction",
]

# Deprecated aliases: the LSTM decompositions moved to jaxdyn.decompose (imported
# lazily so that jaxdyn.analysis imports only jax/numpy; see tests/test_layout.py).
_MOVED_TO_DECOMPOSE = (
    "CDResult",
    "all_pairs",
    "all_pairs_interdependence",
    "cd_batch",
    "contextual_decomposition",
    "interdependence",
    "interdependence_batch",
    "span_beta",
)


def __getattr__(name: str):
    if name in _MOVED_TO_DECOMPOSE:
        import warnings

        from jaxdyn import decompose

        warnings.warn(
            f"jaxdyn.analysis.{name} moved to jaxdyn.decompose.{name} "
            f"(from jaxdyn.decompose import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(decompose, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
