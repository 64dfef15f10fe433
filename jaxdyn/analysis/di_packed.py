"""Packed beta-only CD for decompositional interdependence (DI) of many spans.

:mod:`jaxdyn.analysis.interdependence` reads ``beta_h`` of a span ``{x}``,
``{y}`` or ``{x, y}`` at one target step. Two facts make most of the
span-by-time grid of the plain computation unnecessary:

* **beta is exactly 0 before a span's first position** ``lo``: there the relevant
  input and the relevant carry are 0, every Shapley share of ``r = 0`` is 0
  (``f(0 + b) - f(b) = f(a) - f(a - 0) = 0``), and no bias product is relevant
  outside the span. This holds at every layer, since an upper layer's relevant
  input is the lower layer's ``beta_h``. So a span's recursion can start at
  ``lo`` from a zero carry: it needs ``target - lo + 1`` steps, not ``T``.
* **Only positions up to the largest target that reads a span matter.**

The schedule (host side, NumPy) lists the distinct spans of all sentences
(``(sentence, lo, hi)``; single-word spans are shared by every pair that uses
them), gives each its step count ``n = max target - lo + 1`` and packs the
spans back to back into ``lanes`` of ``R >= max n`` steps (best fit,
longest first). A span's first step resets the lane's carry to 0; idle steps
reset too and produce exact zeros. The kernel is the beta-only recursion of one
lane (all layers in one step, so no ``(R, lanes, 4H)`` intermediate), vmapped
over lanes and scanned over ``R``: each step is one ``(lanes, H) x (H, 4H)``
product per layer and input, reading the shared forward pass
(pre-activations ``a``, cells ``c``) by position. Lane and step counts are
rounded up to a few sizes (``R`` to a multiple of 8, at most ``T``; lanes to at
least 32, then 8 sizes per octave) so that calls of similar size reuse one
compiled kernel; a new size compiles once more.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020),
  Findings of EMNLP, Eq. 1 (interdependence).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.cd import _decoder_weight, _layer_names, _split4, forward


class Schedule(NamedTuple):
    """Packed spans: step arrays ``(C, R, W)`` (``C`` chunks of ``W`` lanes, ``R`` steps).

    Attributes:
      pos: flat forward-pass row ``sentence * T + position`` read at each step.
      rel: the position is in the span (relevant word input at layer 0).
      bias: the bias product is relevant (span-bias convention applied).
      reset: first step of a span, or an idle step (carry reset to 0).
      read: ``(N, 3)`` rows of the flattened ``(C * R * W + 1, H)`` output holding
        ``beta_x``, ``beta_y`` and ``beta_{x,y}`` of each pair (last row: zeros).
    """

    pos: np.ndarray
    rel: np.ndarray
    bias: np.ndarray
    reset: np.ndarray
    read: np.ndarray


def bucket(n: int, minimum: int = 8) -> int:
    """Smallest size ``>= n`` of the form ``m 2^k`` with ``8 <= m < 16`` (or ``minimum``)."""
    if n <= minimum:
        return minimum
    step = 1 << max(0, n.bit_length() - 4)
    return -(-n // step) * step


def _pack(n: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Best-fit decreasing packing of lengths ``n`` (each ``<= cap``) into lanes of ``cap``.

    Returns:
      ``(lane, offset, lanes)``: each item's lane and first step, and the lane count.
    """
    lane = np.zeros(len(n), np.int64)
    offset = np.zeros(len(n), np.int64)
    by_room: list[list[int]] = [[] for _ in range(cap + 1)]  # open lanes by room left
    fill: list[int] = []
    for i in np.argsort(-n, kind="stable").tolist():
        need = int(n[i])
        room = next((r for r in range(need, cap) if by_room[r]), -1)
        if room < 0:
            ln = len(fill)
            fill.append(0)
        else:
            ln = by_room[room].pop()
        lane[i], offset[i] = ln, fill[ln]
        fill[ln] += need
        if fill[ln] < cap:
            by_room[cap - fill[ln]].append(ln)
    return lane, offset, len(fill)


