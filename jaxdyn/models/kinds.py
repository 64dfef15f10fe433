"""What the model-agnostic studies need to know of a model family, by instance.

The studies select tapped tensors by name (``CaptureSpec.modules``): the word
representations are ``embedding`` and the layers' outputs, which the LSTM taps as
``lstm_{l}`` and the Transformer as ``block_{l}`` (its residual stream after block l).
A model of another family can define ``layer_prefix`` and ``share_initialisation``
(as a static method) itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxdyn.models import lstm, transformer


def layer_prefix(model: Any) -> str:
    """The trace-name prefix of the model's layer outputs (``lstm`` or ``block``)."""
    if isinstance(model, transformer.TransformerSequenceModel):
        return "block"
    if isinstance(model, lstm.LSTMSequenceModel):
        return "lstm"
    prefix = getattr(model, "layer_prefix", None)
    if not isinstance(prefix, str):
        raise TypeError(
            f"{type(model).__name__} is neither the LSTM nor the Transformer and defines no "
            "layer_prefix (the trace-name prefix of its layer outputs)"
        )
    return prefix


def layer_index(name: str) -> int:
    """Layer ``l`` of a trace name ``<prefix>_{l}`` (``lstm_1`` -> 1, ``block_0`` -> 0)."""
    return int(name.split(".")[0].rsplit("_", 1)[1])


def share_initialisation(
    model: Any, lm_params: Mapping[str, Any], tagger_params: Mapping[str, Any]
) -> dict[str, Any]:
    """Tagger parameters starting from a language model's body, for the tagger's family."""
    if isinstance(model, transformer.TransformerSequenceModel):
        return transformer.share_initialisation(lm_params, tagger_params)
    if isinstance(model, lstm.LSTMSequenceModel):
        return lstm.share_initialisation(lm_params, tagger_params)
    fn = getattr(model, "share_initialisation", None)
    if fn is None:
        raise TypeError(f"{type(model).__name__} defines no share_initialisation")
    return fn(lm_params, tagger_params)
