"""Fixed-shape ("dense") beta-only CD for decompositional interdependence (DI).

Every position set (part ``A``, part ``B``, union ``A | B``) of every pair is a
``(T,)`` mask scanned over all ``T`` steps with the beta-only recursion
(:func:`jaxdyn.decompose.lstm.di_packed.beta_layer`; the forward pass is shared by
all sets of a sentence). Shapes depend only on ``T`` and ``P``, so it runs under
``jax.jit``/``jax.vmap`` with traced pairs, targets and lengths; the packed
schedule (:mod:`jaxdyn.decompose.lstm.di_packed`) computes the same values with
far fewer steps when those are concrete. With single-position pairs and ``2P > T``
the ``T`` single-word masks are computed once and shared (``T + P`` masks instead
of ``3P``).

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020), Findings of
  EMNLP, Eq. 1 (interdependence).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxdyn.decompose.lstm.cd import span_bias_mask
from jaxdyn.decompose.lstm.di_packed import beta_layer, readout
from jaxdyn.decompose.lstm.forward import forward, zero_carry
from jaxdyn.models.lstm import layer_names


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


def _betas(params, tokens, masks, length, fwd, layer, flags, mask_chunk):
    valid = jnp.arange(tokens.shape[0]) < length
    x_emb = params["encoder"]["weight"][tokens]

    def one(m):
        return _beta_of_mask(params, fwd, x_emb, valid, m, layer, flags)

    if mask_chunk is None:
        return jax.vmap(one)(masks)
    return jax.lax.map(one, masks, batch_size=mask_chunk)


def span_beta_single(params, tokens, masks, length, init_carry, *, layer, flags, mask_chunk):
    """``beta_h`` ``(M, T, H)`` of ``layer`` for masks ``(M, T)`` of one sentence."""
    fwd = forward(params, tokens, init_carry)
    return _betas(params, tokens, masks, length, fwd, layer, flags, mask_chunk)


def _range_masks(lo, hi, t_len):
    pos = jnp.arange(t_len)
    return (pos[None] >= lo[:, None]) & (pos[None] <= hi[:, None]) & (lo[:, None] >= 0)


def parts_single(
    params, tokens, spans, target, length, init_carry, *, layer, flags, mask_chunk, singles
):
    """Hidden-space parts ``(beta_A, beta_B, beta_{A|B}, h)``, each ``(P, H)``, of ``P``
    span pairs ``(P, 2, 2)`` of one sentence at ``target (P,)``. ``singles``: every span
    is one position (enables sharing the single-word masks)."""
    t_len, n_pairs = tokens.shape[0], spans.shape[0]
    ma = _range_masks(spans[:, 0, 0], spans[:, 0, 1], t_len)
    mb = _range_masks(spans[:, 1, 0], spans[:, 1, 1], t_len)
    dedupe = singles and 2 * n_pairs > t_len
    if dedupe:
        masks = jnp.concatenate([jnp.eye(t_len, dtype=bool), ma | mb])
    else:
        masks = jnp.concatenate([ma, mb, ma | mb])
    fwd = forward(params, tokens, init_carry)
    beta = _betas(params, tokens, masks, length, fwd, layer, flags, mask_chunk)
    idx = jnp.arange(n_pairs)
    if dedupe:
        x, y = spans[:, 0, 0], spans[:, 1, 0]
        bx = jnp.where((x >= 0)[:, None], beta[jnp.clip(x, 0), target], 0.0)
        by = jnp.where((y >= 0)[:, None], beta[jnp.clip(y, 0), target], 0.0)
        bxy = beta[t_len + idx, target]
    else:
        bx, by, bxy = (beta[k * n_pairs + idx, target] for k in range(3))
    return bx, by, bxy, fwd[0][layer][target]


_STATIC = ("spaces", "layer", "flags", "mask_chunk", "singles", "parts")


def _di_batch(
    params, tokens, spans, target, lengths, init_carry, logit_ids, *, spaces, parts, **static
):
    """Parts of every sentence (vmapped), then the read-out on all ``B P`` pairs at once."""
    if init_carry is None:
        init_carry = zero_carry(params, tokens.shape[0], params["encoder"]["weight"].dtype)
    one = functools.partial(parts_single, **static)
    hidden = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, 0))(
        params, tokens, spans, target, lengths, init_carry
    )
    lead = target.shape
    flat = [v.reshape(-1, v.shape[-1]) for v in hidden]
    out = readout(params, *flat, logit_ids, spaces=spaces, parts=parts)
    return tuple(tuple(v.reshape(*lead, *v.shape[1:]) for v in vals) for vals in out)


di_batch_jit = jax.jit(_di_batch, static_argnames=_STATIC)
span_beta_jit = jax.jit(span_beta_single, static_argnames=("layer", "flags", "mask_chunk"))
