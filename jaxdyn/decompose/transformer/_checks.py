"""Input validation of the CD-T and DI entry points (host side; values checked when known).

References:
  Hsu et al. (2025), ICLR, Sec. 3 (the decomposition the checks guard).
"""

from __future__ import annotations

import numpy as np

from jaxdyn.decompose.lstm._checks import host_value
from jaxdyn.models.transformer import block_names


def check_params(params, heads) -> None:
    """ValueError unless ``params`` is a Transformer tree whose width ``heads`` divides."""
    if "embed" not in params or "ln_f" not in params or not block_names(params):
        raise ValueError(
            "params are not a jaxdyn.models.transformer parameter tree (need 'embed', "
            f"'block_0', 'ln_f'); got keys {sorted(params)}"
        )
    d = params["embed"]["weight"].shape[1]
    if not isinstance(heads, int | np.integer) or heads < 1 or d % heads:
        raise ValueError(f"heads must be a positive int dividing d_model {d}, got {heads!r}")


def context_of(params) -> int | None:
    """Longest input of a learned-position model (its position table), None for rotary."""
    return params["pos"]["weight"].shape[0] if "pos" in params else None


def check_tokens(params, tokens, lengths, logit_ids=None) -> None:
    """ValueError for out-of-range token ids, lengths, ``logit_ids``, or more positions
    than the learned context."""
    vocab = params["embed"]["weight"].shape[0]
    c = context_of(params)
    if c is not None and tokens.shape[-1] > c:
        raise ValueError(
            f"input has {tokens.shape[-1]} positions but the model's context (learned "
            f"positions) is {c}"
        )
    if lengths is not None and np.shape(lengths) != tokens.shape[:-1]:
        raise ValueError(
            f"length must have shape {tokens.shape[:-1]} (one per sequence), got {np.shape(lengths)}"
        )
    ids = None if logit_ids is None else host_value(logit_ids)
    if ids is not None:
        k = params["decoder"]["bias"].shape[0]
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= k)):
            raise ValueError(f"logit_ids must be (K,) ids in [0, {k}), got {ids}")
    tk = host_value(tokens)
    if tk is not None and tk.size and (tk.min() < 0 or tk.max() >= vocab):
        raise ValueError(f"token ids must lie in [0, {vocab}), got [{tk.min()}, {tk.max()}]")
    ln = None if lengths is None else host_value(lengths)
    if ln is not None and (np.any(ln < 0) or np.any(ln > tokens.shape[-1])):
        raise ValueError(f"length must lie in [0, {tokens.shape[-1]}], got {ln}")
