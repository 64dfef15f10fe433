"""The Transformer's forward pass as pure functions of a parameter tree.

These are the model (:mod:`jaxdyn.models.transformer` only creates the parameters, adds
dropout and taps), so decompositions (``jaxdyn.decompose.transformer``) reuse them on a
parameter tree. Layout of the tree: :mod:`jaxdyn.models.transformer`.

The equations they compute (eval mode; pre-LN with GPT-2's final LayerNorm, exact GELU)
and the names of the tensors are in :mod:`jaxdyn.models.transformer`'s docstring.

References:
  Vaswani et al. (2017), Attention is all you need, Eqs. 1-2 (attention, MLP); Xiong et
  al. (2020), On layer normalization in the Transformer architecture (pre-LN); Su et al.
  (2021), RoFormer, Eq. 34 (rotary positions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxdyn.models.decoder import linear_decoder

POSITIONS = ("learned", "rotary")
LN_EPS = 1e-5
ROTARY_BASE = 10_000.0


def layer_norm(p: Mapping[str, jax.Array], x: jax.Array, eps: float = LN_EPS) -> jax.Array:
    """LayerNorm over the last axis: ``(x - mean) / sqrt(var + eps) * scale + bias``.

    Args:
      p: ``{"scale": (D,), "bias": (D,)}``.
      x: ``(..., D)``.

    References:
      Ba et al. (2016), "Layer normalization", eq. 4 (biased variance, as ``torch.nn.LayerNorm``).
    """
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps) * p["scale"] + p["bias"]


def rotary(x: jax.Array, base: float = ROTARY_BASE) -> jax.Array:
    """Rotary position embedding of per-head vectors (the "rotate half" pairing).

    Dimension ``i < Dh/2`` is paired with ``i + Dh/2`` and the pair at position ``t`` is
    rotated by the angle ``t * base**(-2i/Dh)``.

    Args:
      x: ``(B, H, T, Dh)`` queries or keys, ``Dh`` even.

    References:
      Su et al. (2021), "RoFormer", eq. 34 (GPT-NeoX's half-split pairing of dimensions).
    """
    t, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    inv = base ** (-jnp.arange(half, dtype=x.dtype) * 2.0 / dh)
    ang = jnp.arange(t, dtype=x.dtype)[:, None] * inv[None, :]  # (T, Dh/2)
    cos, sin = jnp.cos(ang), jnp.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def split_heads(x: jax.Array, heads: int) -> jax.Array:
    """``(B, T, D) -> (B, H, T, D/H)``: head ``h`` is columns ``h*Dh:(h+1)*Dh``."""
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)


def merge_heads(x: jax.Array) -> jax.Array:
    """``(B, H, T, Dh) -> (B, T, H*Dh)`` (inverse of :func:`split_heads`)."""
    b, h, t, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * dh)


def causal_mask(t: int) -> jax.Array:
    """``(T, T)`` bool, True where query ``i`` may attend to key ``j`` (``j <= i``)."""
    return jnp.tril(jnp.ones((t, t), bool))


def attention_probs(
    p: Mapping[str, jax.Array], h: jax.Array, heads: int, *, rotary_pos: bool = False
) -> jax.Array:
    """Causal attention probabilities ``softmax(q k^T / sqrt(Dh))`` per head.

    Args:
      p: the block's ``attn`` parameters (see the module docstring).
      h: ``(B, T, D)`` normalised input.
      heads: H.
      rotary_pos: rotate queries and keys (:func:`rotary`).

    Returns:
      ``(B, H, T_query, T_key)``, zero above the diagonal, rows summing to 1.

    References:
      Vaswani et al. (2017), eq. 1 (scaled dot-product attention), with a causal mask.
    """
    q = split_heads(h @ p["wq"] + p["bq"], heads)
    k = split_heads(h @ p["wk"] + p["bk"], heads)
    if rotary_pos:
        q, k = rotary(q), rotary(k)
    s = jnp.einsum("bhtd,bhsd->bhts", q, k) / math.sqrt(q.shape[-1])
    s = jnp.where(causal_mask(h.shape[1]), s, jnp.finfo(s.dtype).min)
    return jax.nn.softmax(s, axis=-1)


def attention(
    p: Mapping[str, jax.Array], h: jax.Array, heads: int, *, rotary_pos: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Causal multi-head self-attention.

    Args:
      p: the block's ``attn`` parameters; h: ``(B, T, D)``; heads: H.

    Returns:
      ``(out (B, T, D), probs (B, H, T, T))`` with ``out = concat_h(A_h v_h) wo + bo``.

    References:
      Vaswani et al. (2017), eqs. 1-2 (multi-head attention).
    """
    a = attention_probs(p, h, heads, rotary_pos=rotary_pos)
    v = split_heads(h @ p["wv"] + p["bv"], heads)
    z = merge_heads(jnp.einsum("bhts,bhsd->bhtd", a, v))
    return z @ p["wo"] + p["bo"], a


def mlp(p: Mapping[str, jax.Array], h: jax.Array) -> jax.Array:
    """``GELU(h w_in + b_in) w_out + b_out`` with the exact (erf) GELU; ``(B, T, D)``.

    References:
      Hendrycks & Gimpel (2016), "Gaussian error linear units", eq. 1 (exact form).
    """
    return jax.nn.gelu(h @ p["w_in"] + p["b_in"], approximate=False) @ p["w_out"] + p["b_out"]


def block_apply(
    p: Mapping[str, Any], x: jax.Array, heads: int, *, rotary_pos: bool = False
) -> dict[str, jax.Array]:
    """One pre-LN block in eval mode.

    Args:
      p: ``block_{l}`` parameters; x: residual stream ``(B, T, D)``; heads: H.

    Returns:
      ``{"attn": a (B, T, D), "probs": (B, H, T, T), "mlp": m (B, T, D), "out": x_l}``.
    """
    a, probs = attention(p["attn"], layer_norm(p["ln_1"], x), heads, rotary_pos=rotary_pos)
    r = x + a
    m = mlp(p["mlp"], layer_norm(p["ln_2"], r))
    return {"attn": a, "probs": probs, "mlp": m, "out": r + m}


def block_names(params: Mapping[str, Any]) -> list[str]:
    """Block names ``["block_0", "block_1", ...]`` of a parameter tree, in order."""
    names = [k for k in params if k.startswith("block_")]
    return sorted(names, key=lambda s: int(s.split("_")[1]))


def decoder_weight(params: Mapping[str, Any]) -> jax.Array:
    """Decoder weight ``(K, D)``; the embedding when the model ties them."""
    dec = params["decoder"]
    return dec["weight"] if "weight" in dec else params["embed"]["weight"]


def embed(params: Mapping[str, Any], tokens: jax.Array) -> jax.Array:
    """``x_0 = E[tokens] (+ P[0:T] with learned positions)``, ``(B, T, D)``.

    Raises:
      ValueError: ``T`` exceeds the learned position table (the context length).
    """
    x = params["embed"]["weight"][tokens]
    if "pos" in params:
        c, t = params["pos"]["weight"].shape[0], tokens.shape[1]
        if t > c:
            raise ValueError(
                f"input has {t} positions but the model's context (learned positions) is {c}"
            )
        x = x + params["pos"]["weight"][:t]
    return x


def lm_apply(
    params: Mapping[str, Any], tokens: jax.Array, *, heads: int, return_internals: bool = False
):
    """Pure evaluation-mode forward pass of a model in this layout.

    Args:
      params: the ``params`` collection (module docstring); rotary positions when it
        has no ``"pos"`` entry.
      tokens: ``(B, T)`` int ids.
      heads: H (not recoverable from the shapes).
      return_internals: also return ``{"embedding": x_0, "block_{l}": block_apply(...),
        "decoder_in": y}``.

    Returns:
      ``logits (B, T, K)``, and the internals with ``return_internals``.
    """
    rot = "pos" not in params
    x = embed(params, tokens)
    internals: dict[str, Any] = {"embedding": x}
    for name in block_names(params):
        out = block_apply(params[name], x, heads, rotary_pos=rot)
        internals[name] = out
        x = out["out"]
    y = layer_norm(params["ln_f"], x)
    internals["decoder_in"] = y
    logits = linear_decoder(y, decoder_weight(params), params["decoder"]["bias"])
    return (logits, internals) if return_internals else logits


def probs_from_trace(x: jax.Array, heads: int) -> jax.Array:
    """A traced ``attn_probs_{l}`` ``(B, T, H*T)`` back as ``(B, H, T, T)``."""
    b, t, ht = x.shape
    if ht != heads * t:
        raise ValueError(f"attention probabilities {x.shape} do not hold {heads} heads of {t}")
    return x.reshape(b, t, heads, t).transpose(0, 2, 1, 3)
