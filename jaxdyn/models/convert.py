"""Conversion between jaxdyn parameter trees and PyTorch ``state_dict`` naming.

PyTorch's word_language_model names: ``encoder.weight``, ``rnn.weight_ih_l{k}``,
``rnn.weight_hh_l{k}``, ``rnn.bias_ih_l{k}``, ``rnn.bias_hh_l{k}``,
``decoder.weight``, ``decoder.bias``. Values are NumPy arrays on the way out and
anything ``np.asarray`` accepts (torch tensors included, via ``.numpy()``) on the
way in, so this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxdyn.models.lstm import layer_names

_RNN_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def to_torch_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flatten a jaxdyn parameter tree into PyTorch ``state_dict`` names (NumPy values)."""
    sd = {"encoder.weight": np.asarray(params["encoder"]["weight"])}
    for name in layer_names(params):
        k = name[1:]
        for key in _RNN_KEYS:
            sd[f"rnn.{key}_l{k}"] = np.asarray(params["rnn"][name][key])
    if "weight" in params["decoder"]:
        sd["decoder.weight"] = np.asarray(params["decoder"]["weight"])
    else:  # tied: PyTorch stores the shared tensor under both names
        sd["decoder.weight"] = sd["encoder.weight"]
    sd["decoder.bias"] = np.asarray(params["decoder"]["bias"])
    return sd


def _as_numpy(v) -> np.ndarray:
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float32)


def from_torch_state_dict(sd: Mapping[str, Any], *, tie_weights: bool = False) -> dict[str, Any]:
    """Build a jaxdyn parameter tree from PyTorch ``state_dict`` names.

    Args:
      sd: mapping with the names listed in the module docstring. The LSTM part may
        also be a bare ``torch.nn.LSTM`` ``state_dict`` merged in (``weight_ih_l0``
        etc. without the ``rnn.`` prefix), next to ``encoder.*``/``decoder.*``.
      tie_weights: drop ``decoder.weight`` (must then equal ``encoder.weight``).

    Raises:
      KeyError: a required name is missing (the message lists what is there).
    """
    keys = set(sd)
    missing = {"encoder.weight", "decoder.bias"} - keys
    if missing:
        raise KeyError(f"state dict lacks {sorted(missing)}; has {sorted(keys)}")
    prefix = "rnn." if any(k.startswith("rnn.weight_ih_l") for k in keys) else ""
    layers = sorted(
        {int(k.rsplit("_l", 1)[1]) for k in keys if k.startswith(f"{prefix}weight_ih_l")}
    )
    if not layers or layers != list(range(len(layers))):
        raise KeyError(
            f"state dict has no consecutive rnn.weight_ih_l* (or bare weight_ih_l*) layers: "
            f"{sorted(keys)}"
        )
    rnn = {
        f"l{k}": {key: _as_numpy(sd[f"{prefix}{key}_l{k}"]) for key in _RNN_KEYS} for k in layers
    }
    decoder = {"bias": _as_numpy(sd["decoder.bias"])}
    if tie_weights:
        if "decoder.weight" in sd and not np.array_equal(
            _as_numpy(sd["decoder.weight"]), _as_numpy(sd["encoder.weight"])
        ):
            raise ValueError("tie_weights=True but decoder.weight differs from encoder.weight")
    else:
        decoder["weight"] = _as_numpy(sd["decoder.weight"])
    return {"encoder": {"weight": _as_numpy(sd["encoder.weight"])}, "rnn": rnn, "decoder": decoder}
