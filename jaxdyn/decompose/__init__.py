"""Model-specific attribution: decompositions of a model's states into parts.

Model-agnostic measures over the parts (e.g. :func:`jaxdyn.analysis.interactions.di_ratio`)
live in :mod:`jaxdyn.analysis`; the code here knows a model's parameter layout.

- :mod:`jaxdyn.decompose.lstm`: contextual decomposition (CD) and decompositional
  interdependence (DI) of LSTM language models, with packed span schedules.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020), Findings of
  EMNLP, Eq. 1 (DI).
"""

from jaxdyn.decompose.lstm import (
    SCHEDULES,
    SPACES,
    SPAN_BIAS,
    CDResult,
    DIParts,
    all_pairs,
    all_pairs_interdependence,
    cd_batch,
    contextual_decomposition,
    forward,
    forward_layer,
    interdependence,
    interdependence_batch,
    span_beta,
    zero_carry_single,
)

__all__ = [
    "SCHEDULES",
    "SPACES",
    "SPAN_BIAS",
    "CDResult",
    "DIParts",
    "all_pairs",
    "all_pairs_interdependence",
    "cd_batch",
    "contextual_decomposition",
    "forward",
    "forward_layer",
    "interdependence",
    "interdependence_batch",
    "span_beta",
    "zero_carry_single",
]
