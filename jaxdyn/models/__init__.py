"""Models: Flax LSTM language models and taggers with explicit gates (PyTorch layout),
and the tap helper and model protocol any Flax model uses to be trained and traced."""

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
from jaxdyn.models.taps import apply_model, initial_carry, is_recurrent, tap

__all__ = [
    "GATES",
    "LSTMLanguageModel",
    "LSTMLayer",
    "LSTMSequenceModel",
    "LSTMTagger",
    "apply_model",
    "decoder_weight",
    "from_torch_state_dict",
    "initial_carry",
    "is_recurrent",
    "language_model",
    "layer_names",
    "lm_apply",
    "lstm_layer_scan",
    "share_initialisation",
    "tagger",
    "tap",
    "to_torch_state_dict",
    "zero_carry",
]
