"""Decompositional interdependence (DI) of word pairs from contextual decomposition.

``DI(x, y) = ||beta_{x,y} - beta_x - beta_y||_2 / ||beta_{x,y}||_2`` at a target
timestep: the share of the joint relevant contribution of positions ``x`` and
``y`` that is not additive. ``beta`` is CD's relevant part
(:mod:`jaxdyn.decompose.lstm.cd`, same conventions) of a layer's hidden state (hidden
space) or of the top layer's ``W_dec beta_h`` (logit space; the decoder bias is
not part of beta).

Choices:

* **Guard**: ``beta_{x,y} = 0`` gives ``DI = 0`` (e.g. both positions empty,
  after the target, or padding), never NaN.
* **Empty partner**: a pair index ``-1`` is the empty set, so ``beta_{x,{}} =
  beta_x`` and ``DI(x, {}) = 0`` exactly.
* **Beta-only recursion**: DI needs only beta. Its recursion
  (``beta_c = i_r (g_r + g_b) + i_b g_r + (f_r + f_b) beta_c_prev [+ i_b g_b]``,
  ``beta_h = o tanh_r(c)``) uses the irrelevant part only through
  ``r + i + b`` and ``i + b``, which equal the forward pre-activation ``a`` and
  ``a - r`` by CD's completeness, and ``gamma_c = c - beta_c``. So each span
  costs one ``H x 4H`` product per step (the full CD needs two) while the forward
  pass is shared by all spans of a sentence. Tests check it against the full CD.
* **Packed schedule** (:mod:`jaxdyn.decompose.lstm.di_packed`; used whenever ``pairs``,
  ``target`` and the lengths are concrete, i.e. not traced): beta is exactly 0
  before a span's first word, so each distinct span (``{x}``, ``{y}``, ``{x, y}``;
  single words shared by all pairs of a sentence) runs only from its first word
  to the last target that reads it, instead of over all ``T`` steps; a pair span
  ``{x, y}`` equals ``{x}`` before ``y`` and is forked from ``{x}``'s state there.
  The spans of all sentences are packed back to back into lanes and run as one
  scan per phase with one ``(lanes, .) x (., 4H)`` product per layer and step;
  padding and steps before the spans cost nothing. Same values as the plain
  path up to float32 rounding (tests check both against the references).
* **Traced inputs** (``pairs``/``target``/``length`` under an outer ``jit`` or
  ``vmap``): every span is scanned over all ``T`` steps, fixed shapes. With
  ``2P > T`` pairs the ``T`` single-word spans are computed once and shared
  (``T + P`` spans instead of ``3P``).

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Eq. 1 (interdependence); Saphra (2021), PhD thesis, Edinburgh; Murdoch, Liu & Yu
  (2018), ICLR, Eqs. 8-19 (CD).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.interactions import di_ratio
from jaxdyn.decompose.lstm.cd import SPAN_BIAS, check_inputs, span_bias_mask
from jaxdyn.decompose.lstm.di_packed import beta_layer, di_packed
from jaxdyn.decompose.lstm.forward import forward, zero_carry_single
from jaxdyn.models.lstm import decoder_weight, layer_names

SPACES = ("hidden", "logits")


def _beta_of_mask(params, fwd, x_emb, valid, mask, layer, flags):
    """Beta_h ``(T, H)`` at ``layer`` for one span mask ``(T,)`` (forward ``fwd`` shared)."""
    decompose_output_gate, span_bias, upper_bias_in_span = flags
    _, cs, as_ = fwd
    mask = mask & valid
    sb0 = span_bias_mask(mask, span_bias)
    rel = mask[:, None].astype(x_emb.dtype) * x_emb
    started = jnp.cumsum(mask) > 0
    for l, name in enumerate(layer_names(params)[: layer + 1]):
        p = params["rnn"][name]
        sb = sb0 if (l == 0 or upper_bias_in_span) else jnp.zeros_like(sb0)
        rel = beta_layer(
            p, as_[l], cs[l], rel @ p["weight_ih"].T, sb, started, decompose_output_gate
        )
    return jnp.where(valid[:, None], rel, 0.0)


def _span_beta_single(params, tokens, masks, length, init_carry, *, layer, flags, mask_chunk):
    fwd = forward(params, tokens, init_carry)
    valid = jnp.arange(tokens.shape[0]) < length
    x_emb = params["encoder"]["weight"][tokens]

    def one(m):
        return _beta_of_mask(params, fwd, x_emb, valid, m, layer, flags)

    if mask_chunk is None:
        return jax.vmap(one)(masks)
    return jax.lax.map(one, masks, batch_size=mask_chunk)


def _di_single(
    params, tokens, pairs, target, length, init_carry, logit_ids, *, space, layer, flags, mask_chunk
):
    t_len, n_pairs = tokens.shape[0], pairs.shape[0]
    pos = jnp.arange(t_len)
    x, y = pairs[:, 0], pairs[:, 1]
    mx = (pos[None] == x[:, None]) & (x[:, None] >= 0)
    my = (pos[None] == y[:, None]) & (y[:, None] >= 0)
    dedupe = 2 * n_pairs > t_len
    if dedupe:
        masks = jnp.concatenate([jnp.eye(t_len, dtype=bool), mx | my])
    else:
        masks = jnp.concatenate([mx, my, mx | my])
    beta = _span_beta_single(
        params, tokens, masks, length, init_carry, layer=layer, flags=flags, mask_chunk=mask_chunk
    )
    idx = jnp.arange(n_pairs)
    if dedupe:
        bx = jnp.where((x >= 0)[:, None], beta[jnp.clip(x, 0), target], 0.0)
        by = jnp.where((y >= 0)[:, None], beta[jnp.clip(y, 0), target], 0.0)
        bxy = beta[t_len + idx, target]
    else:
        bx, by, bxy = (beta[k * n_pairs + idx, target] for k in range(3))
    if space == "logits":
        w = decoder_weight(params)
        if logit_ids is not None:
            w = w[logit_ids]
        bx, by, bxy = bx @ w.T, by @ w.T, bxy @ w.T
    return di_ratio(bx, by, bxy)


_STATIC = ("space", "layer", "flags", "mask_chunk")
_di_jit = jax.jit(_di_single, static_argnames=_STATIC)


def _di_batch(params, tokens, pairs, target, lengths, init_carry, logit_ids, **static):
    one = functools.partial(_di_single, **static)
    return jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0, None))(
        params, tokens, pairs, target, lengths, init_carry, logit_ids
    )


_di_batch_jit = jax.jit(_di_batch, static_argnames=_STATIC)
_beta_jit = jax.jit(_span_beta_single, static_argnames=("layer", "flags", "mask_chunk"))


def _concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _resolve(params, space, layer, span_bias, mask_chunk):
    if mask_chunk is not None and (not isinstance(mask_chunk, int | np.integer) or mask_chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {mask_chunk!r}")
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if span_bias not in SPAN_BIAS:
        raise ValueError(f"span_bias must be one of {SPAN_BIAS}, got {span_bias!r}")
    n_layers = len(params["rnn"])
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must lie in [-{n_layers}, {n_layers}), got {layer}")
    layer %= n_layers
    if space == "logits" and layer != n_layers - 1:
        raise ValueError("space='logits' decomposes the top layer; leave layer at -1")
    return layer


def _check_pairs(pairs, target, t_len, length):
    if pairs.ndim < 2 or pairs.shape[-1] != 2:
        raise ValueError(f"pairs must be (..., P, 2), got {pairs.shape}")
    if not isinstance(pairs, jax.core.Tracer):
        pr = np.asarray(pairs)
        if pr.size and (pr.min() < -1 or pr.max() >= t_len):
            raise ValueError(f"pair positions must lie in [-1, {t_len}) (-1 = empty)")
    if not isinstance(target, jax.core.Tracer):
        tg = np.asarray(target)
        hi = np.asarray(length) if length is not None else t_len
        hi = hi[..., None] if np.ndim(hi) and tg.ndim > np.ndim(hi) else hi
        if tg.size and (np.any(tg < 0) or np.any(tg >= hi)):
            raise ValueError(f"target positions must lie in [0, length), got {tg}")


def interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: int | jax.Array,
    *,
    space: str = "hidden",
    layer: int = -1,
    length: int | jax.Array | None = None,
    init_carry=None,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
) -> jax.Array:
    """DI of ``P`` position pairs of one sentence in one compiled call.

    Args:
      params: LSTM LM/tagger ``params`` (layout of :mod:`jaxdyn.models.lstm`).
      tokens: ``(T,)`` int ids.
      pairs: ``(P, 2)`` int positions ``(x, y)``; ``-1`` is the empty set.
      target: timestep (int) or ``(P,)`` timesteps at which ``beta`` is read.
      space: ``"hidden"`` (``beta_h`` of ``layer``) or ``"logits"`` (``W_dec beta_h`` of
        the top layer, rows ``logit_ids`` if given).
      layer: LSTM layer for hidden space (negative counts from the top).
      length: valid length (padding after it); default ``T``.
      init_carry: per-layer ``(h (H,), c (H,))`` carried in (irrelevant).
      logit_ids: optional ``(K,)`` decoder rows for logit space.
      decompose_output_gate, span_bias, upper_bias_in_span: CD conventions
        (:func:`jaxdyn.decompose.lstm.cd.contextual_decomposition`).
      mask_chunk: bounds memory: lanes of the packed schedule (spans for traced
        inputs) per chunk; default all at once.

    Returns:
      ``(P,)`` DI values in ``[0, inf)``; 0 where ``beta_{x,y} = 0``.

    Raises:
      ValueError: bad shapes, positions out of range, unknown options.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Murdoch et al. (2018), Eqs. 8-19.
    """
    tokens, pairs = jnp.asarray(tokens), jnp.asarray(pairs, jnp.int32)
    if tokens.ndim != 1 or pairs.ndim != 2:
        raise ValueError(f"need tokens (T,), pairs (P, 2); got {tokens.shape}, {pairs.shape}")
    layer = _resolve(params, space, layer, span_bias, mask_chunk)
    target = jnp.broadcast_to(jnp.asarray(target, jnp.int32), pairs.shape[:1])
    check_inputs(params, tokens, length, logit_ids)
    _check_pairs(pairs, target, tokens.shape[0], length)
    if init_carry is None:
        init_carry = zero_carry_single(params, params["encoder"]["weight"].dtype)
    length = jnp.asarray(tokens.shape[0] if length is None else length, jnp.int32)
    flags = (decompose_output_gate, span_bias, upper_bias_in_span)
    if _concrete(pairs, target, length):
        return di_packed(
            params, tokens[None], pairs[None], target[None], length[None],
            jax.tree_util.tree_map(lambda z: jnp.asarray(z)[None], init_carry),
            None if logit_ids is None else jnp.asarray(logit_ids),
            space=space, layer=layer, flags=flags, chunk=mask_chunk,
        )[0]  # fmt: skip
    return _di_jit(
        params, tokens, pairs, target, length, init_carry,
        None if logit_ids is None else jnp.asarray(logit_ids),
        space=space, layer=layer, mask_chunk=mask_chunk, flags=flags,
    )  # fmt: skip


def interdependence_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: jax.Array,
    *,
    lengths: jax.Array | None = None,
    init_carry=None,
    space: str = "hidden",
    layer: int = -1,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
) -> jax.Array:
    """DI for ``B`` padded sentences with ``P`` pairs each, in one compiled call.

    Args:
      params: as in :func:`interdependence`.
      tokens: ``(B, T)`` int ids; lengths: ``(B,)`` valid lengths (default ``T``).
      pairs: ``(B, P, 2)`` positions (``-1`` = empty; pad unused pairs with ``(-1, -1)``,
        which gives DI 0).
      target: ``(B, P)`` or ``(B,)`` timesteps.
      init_carry: per-layer ``(h (B, H), c (B, H))``; zeros if None.
      space, layer, logit_ids, decompose_output_gate, span_bias, upper_bias_in_span,
        mask_chunk: as in :func:`interdependence`.

    Returns:
      ``(B, P)`` DI values.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    tokens, pairs = jnp.asarray(tokens), jnp.asarray(pairs, jnp.int32)
    if tokens.ndim != 2 or pairs.ndim != 3 or pairs.shape[0] != tokens.shape[0]:
        raise ValueError(f"need tokens (B, T), pairs (B, P, 2); got {tokens.shape}, {pairs.shape}")
    layer = _resolve(params, space, layer, span_bias, mask_chunk)
    b, t = tokens.shape
    target = jnp.asarray(target, jnp.int32)
    target = jnp.broadcast_to(target[:, None] if target.ndim == 1 else target, pairs.shape[:2])
    check_inputs(params, tokens, lengths, logit_ids)
    _check_pairs(pairs, target, t, lengths)
    if init_carry is None:
        init_carry = jax.tree_util.tree_map(
            lambda z: jnp.broadcast_to(z, (b, *z.shape)),
            zero_carry_single(params, params["encoder"]["weight"].dtype),
        )
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    flags = (decompose_output_gate, span_bias, upper_bias_in_span)
    if _concrete(pairs, target, lengths):
        return di_packed(
            params, tokens, pairs, target, lengths, init_carry,
            None if logit_ids is None else jnp.asarray(logit_ids),
            space=space, layer=layer, flags=flags, chunk=mask_chunk,
        )  # fmt: skip
    return _di_batch_jit(
        params, tokens, pairs, target, lengths, init_carry,
        None if logit_ids is None else jnp.asarray(logit_ids),
        space=space, layer=layer, mask_chunk=mask_chunk, flags=flags,
    )  # fmt: skip


