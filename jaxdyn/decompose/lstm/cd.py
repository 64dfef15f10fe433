"""Contextual decomposition (CD) of multi-layer LSTM language models.

CD (Murdoch, Liu & Yu 2018) splits every LSTM state into a *relevant* part
``beta`` (what a chosen set of input positions, the span, contributes) and an
*irrelevant* part ``gamma`` (everything else), such that ``beta + gamma`` equals
the plain forward pass exactly (up to rounding). Parameters follow
:mod:`jaxdyn.models.lstm` (PyTorch layout, gate order i, f, g, o).

Conventions (each one is what the reference code of Murdoch et al. and of the
thesis computes, unless marked as an option):

* **Gate pre-activations** ``a = r + i + b``: ``r`` = ``W_ih`` times the relevant
  input plus ``W_hh beta_h_{t-1}``; ``i`` the same with the irrelevant parts;
  ``b = b_ih + b_hh``. At the first layer the word vector ``x_t`` is relevant
  when ``t`` is in the span and irrelevant otherwise; at layers above the first,
  the input is the lower layer's ``(beta_h, gamma_h)``.
* **Linearisation** of ``sigma``/``tanh``: Shapley average over the two orders in
  which ``r`` and ``i`` are added after ``b``::

      s_r = ((f(r+b) - f(b)) + (f(r+i+b) - f(i+b))) / 2,   s_b = f(b),  s_i symmetric.

  ``s_r + s_i + s_b = f(a)`` exactly. ``tanh(c)`` in ``h = o * tanh(c)`` is
  split two ways (no bias) the same way.
* **Cell update** ``c = f * c_prev + i * g``: ``beta_c`` receives
  ``i_r (g_r + g_b) + i_b g_r + (f_r + f_b) beta_c_prev``; every product that
  touches an irrelevant share goes to ``gamma_c``
  (``i_i g + (i_r + i_b) g_i + f gamma_c_prev + f_i beta_c_prev``).
* **Bias times bias** ``i_b g_b`` goes to ``beta_c`` at first-layer positions
  inside the span and to ``gamma_c`` elsewhere. ``span_bias="inclusive"``
  (default) counts *every* span position, the last one included: the thesis's
  fix. Murdoch et al.'s released ``CD`` and ``acd.propagate_lstm`` test
  ``start <= t < stop`` for this term while the word itself is tested with
  ``t <= stop``, so the last span word's bias product goes to gamma;
  ``span_bias="exclusive_last"`` reproduces that (positions ``t`` with ``t`` and
  ``t + 1`` both in the span; equal to ``[start, stop)`` for a contiguous span).
* **Layers above the first**: their bias product always goes to gamma (thesis
  code: "all independent contributions of the upper layers are irrelevant");
  ``upper_bias_in_span=True`` instead treats them like the first layer.
* **Output gate**: not decomposed (``o`` is the full gate, as in the
  references): ``beta_h = o tanh_r(c)``, ``gamma_h = o tanh_i(c)``. With
  ``decompose_output_gate=True`` (the references' commented-out variant):
  ``beta_h = (o_r + o_b) tanh_r``, ``gamma_h = o_i tanh_r + o tanh_i``.
* **Carried-in state** (``init_carry``, e.g. from an earlier BPTT chunk) is
  irrelevant: ``gamma_h_{-1} = h0``, ``gamma_c_{-1} = c0``, ``beta = 0``.
* **Decoder** is linear with the bias apart:
  ``logits = W beta_h + W gamma_h + bias``.
* **Padding**: positions ``t >= length`` are never relevant and their
  ``beta``/``gamma`` are set to 0; residuals ignore them. Positions before
  ``length`` do not depend on padding (the LSTM is causal).

References:
  Murdoch, Liu & Yu (2018), "Beyond Word Importance: Contextual Decomposition to
  Extract Interactions from LSTMs", ICLR, Sec. 3.2, Eqs. 8-19; Saphra (2021),
  "Training dynamics of neural language models", PhD thesis, Edinburgh (CD for
  language models, inclusive spans).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.decompose.lstm._checks import as_int, check_inputs
from jaxdyn.decompose.lstm.forward import _split4, forward, zero_carry_single
from jaxdyn.models.lstm import decoder_weight, layer_names

SPAN_BIAS = ("inclusive", "exclusive_last")


class CDResult(NamedTuple):
    """Contextual decomposition of one sequence (add leading axes when batched).

    Attributes:
      beta_h, gamma_h: relevant / irrelevant part of ``h``, ``(L, T, H)``.
      beta_c, gamma_c: relevant / irrelevant part of ``c``, ``(L, T, H)``.
      beta_logits, gamma_logits: ``W_dec beta_h`` / ``W_dec gamma_h`` of the top
        layer, ``(T, K)`` (``K`` = ``len(logit_ids)`` when given, else the vocabulary).
      bias_logits: decoder bias ``(K,)``.
      logits: plain forward logits ``(T, K)``.
      residual_h, residual_c: max ``|beta + gamma - forward|`` per layer ``(L,)``.
      residual_logits: max ``|beta + gamma + bias - logits|``, scalar.
    """

    beta_h: jax.Array
    gamma_h: jax.Array
    beta_c: jax.Array
    gamma_c: jax.Array
    beta_logits: jax.Array
    gamma_logits: jax.Array
    bias_logits: jax.Array
    logits: jax.Array
    residual_h: jax.Array
    residual_c: jax.Array
    residual_logits: jax.Array


def shapley3(r: jax.Array, i: jax.Array, b: jax.Array, fn) -> tuple[jax.Array, ...]:
    """Split ``fn(r + i + b)`` into relevant, irrelevant and bias shares.

    Args:
      r, i, b: relevant, irrelevant and bias parts of a pre-activation (same shape).
      fn: elementwise nonlinearity (``jax.nn.sigmoid`` or ``jnp.tanh``).

    Returns:
      ``(s_r, s_i, s_b)`` with ``s_r + s_i + s_b == fn(r + i + b)``.

    References:
      Murdoch et al. (2018), Eqs. 10-12 (linearisation by averaged orderings).
    """
    f_b, f_all = fn(b), fn(r + i + b)
    f_rb, f_ib = fn(r + b), fn(i + b)
    s_r = 0.5 * ((f_rb - f_b) + (f_all - f_ib))
    s_i = 0.5 * ((f_ib - f_b) + (f_all - f_rb))
    return s_r, s_i, f_b


def shapley2(r: jax.Array, i: jax.Array, fn) -> tuple[jax.Array, jax.Array]:
    """Split ``fn(r + i)`` (no bias, ``fn(0) = 0``) into two shares summing to it.

    References:
      Murdoch et al. (2018), Eq. 19 (``tanh(c)`` split in ``h = o tanh(c)``).
    """
    f_all = fn(r + i)
    return 0.5 * (fn(r) + f_all - fn(i)), 0.5 * (fn(i) + f_all - fn(r))


def _cd_layer(p, rel_in, irr_in, span_bias, h0, c0, decompose_output_gate):
    """CD recursion of one layer. ``rel_in``/``irr_in``: ``(T, 4H)`` input projections
    without bias; ``span_bias``: ``(T,)`` where the bias product is relevant."""
    bias = p["bias_ih"] + p["bias_hh"]
    bi, bf, bg, bo = _split4(bias)
    w_hh_t = p["weight_hh"].T
    sig = jax.nn.sigmoid

    def step(carry, xs):
        bh, gh, bc, gc = carry
        r_in, i_in, sb = xs
        ri, rf, rg, ro = _split4(r_in + bh @ w_hh_t)
        ii, if_, ig, io = _split4(i_in + gh @ w_hh_t)
        i_r, i_i, i_b = shapley3(ri, ii, bi, sig)
        g_r, g_i, g_b = shapley3(rg, ig, bg, jnp.tanh)
        f_r, f_i, f_b = shapley3(rf, if_, bf, sig)
        bb = i_b * g_b
        new_bc = i_r * (g_r + g_b) + i_b * g_r + (f_r + f_b) * bc + jnp.where(sb, bb, 0.0)
        new_gc = (
            i_i * (g_r + g_i + g_b)
            + (i_r + i_b) * g_i
            + (f_r + f_i + f_b) * gc
            + f_i * bc
            + jnp.where(sb, 0.0, bb)
        )
        t_r, t_i = shapley2(new_bc, new_gc, jnp.tanh)
        if decompose_output_gate:
            o_r, o_i, o_b = shapley3(ro, io, bo, sig)
            new_bh = (o_r + o_b) * t_r
            new_gh = o_i * t_r + (o_r + o_i + o_b) * t_i
        else:
            o = sig(ro + io + bo)
            new_bh, new_gh = o * t_r, o * t_i
        out = (new_bh, new_gh, new_bc, new_gc)
        return out, out

    zero = jnp.zeros_like(h0)
    _, outs = jax.lax.scan(step, (zero, h0, zero, c0), (rel_in, irr_in, span_bias))
    return outs


def span_bias_mask(relevant: jax.Array, span_bias: str) -> jax.Array:
    """Positions ``(T,)`` whose bias-times-bias product is relevant (first layer)."""
    if span_bias == "inclusive":
        return relevant
    if span_bias == "exclusive_last":
        nxt = jnp.concatenate([relevant[1:], jnp.zeros((1,), bool)])
        return relevant & nxt
    raise ValueError(f"span_bias must be one of {SPAN_BIAS}, got {span_bias!r}")


def _cd_single(
    params,
    tokens,
    relevant,
    length,
    init_carry,
    logit_ids,
    *,
    decompose_output_gate: bool,
    span_bias: str,
    upper_bias_in_span: bool,
) -> CDResult:
    emb = params["encoder"]["weight"]
    dtype = emb.dtype
    t_len = tokens.shape[0]
    valid = jnp.arange(t_len) < length
    relevant = relevant.astype(bool) & valid
    sb0 = span_bias_mask(relevant, span_bias)
    sb_up = sb0 if upper_bias_in_span else jnp.zeros_like(sb0)
    hs, cs, _ = forward(params, tokens, init_carry)

    x = emb[tokens]
    m = relevant[:, None].astype(dtype)
    rel_x, irr_x = m * x, (1.0 - m) * x
    outs, res_h, res_c = [], [], []
    vmask = valid[:, None]
    for l, name in enumerate(layer_names(params)):
        p = params["rnn"][name]
        rel_in, irr_in = rel_x @ p["weight_ih"].T, irr_x @ p["weight_ih"].T
        bh, gh, bc, gc = _cd_layer(
            p, rel_in, irr_in, sb0 if l == 0 else sb_up, *init_carry[l], decompose_output_gate
        )
        bh, gh, bc, gc = (jnp.where(vmask, v, 0.0) for v in (bh, gh, bc, gc))
        res_h.append(jnp.max(jnp.where(vmask, jnp.abs(bh + gh - hs[l]), 0.0)))
        res_c.append(jnp.max(jnp.where(vmask, jnp.abs(bc + gc - cs[l]), 0.0)))
        outs.append((bh, gh, bc, gc))
        rel_x, irr_x = bh, gh
    w, b = decoder_weight(params), params["decoder"]["bias"]
    if logit_ids is not None:
        w, b = w[logit_ids], b[logit_ids]
    logits = hs[-1] @ w.T + b
    beta_l, gamma_l = rel_x @ w.T, irr_x @ w.T
    res_l = jnp.max(jnp.where(vmask, jnp.abs(beta_l + gamma_l + b - logits), 0.0))
    stack = [jnp.stack(v) for v in zip(*outs)]
    return CDResult(*stack, beta_l, gamma_l, b, logits, jnp.stack(res_h), jnp.stack(res_c), res_l)


_STATIC = ("decompose_output_gate", "span_bias", "upper_bias_in_span")
_cd_jit = jax.jit(_cd_single, static_argnames=_STATIC)


def _cd_batch(params, tokens, relevant, lengths, init_carry, logit_ids, **flags):
    one = functools.partial(_cd_single, **flags)
    per_mask = jax.vmap(one, in_axes=(None, None, 0, None, None, None))
    return jax.vmap(per_mask, in_axes=(None, 0, 0, 0, 0, None))(
        params, tokens, relevant, lengths, init_carry, logit_ids
    )


_cd_batch_jit = jax.jit(_cd_batch, static_argnames=_STATIC)


def contextual_decomposition(
    params: Mapping[str, Any],
    tokens: jax.Array,
    relevant: jax.Array,
    *,
    length: int | jax.Array | None = None,
    init_carry=None,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
) -> CDResult:
    """Contextual decomposition of one token sequence for one relevant span.

    The span is any set of positions (a boolean mask), contiguous or not.

    Args:
      params: LSTM LM/tagger ``params`` (layout of :mod:`jaxdyn.models.lstm`);
        float64 parameters (under ``jax.enable_x64(True)``) give a float64 CD.
      tokens: ``(T,)`` int token ids.
      relevant: ``(T,)`` bool, True at span positions.
      length: valid length (positions ``>= length`` are padding); default ``T``.
      init_carry: per-layer ``(h (H,), c (H,))`` carried in, counted irrelevant; zeros if None.
      logit_ids: optional ``(K,)`` decoder rows to compute (default: all).
      decompose_output_gate: split ``o`` too (see module docstring).
      span_bias: ``"inclusive"`` (default) or ``"exclusive_last"`` (Murdoch's code).
      upper_bias_in_span: bias products of upper layers at span positions go to beta.

    Returns:
      :class:`CDResult` (shapes without batch axes).

    Raises:
      ValueError: shape mismatch, tokens, length or ``logit_ids`` out of range, unknown
        ``span_bias``.

    References:
      Murdoch et al. (2018), ICLR, Eqs. 8-19; Saphra (2021), thesis, CD chapter.
    """
    tokens, relevant = as_int(tokens), jnp.asarray(relevant)
    if tokens.ndim != 1 or relevant.shape != tokens.shape:
        raise ValueError(
            f"need tokens (T,) and relevant (T,), got {tokens.shape}, {relevant.shape}"
        )
    if span_bias not in SPAN_BIAS:
        raise ValueError(f"span_bias must be one of {SPAN_BIAS}, got {span_bias!r}")
    check_inputs(params, tokens, length, logit_ids)
    dtype = params["encoder"]["weight"].dtype
    if init_carry is None:
        init_carry = zero_carry_single(params, dtype)
    length = tokens.shape[0] if length is None else length
    return _cd_jit(
        params,
        tokens,
        relevant,
        jnp.asarray(length, jnp.int32),
        init_carry,
        None if logit_ids is None else jnp.asarray(logit_ids),
        decompose_output_gate=decompose_output_gate,
        span_bias=span_bias,
        upper_bias_in_span=upper_bias_in_span,
    )


def cd_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    relevant: jax.Array,
    *,
    lengths: jax.Array | None = None,
    init_carry=None,
    logit_ids: jax.Array | None = None,
    decompose_output_gate: bool = False,
    span_bias: str = "inclusive",
    upper_bias_in_span: bool = False,
) -> CDResult:
    """CD of ``B`` sentences, each with ``M`` spans, in one compiled call.

    Args:
      params: as in :func:`contextual_decomposition`.
      tokens: ``(B, T)`` int ids (padded).
      relevant: ``(B, M, T)`` bool span masks.
      lengths: ``(B,)`` valid lengths; default all ``T``.
      init_carry: per-layer ``(h (B, H), c (B, H))`` (the model's carry format); zeros if None.
      logit_ids, decompose_output_gate, span_bias, upper_bias_in_span: as in
        :func:`contextual_decomposition`.

    Returns:
      :class:`CDResult` whose fields have leading axes ``(B, M)`` (``bias_logits`` is
      ``(B, M, K)``; ``logits`` is ``(B, M, T, K)``).

    References:
      Murdoch et al. (2018), ICLR, Eqs. 8-19.
    """
    tokens, relevant = as_int(tokens), jnp.asarray(relevant)
    if tokens.ndim != 2 or relevant.ndim != 3 or relevant.shape[::2] != tokens.shape:
        raise ValueError(
            f"need tokens (B, T), relevant (B, M, T); got {tokens.shape}, {relevant.shape}"
        )
    if span_bias not in SPAN_BIAS:
        raise ValueError(f"span_bias must be one of {SPAN_BIAS}, got {span_bias!r}")
    check_inputs(params, tokens, lengths, logit_ids)
    b, t = tokens.shape
    dtype = params["encoder"]["weight"].dtype
    if init_carry is None:
        init_carry = jax.tree_util.tree_map(
            lambda z: jnp.broadcast_to(z, (b, *z.shape)), zero_carry_single(params, dtype)
        )
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    return _cd_batch_jit(
        params,
        tokens,
        relevant,
        lengths,
        init_carry,
        None if logit_ids is None else jnp.asarray(logit_ids),
        decompose_output_gate=decompose_output_gate,
        span_bias=span_bias,
        upper_bias_in_span=upper_bias_in_span,
    )
