"""Contextual decomposition (CD) and decompositional interdependence (DI) of LSTM LMs.

Model-specific: the kernels read parameters in the layout of
:mod:`jaxdyn.models.lstm` (PyTorch gate order i, f, g, o).

- :mod:`~jaxdyn.decompose.lstm.forward`: plain per-sequence forward (``forward``,
  ``forward_layer``, ``zero_carry_single``).
- :mod:`~jaxdyn.decompose.lstm.cd`: ``contextual_decomposition``, ``cd_batch``,
  ``CDResult``, ``SPAN_BIAS``.
- :mod:`~jaxdyn.decompose.lstm.interdependence`: ``interdependence``,
  ``interdependence_batch``, ``span_beta``, ``all_pairs``,
  ``all_pairs_interdependence``; the packed span schedule lives in
  :mod:`~jaxdyn.decompose.lstm.di_schedule` (host side) and
  :mod:`~jaxdyn.decompose.lstm.di_packed` (compiled kernel).

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020), Findings of
  EMNLP, Eq. 1 (DI).
"""

from jaxdyn.decompose.lstm.cd import SPAN_BIAS, CDResult, cd_batch, contextual_decomposition
from jaxdyn.decompose.lstm.forward import forward, forward_layer, zero_carry_single
from jaxdyn.decompose.lstm.interdependence import (
    SCHEDULES,
    SPACES,
    DIParts,
    all_pairs,
    all_pairs_interdependence,
    interdependence,
    interdependence_batch,
    span_beta,
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