def span_beta(
    params: Mapping[str, Any],
    tokens: jax.Array,
    masks: jax.Array,
    *,
    layer: int = -1,
    length: int | jax.Array | None = None,
    init_carry=None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
    mask_chunk: int | None = None,
) -> jax.Array:
    """Relevant hidden part ``beta_h`` of ``M`` spans of one sentence (beta-only recursion).

    Args:
      tokens: ``(T,)`` ids; masks: ``(M, T)`` bool spans; other arguments as in
        :func:`interdependence`.

    Returns:
      ``(M, T, H)`` ``beta_h`` of ``layer`` (equal to
      :func:`jaxdyn.decompose.lstm.cd.contextual_decomposition`'s up to rounding).

    References:
      Murdoch et al. (2018), ICLR, Eqs. 8-19.
    """
    tokens, masks = jnp.asarray(tokens), jnp.asarray(masks, bool)
    if tokens.ndim != 1 or masks.ndim != 2 or masks.shape[1] != tokens.shape[0]:
        raise ValueError(f"need tokens (T,), masks (M, T); got {tokens.shape}, {masks.shape}")
    layer = _resolve(params, "hidden", layer, span_bias, mask_chunk)
    check_inputs(params, tokens, length)
    if init_carry is None:
        init_carry = zero_carry_single(params, params["encoder"]["weight"].dtype)
    length = jnp.asarray(tokens.shape[0] if length is None else length, jnp.int32)
    return _beta_jit(
        params, tokens, masks, length, init_carry, layer=layer, mask_chunk=mask_chunk,
        flags=(decompose_output_gate, span_bias, upper_bias_in_span),
    )  # fmt: skip


