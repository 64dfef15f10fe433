"""Model-specific attribution: decompositions of a model's states into parts.

Model-agnostic measures over the parts (e.g. :func:`jaxdyn.analysis.interactions.di_ratio`)
live in :mod:`jaxdyn.analysis`; the code here knows a model's parameter layout.

- :mod:`jaxdyn.decompose.lstm`: contextual decomposition (CD) and decompositional
  interdependence (DI) of LSTM language models, with packed span schedules.
- :mod:`jaxdyn.decompose.transformer`: CD-T and DI of Transformer language models
  (same DI signatures plus ``heads`` and CD-T's rule options).
- :func:`engine`: the module for a ``model.kind``, so code written against one
  engine's ``interdependence_batch``/``cd_batch`` runs on either.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020), Findings of
  EMNLP, Eq. 1 (DI); Hsu et al. (2025), ICLR, Sec. 3 (CD-T).
"""

import functools
import importlib
from types import ModuleType

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

#: Model kinds with a decomposition engine (``model.kind``).
KINDS = ("lstm", "transformer")


def engine(kind: str) -> ModuleType:
    """The decomposition engine of a model kind: :mod:`jaxdyn.decompose.lstm` or
    :mod:`jaxdyn.decompose.transformer`. Both provide ``contextual_decomposition``,
    ``cd_batch``, ``interdependence``, ``interdependence_batch`` and
    ``all_pairs_interdependence`` with the same arguments and results (the
    Transformer's also take ``heads=model.heads``).

    Raises:
      ValueError: an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"no decomposition engine for model kind {kind!r}; known: {KINDS}")
    return importlib.import_module(f"jaxdyn.decompose.{kind}")


def interdependence_batch_for(kind: str, heads: int | None = None):
    """``engine(kind).interdependence_batch`` with the model's ``heads`` bound when the
    kind needs them (the Transformer's CD-T), so callers need not special-case it."""
    fn = engine(kind).interdependence_batch
    return fn if kind == "lstm" else functools.partial(fn, heads=heads)


__all__ = [
    "KINDS",
    "SCHEDULES",
    "SPACES",
    "SPAN_BIAS",
    "CDResult",
    "DIParts",
    "all_pairs",
    "all_pairs_interdependence",
    "cd_batch",
    "contextual_decomposition",
    "engine",
    "forward",
    "forward_layer",
    "interdependence",
    "interdependence_batch",
    "interdependence_batch_for",
    "span_beta",
    "zero_carry_single",
]
