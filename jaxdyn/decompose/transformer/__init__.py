"""Contextual decomposition (CD-T) and decompositional interdependence (DI) of Transformer LMs.

Model-specific: the kernels read parameters in the layout of
:mod:`jaxdyn.models.transformer` and reuse its pure forward functions.

- :mod:`~jaxdyn.decompose.transformer.rules`: the propagation rules (documented there).
- :mod:`~jaxdyn.decompose.transformer.cd`: ``contextual_decomposition``, ``cd_batch``,
  ``CDResult``.
- :mod:`~jaxdyn.decompose.transformer.interdependence`: ``interdependence``,
  ``interdependence_batch``, ``all_pairs_interdependence`` (the LSTM engine's
  signatures plus ``heads`` and the rule options); its compiled beta-only kernel is
  :mod:`~jaxdyn.decompose.transformer.di_kernel`.

References:
  Hsu et al. (2025), "Efficient automated circuit discovery in transformers using
  contextual decomposition", ICLR, Sec. 3; Saphra & Lopez (2020), Findings of EMNLP,
  Eq. 1 (DI).
"""

from jaxdyn.decompose.transformer.cd import CDResult, cd_batch, contextual_decomposition
from jaxdyn.decompose.transformer.interdependence import (
    SCHEDULES,
    all_pairs_interdependence,
    interdependence,
    interdependence_batch,
)
from jaxdyn.decompose.transformer.rules import ACTIVATIONS, BIAS, POSITIONS

__all__ = [
    "ACTIVATIONS",
    "BIAS",
    "POSITIONS",
    "SCHEDULES",
    "CDResult",
    "all_pairs_interdependence",
    "cd_batch",
    "contextual_decomposition",
    "interdependence",
    "interdependence_batch",
]