def all_pairs(length: int, max_distance: int | None = None) -> np.ndarray:
    """All position pairs ``x < y < length`` with ``y - x <= max_distance``, ``(P, 2)`` int32."""
    x, y = np.triu_indices(length, k=1)
    keep = (y - x <= max_distance) if max_distance is not None else np.ones_like(x, bool)
    return np.stack([x[keep], y[keep]], axis=1).astype(np.int32)


def all_pairs_interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    *,
    max_distance: int | None = None,
    target: str | int = "last",
    length: int | None = None,
    **kwargs,
) -> tuple[np.ndarray, jax.Array]:
    """DI of all pairs ``x < y`` (within ``max_distance``) of one sentence.

    Args:
      tokens: ``(T,)`` ids; length: valid length (concrete int; default ``T``).
      max_distance: largest ``y - x``; default no limit.
      target: ``"last"`` (position ``length - 1``), ``"pair_end"`` (position ``y`` of
        each pair) or an int timestep (pairs with ``y > target`` are dropped).
      **kwargs: passed to :func:`interdependence` (``space``, ``layer``, ...).

    Returns:
      ``(pairs (P, 2) int32 NumPy, di (P,))``.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    n = int(tokens.shape[0] if length is None else length)
    pairs = all_pairs(n, max_distance)
    if target == "last":
        tgt = np.full(len(pairs), n - 1, np.int32)
    elif target == "pair_end":
        tgt = pairs[:, 1].copy()
    elif isinstance(target, int | np.integer):
        if not 0 <= target < n:
            raise ValueError(f"target must lie in [0, {n}) (the valid length), got {target}")
        pairs = pairs[pairs[:, 1] <= target]
        tgt = np.full(len(pairs), target, np.int32)
    else:
        raise ValueError(f"target must be 'last', 'pair_end' or an int, got {target!r}")
    di = interdependence(params, tokens, pairs, tgt, length=length, **kwargs)
    return pairs, di
