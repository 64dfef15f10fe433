"""Analysis kernels: pure, jit/vmap-able functions over arrays (samples first).

- sparsity: ``te_norm``, ``gini``, ``hoyer``, ``zero_fraction``, ``dead_fraction``,
  ``token_statistics``; streaming per-word-type moments in ``per_type``.
- similarity: ``cca``, ``svcca``, ``pwcca``, ``google_cca_summary``, ``linear_cka``,
  ``rbf_cka``, minibatch CKA and covariance CCA accumulators, ``pairwise``.
- interactions: ``contextual_decomposition``, ``cd_batch``, ``interdependence``,
  ``interdependence_batch``, ``all_pairs_interdependence``.
"""

from jaxdyn.analysis.cd import CDResult, cd_batch, contextual_decomposition
from jaxdyn.analysis.cka import (
    linear_cka,
    minibatch_cka_finalize,
    minibatch_cka_init,
    minibatch_cka_update,
    rbf_cka,
)
from jaxdyn.analysis.interdependence import (
    all_pairs,
    all_pairs_interdependence,
    interdependence,
    interdependence_batch,
    span_beta,
)
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
    google_cca_summary,
    pwcca,
    svcca,
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
    "CDResult",
    "aggregate_finalize",
    "aggregate_init",
    "aggregate_update",
    "all_pairs",
    "all_pairs_interdependence",
    "cca",
    "cca_accumulate_finalize",
    "cca_accumulate_init",
    "cca_accumulate_update",
    "cd_batch",
    "contextual_decomposition",
    "dead_fraction",
    "dead_units",
    "gini",
    "google_cca_summary",
    "hoyer",
    "interdependence",
    "interdependence_batch",
    "l1_norm",
    "l2_norm",
    "linear_cka",
    "minibatch_cka_finalize",
    "minibatch_cka_init",
    "minibatch_cka_update",
    "pairwise",
    "per_type_finalize",
    "per_type_init",
    "per_type_update",
    "pwcca",
    "rbf_cka",
    "span_beta",
    "stats_from_trace",
    "svcca",
    "te_norm",
    "token_statistics",
    "zero_fraction",
]
