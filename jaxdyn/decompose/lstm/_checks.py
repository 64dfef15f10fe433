"""Input validation shared by the CD and DI entry points (host side).

Values are checked where they are known on the host. Under an outer ``jax.jit`` or
``jax.vmap`` an argument may be abstract; :func:`host_value` then returns None and
only its shape is checked (an algorithm that needs the values, such as the packed
DI schedule, raises instead; see :func:`require_host`). No ``jax.core`` API is used.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (the CD conventions the checks guard).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_ABSTRACT = (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError)


def host_value(x) -> np.ndarray | None:
    """``x`` as a NumPy array, or None if it has no value on the host (traced)."""
    try:
        return np.asarray(x)
    except _ABSTRACT:
        return None


def as_int(x) -> np.ndarray | jax.Array:
    """``x`` as int32: a NumPy array when its value is on the host (so that it stays
    known under an outer ``jit``, where ``jnp`` operations are staged), else a jax array."""
    v = host_value(x)
    return jnp.asarray(x, jnp.int32) if v is None else v.astype(np.int32, copy=False)


def require_host(what: str, name: str, **arrays) -> dict[str, np.ndarray]:
    """Host values of ``arrays``; ValueError naming the traced ones and ``name=what``."""
    out = {k: host_value(v) for k, v in arrays.items()}
    traced = [k for k, v in out.items() if v is None]
    if traced:
        raise ValueError(
            f"{name}={what!r} builds its schedule on the host from concrete values, but "
            f"{', '.join(traced)} {'is' if len(traced) == 1 else 'are'} traced (called "
            f"under jax.jit/vmap?); pass {name}='dense' (fixed shapes, jit/vmap-able) or "
            "call it outside the transformation"
        )
    return out


def one_sentence(tokens, pairs, target, length):
    """One sentence's DI arguments as a batch of one, for ``interdependence_batch``.

    Args:
      tokens: ``(T,)``; pairs: ``(P, 2)`` positions or ``(P, 2, 2)`` spans; target: int
        or ``(P,)``; length: None or a scalar.

    Returns:
      ``(tokens (1, T), pairs (1, P, ...), target (1, P), lengths None or (1,))``, int32
      (host arrays where the values are known, see :func:`as_int`).
    """
    tokens, pairs, target = as_int(tokens), as_int(pairs), as_int(target)
    if tokens.ndim != 1 or pairs.ndim not in (2, 3) or pairs.shape[1:] not in ((2,), (2, 2)):
        raise ValueError(
            f"need tokens (T,), pairs (P, 2) or spans (P, 2, 2); got {tokens.shape}, {pairs.shape}"
        )
    target = (np if isinstance(target, np.ndarray) else jnp).broadcast_to(target, pairs.shape[:1])
    if length is not None and np.ndim(length) != 0:
        raise ValueError(f"length must be a scalar (one sentence), got shape {np.shape(length)}")
    lengths = None if length is None else as_int(length).reshape(1)
    return tokens[None], pairs[None], target[None], lengths


def check_inputs(params, tokens, length, logit_ids=None) -> None:
    """Raise ValueError for out-of-range tokens, lengths or ``logit_ids`` (when their
    values are on the host; JAX would clamp a decoder row silently), or a length not
    one per sequence."""
    vocab = params["encoder"]["weight"].shape[0]
    if length is not None and np.shape(length) != tokens.shape[:-1]:
        raise ValueError(
            f"length must have shape {tokens.shape[:-1]} (one per sequence), got {np.shape(length)}"
        )
    ids = None if logit_ids is None else host_value(logit_ids)
    if ids is not None:
        k = params["decoder"]["bias"].shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= k):
            raise ValueError(f"logit_ids must lie in [0, {k}), got {ids}")
    tk = host_value(tokens)
    if tk is not None and tk.size and (tk.min() < 0 or tk.max() >= vocab):
        raise ValueError(f"token ids must lie in [0, {vocab}), got [{tk.min()}, {tk.max()}]")
    ln = None if length is None else host_value(length)
    if ln is not None and (np.any(ln < 0) or np.any(ln > tokens.shape[-1])):
        raise ValueError(f"length must lie in [0, {tokens.shape[-1]}], got {ln}")


def check_pairs(pairs, target, t_len: int, length, *, spans: bool) -> None:
    """Host values of positions ``(..., P, 2)`` (``spans=False``; ``-1`` = empty) or
    inclusive spans ``(..., P, 2, 2)`` (``[-1, -1]`` = empty) and of the targets
    (``0 <= target < length``)."""
    pr = host_value(pairs)
    if pr is not None and pr.size and spans:
        lo, hi = pr[..., 0], pr[..., 1]
        ok = ((lo == -1) & (hi == -1)) | ((lo >= 0) & (lo <= hi) & (hi < t_len))
        if not ok.all():
            raise ValueError(
                f"pair spans must be [lo, hi] with 0 <= lo <= hi < {t_len}, or [-1, -1] "
                f"(empty); got {pr[~ok][:3].tolist()}"
            )
    elif pr is not None and pr.size and (pr.min() < -1 or pr.max() >= t_len):
        raise ValueError(f"pair positions must lie in [-1, {t_len}) (-1 = empty)")
    tg = host_value(target)
    hi = t_len if length is None else host_value(length)
    if tg is not None and tg.size and hi is not None:
        hi = hi[..., None] if np.ndim(hi) and tg.ndim > np.ndim(hi) else hi
        if np.any(tg < 0) or np.any(tg >= hi):
            raise ValueError(f"target positions must lie in [0, length), got {tg}")


def check_batch_shapes(tokens, pairs) -> None:
    """``tokens (B, T)`` with ``pairs (B, P, 2)`` or spans ``(B, P, 2, 2)``, else ValueError."""
    if (
        tokens.ndim != 2
        or pairs.ndim not in (3, 4)
        or pairs.shape[0] != tokens.shape[0]
        or pairs.shape[2:] not in ((2,), (2, 2))
    ):
        raise ValueError(
            "need tokens (B, T), pairs (B, P, 2) or spans (B, P, 2, 2); got "
            f"{tokens.shape}, {pairs.shape}"
        )
