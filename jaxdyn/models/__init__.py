"""Flax LSTM language models and taggers with explicit gates (PyTorch layout)."""

from jaxdyn.models.convert import from_torch_state_dict, to_torch_state_dict
from jaxdyn.models.lstm import (
    GATES,
    LSTMLanguageModel,
    LSTMLayer,
    LSTMSequenceModel,
    LSTMTagger,
    decoder_weight,
    language_model,
    layer_names,
    lm_apply,
    lstm_layer_scan,
    share_initialisation,
    tagger,
    zero_carry,
)

__all__ = [
    "GATES",
    "LSTMLanguageModel",
    "LSTMLayer",
    "LSTMSequenceModel",
    "LSTMTagger",
    "decoder_weight",
    "from_torch_state_dict",
    "language_model",
    "layer_names",
    "lm_apply",
    "lstm_layer_scan",
    "share_initialisation",
    "tagger",
    "to_torch_state_dict",
    "zero_carry",
]