def schedule(
    pairs: np.ndarray,
    target: np.ndarray,
    lengths: np.ndarray,
    t_len: int,
    span_bias: str,
    chunk: int | None = None,
) -> Schedule:
    """Distinct spans of all pairs, packed into lanes (host side, concrete inputs).

    Args:
      pairs: ``(B, P, 2)`` positions (``-1`` = empty); target: ``(B, P)`` read steps;
      lengths: ``(B,)`` valid lengths; t_len: padded length ``T``;
      span_bias: ``"inclusive"`` or ``"exclusive_last"`` (see :mod:`jaxdyn.analysis.cd`);
      chunk: lanes per chunk (``None``: one chunk).

    Returns:
      :class:`Schedule` with ``N = B P`` pairs.

    References:
      Murdoch et al. (2018), Eqs. 8-19 (CD recursion, which is 0 before a span).
    """
    n_b, n_p = pairs.shape[:2]
    x = pairs[..., 0].reshape(-1).astype(np.int64)
    y = pairs[..., 1].reshape(-1).astype(np.int64)
    tgt = np.asarray(target, np.int64).reshape(-1)
    sent = np.repeat(np.arange(n_b, dtype=np.int64), n_p)
    xs, ys = np.where(x >= 0, x, t_len), np.where(y >= 0, y, t_len)
    lo = np.stack([xs, ys, np.minimum(xs, ys)], 1)  # spans {x}, {y}, {x, y}
    hi = np.stack([xs, ys, np.maximum(x, y)], 1)
    live = lo <= tgt[:, None]  # beta at the target is 0 unless the span starts by then
    key = (sent[:, None] * t_len + lo) * t_len + hi
    uniq, inv = np.unique(key[live], return_inverse=True)
    n = np.zeros(len(uniq), np.int64)
    np.maximum.at(n, inv, (tgt[:, None] - lo)[live])
    n += 1
    s_sent, s_lo, s_hi = uniq // (t_len * t_len), (uniq // t_len) % t_len, uniq % t_len

    steps = min(t_len, bucket(-(-int(n.max(initial=1)) // 8) * 8))
    lane, offset, lanes = _pack(n, steps)
    width = bucket(lanes, 32) if chunk is None else chunk
    n_chunks = 1 if chunk is None else -(-lanes // chunk)
    lane_all = n_chunks * width

    # one entry per (span, step)
    sid = np.repeat(np.arange(len(n)), n)
    k = np.arange(len(sid)) - np.repeat(np.cumsum(n) - n, n)
    p = s_lo[sid] + k
    lo_, hi_, ln = s_lo[sid], s_hi[sid], np.asarray(lengths, np.int64)[s_sent[sid]]
    in_span = (p == lo_) | (p == hi_)
    bias = in_span
    if span_bias == "exclusive_last":
        bias = in_span & ((p + 1 == lo_) | (p + 1 == hi_)) & (p + 1 < ln)
    at = lane[sid] * steps + offset[sid] + k  # lane-major slot of each (span, step)

    def grid(vals, idle):  # (C, R, W): chunk, step, lane in chunk; idle steps get `idle`
        out = np.full(lane_all * steps, idle, np.asarray(vals).dtype)
        out[at] = vals
        return out.reshape(n_chunks, width, steps).transpose(0, 2, 1)

    pos = grid((s_sent[sid] * t_len + p).astype(np.int32), 0)
    rel, bia, reset = grid(in_span, False), grid(bias, False), grid(k == 0, True)

    # output row of each live use: chunk-major, then step, then lane within the chunk
    u_lane, u_step = lane[inv], offset[inv] + (tgt[:, None] - lo)[live]
    rows = ((u_lane // width) * steps + u_step) * width + u_lane % width
    read = np.full(lo.shape, n_chunks * steps * width, np.int64)
    read[live] = rows
    return Schedule(pos, rel, bia, reset, read.astype(np.int32))


def _share_r(r, a, b, fn, f_a, f_b):
    """Relevant share of ``fn(a)``, ``a = r + i + b`` (``i`` implicit): Shapley average."""
    return 0.5 * ((fn(r + b) - f_b) + (f_a - fn(a - r)))


def forward_acts(a, c):
    """Forward activations ``(sigma(a_i), sigma(a_f), tanh(a_g), sigma(a_o), tanh(c))``."""
    sig = jax.nn.sigmoid
    ai, af, ag, ao = _split4(a)
    return sig(ai), sig(af), jnp.tanh(ag), sig(ao), jnp.tanh(c)


def bias_acts(bias):
    """``(sigma(b_i), sigma(b_f), tanh(b_g), sigma(b_o))`` of the summed bias ``(4H,)``."""
    bi, bf, bg, bo = _split4(bias)
    return jax.nn.sigmoid(bi), jax.nn.sigmoid(bf), jnp.tanh(bg), jax.nn.sigmoid(bo)


def beta_cell(bias, r, a, c, bc, sb, decompose_output_gate, acts=None, b_acts=None):
    """One beta-only CD step of one layer for one span.

    Args:
      bias: ``b_ih + b_hh`` ``(4H,)``; r: relevant pre-activation ``(4H,)`` (relevant
        input projection plus ``W_hh beta_h_prev``); a: forward pre-activation ``(4H,)``;
        c: forward cell ``(H,)``; bc: ``beta_c_prev`` ``(H,)``; sb: whether the bias
        product ``i_b g_b`` is relevant; decompose_output_gate: split ``o`` too;
      acts: :func:`forward_acts` of ``(a, c)`` if precomputed (computed if None).
      b_acts: :func:`bias_acts` of ``bias`` if precomputed. Computing both outside a
        scan keeps them out of the per-step work (XLA does not hoist them).

    Returns:
      ``(beta_h, beta_c)``, each ``(H,)``. The irrelevant parts enter only through
      ``a = r + i + b`` and ``gamma_c = c - beta_c`` (CD completeness).

    References:
      Murdoch et al. (2018), ICLR, Eqs. 10-19.
    """
    sig = jax.nn.sigmoid
    bi, bf, bg, bo = _split4(bias)
    ri, rf, rg, ro = _split4(r)
    ai, af, ag, ao = _split4(a)
    s_i, s_f, t_g, s_o, t_c = forward_acts(a, c) if acts is None else acts
    i_b, f_b, g_b, o_b = bias_acts(bias) if b_acts is None else b_acts
    i_r = _share_r(ri, ai, bi, sig, s_i, i_b)
    f_r = _share_r(rf, af, bf, sig, s_f, f_b)
    g_r = _share_r(rg, ag, bg, jnp.tanh, t_g, g_b)
    new_bc = i_r * (g_r + g_b) + i_b * g_r + (f_r + f_b) * bc + jnp.where(sb, i_b * g_b, 0.0)
    t_r = 0.5 * (jnp.tanh(new_bc) + t_c - jnp.tanh(c - new_bc))
    if decompose_output_gate:
        o_r = _share_r(ro, ao, bo, sig, s_o, o_b)
        return (o_r + o_b) * t_r, new_bc
    return s_o * t_r, new_bc


def _packed_beta(params, tokens, init_carry, sched, *, layer, flags):
    """beta_h of ``layer`` at every packed step, ``(C, R, W, H)``."""
    dog, _, upper_bias_in_span = flags
    names = _layer_names(params)[: layer + 1]
    layers = [params["rnn"][n] for n in names]
    emb = params["encoder"]["weight"]
    _, cs, as_ = jax.vmap(forward, in_axes=(None, 0, 0))(params, tokens, init_carry)
    # one table row per (sentence, position) and layer: [a, c, forward activations],
    # layer 0 also the word's input projection; one gather per layer and step
    xproj = emb[tokens.reshape(-1)] @ layers[0]["weight_ih"].T
    tabs = []
    for l in range(len(layers)):
        a, c = as_[l].reshape(-1, as_[l].shape[-1]), cs[l].reshape(-1, cs[l].shape[-1])
        tabs.append(jnp.concatenate([*([xproj] if l == 0 else []), a, c, *forward_acts(a, c)], 1))
    biases = [p["bias_ih"] + p["bias_hh"] for p in layers]
    b_acts = [bias_acts(b) for b in biases]
    w_t = [layers[0]["weight_hh"].T] + [
        jnp.concatenate([p["weight_ih"], p["weight_hh"]], 1).T for p in layers[1:]
    ]

    def lane_step(carry, xs):  # one lane, one step, all layers
        pos, rel, sb, reset = xs
        new = []
        for l in range(len(layers)):
            bh, bc = (jnp.where(reset, 0.0, v) for v in carry[l])
            row = tabs[l][pos]
            if l == 0:
                x_in, row = row[: xproj.shape[1]], row[xproj.shape[1] :]
                r = jnp.where(rel, x_in, 0.0) + bh @ w_t[0]
            else:
                r = jnp.concatenate([new[-1][0], bh]) @ w_t[l]
            parts = jnp.split(row, [k * bh.shape[0] for k in range(4, 10)])
            a, c, acts = parts[0], parts[1], tuple(parts[2:])
            bh, bc = beta_cell(
                biases[l], r, a, c, bc, sb & (l == 0 or upper_bias_in_span), dog, acts, b_acts[l]
            )
            new.append((bh, bc))
        return tuple(new), new[-1][0]

    step = jax.vmap(lane_step)

    def run(xs):  # (R, W) step arrays of one chunk
        zero = tuple(
            (jnp.zeros((xs[0].shape[1], p["weight_hh"].shape[1]), emb.dtype),) * 2 for p in layers
        )
        return jax.lax.scan(step, zero, xs)[1]

    xs = (sched.pos, sched.rel, sched.bias, sched.reset)
    if sched.pos.shape[0] == 1:
        return run(tuple(v[0] for v in xs))[None]
    return jax.lax.map(run, xs)


def _di_packed(params, tokens, init_carry, logit_ids, sched, *, space, layer, flags):
    out = _packed_beta(params, tokens, init_carry, sched, layer=layer, flags=flags)
    flat = out.reshape(-1, out.shape[-1])
    flat = jnp.concatenate([flat, jnp.zeros((1, flat.shape[1]), flat.dtype)])
    b3 = flat[sched.read]
    bx, by, bxy = b3[:, 0], b3[:, 1], b3[:, 2]
    diff = bxy - bx - by
    if space == "logits":
        w = _decoder_weight(params)
        if logit_ids is not None:
            w = w[logit_ids]
        diff, bxy = diff @ w.T, bxy @ w.T
    num = jnp.linalg.norm(diff, axis=-1)
    den = jnp.linalg.norm(bxy, axis=-1)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


_di_packed_jit = jax.jit(_di_packed, static_argnames=("space", "layer", "flags"))


def di_packed(
    params,
    tokens,
    pairs,
    target,
    lengths,
    init_carry,
    logit_ids,
    *,
    space,
    layer,
    flags,
    chunk=None,
):
    """DI of ``(B, P)`` pairs through the packed schedule (concrete ``pairs``/``target``).

    Args:
      params: LSTM parameters; tokens: ``(B, T)``; pairs: ``(B, P, 2)``; target:
        ``(B, P)``; lengths: ``(B,)``; init_carry: per-layer ``(h (B, H), c (B, H))``;
        logit_ids: ``(K,)`` or None; space, layer, flags: as in
        :func:`jaxdyn.analysis.interdependence.interdependence`; chunk: lanes per chunk.

    Returns:
      ``(B, P)`` DI values.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Murdoch et al. (2018), Eqs. 8-19.
    """
    if chunk is not None and (not isinstance(chunk, int | np.integer) or chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {chunk!r}")
    sched = schedule(
        np.asarray(pairs),
        np.asarray(target),
        np.asarray(lengths),
        tokens.shape[1],
        flags[1],
        chunk,
    )
    di = _di_packed_jit(
        params,
        tokens,
        init_carry,
        logit_ids,
        jax.tree_util.tree_map(jnp.asarray, sched),
        space=space,
        layer=layer,
        flags=flags,
    )
    return di.reshape(pairs.shape[:2])
