"""Packed beta-only CD for decompositional interdependence (DI) of many spans.

:mod:`jaxdyn.decompose.lstm.interdependence` reads ``beta_h`` of a span ``{x}``,
``{y}`` or ``{x, y}`` at one target step. Two facts make most of the
span-by-time grid of the plain computation unnecessary:

* **beta is exactly 0 before a span's first position** ``lo``: there the relevant
  input and the relevant carry are 0, every Shapley share of ``r = 0`` is 0
  (``f(0 + b) - f(b) = f(a) - f(a - 0) = 0``), and no bias product is relevant
  outside the span. This holds at every layer, since an upper layer's relevant
  input is the lower layer's ``beta_h``. So a span's recursion can start at
  ``lo`` from a zero carry: it needs ``target - lo + 1`` steps, not ``T``.
* **Only positions up to the largest target that reads a span matter.**

The schedule (:mod:`jaxdyn.decompose.lstm.di_schedule`, host side, NumPy) lists the
distinct spans of all sentences (single words are shared by every pair that uses
them) and packs them back to back into lanes of ``R`` steps, in two phases:
single words run from their word to the last target that reads them; a pair
span ``{lo, hi}`` equals its first word's beta before ``hi``, so it is forked:
it starts at ``hi`` from the single word's full carry (all layers' ``beta_h``,
``beta_c``, which phase 1 outputs) and runs only ``target - hi + 1`` steps. A
span's first step sets the lane's carry (zeros or the fork state); idle steps
are reset to zeros.

The kernel is the beta-only recursion of one lane, all layers in one step,
vmapped over lanes and scanned over ``R``: per step one ``(lanes, H) x (H, 4H)``
product at the first layer and one ``(lanes, 2H) x (2H, 4H)`` product (input and
recurrent weights stacked) per layer above. It reads the shared forward pass
(pre-activations ``a``, cells ``c``, their activations and the first layer's word
projection, computed once per sentence outside the scan) by position. Lane and
step counts are rounded up to a few sizes (``R`` to a multiple of 8, at most
``T``; lanes to at least 32, then 8 sizes per octave) so that calls of similar
size reuse one compiled kernel; a new size compiles once more.

References:
  Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD); Saphra & Lopez (2020),
  Findings of EMNLP, Eq. 1 (interdependence).
"""

from __future__ import annotations

import collections
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.interactions import di_ratio, di_ratio_linear
from jaxdyn.decompose.lstm.di_schedule import schedule
from jaxdyn.decompose.lstm.forward import _split4, forward, zero_carry
from jaxdyn.models.lstm import decoder_weight, layer_names


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


def beta_layer(p, a_full, c_full, rel_in, span_bias, started, decompose_output_gate):
    """Beta-only CD recursion of one layer over ``(T, .)`` sequences; returns ``(T, H)``.

    ``started`` ``(T,)``: at or after the span's first position. Before it beta is 0
    in exact arithmetic; it is set to 0 there because rounding can differ between
    ``fn(b)`` and ``fn(0 + b)`` (e.g. when XLA constant-folds one under an outer jit).
    """
    bias, w_hh_t = p["bias_ih"] + p["bias_hh"], p["weight_hh"].T

    def step(carry, xs):
        bh, bc = carry
        r_in, a, c, sb, live = xs
        bh, bc = beta_cell(bias, r_in + bh @ w_hh_t, a, c, bc, sb, decompose_output_gate)
        bh, bc = jnp.where(live, bh, 0.0), jnp.where(live, bc, 0.0)
        return (bh, bc), bh

    zero = jnp.zeros(c_full.shape[-1], c_full.dtype)
    _, bh = jax.lax.scan(step, (zero, zero), (rel_in, a_full, c_full, span_bias, started))
    return bh


def _run_phase(layers, tabs, phase, init_table, *, flags, full):
    """Scan one packed phase: per step, all layers' ``(beta_h, beta_c)`` (``full``) or the
    top layer's ``beta_h``, ``(C, R, W, .)``. ``tabs``: per-layer forward tables."""
    dog, _, upper_bias_in_span = flags
    hid = [p["weight_hh"].shape[1] for p in layers]
    off = np.cumsum([0] + [2 * h for h in hid])
    n_in = tabs[0].shape[1] - 10 * hid[0]  # layer 0 rows start with the word projection
    biases = [p["bias_ih"] + p["bias_hh"] for p in layers]
    b_acts = [bias_acts(b) for b in biases]  # outside the scan: XLA does not hoist them
    w_t = [layers[0]["weight_hh"].T] + [
        jnp.concatenate([p["weight_ih"], p["weight_hh"]], 1).T for p in layers[1:]
    ]
    zero_row = init_table.shape[0] - 1

    def lane_step(carry, xs):  # one lane, one step, all layers
        pos, rel, sb, reset, init = xs
        start = init_table[jnp.where(init < 0, zero_row, init)]
        new = []
        for l, h in enumerate(hid):
            bh = jnp.where(reset, start[off[l] : off[l] + h], carry[l][0])
            bc = jnp.where(reset, start[off[l] + h : off[l + 1]], carry[l][1])
            row = tabs[l][pos]
            if l == 0:
                r = jnp.where(rel, row[:n_in], 0.0) + bh @ w_t[0]
                row = row[n_in:]
            else:
                r = jnp.concatenate([new[-1][0], bh]) @ w_t[l]
            parts = jnp.split(row, [k * h for k in range(4, 10)])
            bh, bc = beta_cell(
                biases[l], r, parts[0], parts[1], bc, sb & (l == 0 or upper_bias_in_span),
                dog, tuple(parts[2:]), b_acts[l],
            )  # fmt: skip
            new.append((bh, bc))
        out = jnp.concatenate([v for hc in new for v in hc]) if full else new[-1][0]
        return tuple(new), out

    step = jax.vmap(lane_step)

    def run(xs):  # (R, W) step arrays of one chunk
        w = xs[0].shape[1]
        zero = tuple((jnp.zeros((w, h), init_table.dtype),) * 2 for h in hid)
        return jax.lax.scan(step, zero, xs)[1]

    if phase.pos.shape[0] == 1:
        return run(tuple(v[0] for v in phase))[None]
    return jax.lax.map(run, tuple(phase))


def _forward_tables(params, tokens, init_carry, names):
    """Per-layer ``(B T, .)`` rows ``[a, c, forward activations]`` (layer 0: word
    projection first), computed once for all spans, and the last layer's ``h (B, T, H)``."""
    layers = [params["rnn"][n] for n in names]
    hs, cs, as_ = jax.vmap(forward, in_axes=(None, 0, 0))(params, tokens, init_carry)
    xproj = params["encoder"]["weight"][tokens.reshape(-1)] @ layers[0]["weight_ih"].T
    tabs = []
    for l in range(len(layers)):
        a, c = as_[l].reshape(-1, as_[l].shape[-1]), cs[l].reshape(-1, cs[l].shape[-1])
        tabs.append(jnp.concatenate([*([xproj] if l == 0 else []), a, c, *forward_acts(a, c)], 1))
    return layers, tabs, hs[len(layers) - 1]


def readout(params, bx, by, bxy, h, logit_ids, *, spaces, parts):
    """DI (and the parts) at the targets in each space, from hidden-space parts.

    Args:
      params: LSTM parameters; bx, by, bxy: ``beta_h`` of ``A``, ``B``, ``A | B`` at the
        targets ``(N, H)``; h: the forward pass's ``h`` there ``(N, H)``;
      logit_ids: ``(K,)`` decoder rows or None; spaces: tuple of ``"hidden"``/``"logits"``;
      parts: also return the parts.

    Returns:
      Per space, ``(di (N,),)`` or, with ``parts``, ``(di, beta_x, beta_y, beta_xy,
      output)``: hidden space ``beta_h`` and ``h``; logit space ``W_dec beta`` (no
      decoder bias) and the forward logits ``W_dec h + b``.

    Logit-space DI without the parts need not form the ``(N, K)`` logits
    (:func:`jaxdyn.analysis.interactions.di_ratio_linear`: the norms through a
    ``H x H`` factor of ``W_dec``), so its cost hardly grows with the vocabulary.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    out = []
    for space in spaces:
        vals = (bx, by, bxy, h)
        if space == "logits":
            w, b = decoder_weight(params), params["decoder"]["bias"]
            if logit_ids is not None:
                w, b = w[logit_ids], b[logit_ids]
            if not parts:  # norms only: no (N, K) logits
                out.append((di_ratio_linear(bx, by, bxy, w),))
                continue
            vals = (bx @ w.T, by @ w.T, bxy @ w.T, h @ w.T + b)
        di = di_ratio(*vals[:3])
        out.append((di, *vals) if parts else (di,))
    return tuple(out)


def _di_packed(
    params, tokens, target, init_carry, logit_ids, sched, *, spaces, layer, flags, parts
):
    names = layer_names(params)[: layer + 1]
    if init_carry is None:
        init_carry = zero_carry(params, tokens.shape[0], params["encoder"]["weight"].dtype)
    layers, tabs, h_top = _forward_tables(params, tokens, init_carry, names)
    hid = [p["weight_hh"].shape[1] for p in layers]
    width = 2 * sum(hid)
    dtype = params["encoder"]["weight"].dtype
    zero = jnp.zeros((1, width), dtype)
    out1 = _run_phase(layers, tabs, sched.single, zero, flags=flags, full=True)
    out1 = out1.reshape(-1, width)
    out2 = _run_phase(
        layers, tabs, sched.forked, jnp.concatenate([out1, zero]), flags=flags, full=False
    )
    top = width - 2 * hid[-1]
    flat = jnp.concatenate(
        [out1[:, top : top + hid[-1]], out2.reshape(-1, hid[-1]), zero[:, : hid[-1]]]
    )
    b3 = flat[sched.read]
    n_b, t_len = tokens.shape
    h = h_top.reshape(n_b * t_len, -1)[(jnp.arange(n_b)[:, None] * t_len + target).reshape(-1)]
    return readout(params, b3[:, 0], b3[:, 1], b3[:, 2], h, logit_ids, spaces=spaces, parts=parts)


_di_packed_jit = jax.jit(_di_packed, static_argnames=("spaces", "layer", "flags", "parts"))


_CACHE: collections.OrderedDict = collections.OrderedDict()
CACHE_BYTES = 64 << 20  # schedules kept (device arrays), least recently used dropped first


def clear_schedule_cache() -> None:
    """Forget the memoised schedules (e.g. to time schedule construction)."""
    _CACHE.clear()


def cached_schedule(pairs, target, lengths, t_len: int, span_bias: str, chunk):
    """:func:`jaxdyn.decompose.lstm.di_schedule.schedule` as device arrays, memoised on
    the inputs' bytes (a study reads the same pairs at every checkpoint)."""
    digest = hashlib.blake2b(digest_size=16)
    for a in (pairs, target, lengths):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.shape}{a.dtype.str}".encode())
        digest.update(a.tobytes())
    key = (digest.digest(), t_len, span_bias, chunk)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key][0]
    sched = jax.tree_util.tree_map(
        jnp.asarray, schedule(pairs, target, lengths, t_len, span_bias, chunk)
    )
    size = sum(v.nbytes for v in jax.tree_util.tree_leaves(sched))
    _CACHE[key] = (sched, size)
    while sum(v[1] for v in _CACHE.values()) > CACHE_BYTES and len(_CACHE) > 1:
        _CACHE.popitem(last=False)
    return sched


def di_packed(
    params,
    tokens,
    pairs,
    target,
    lengths,
    init_carry,
    logit_ids,
    *,
    spaces,
    layer,
    flags,
    parts=False,
    chunk=None,
):
    """DI of ``(B, P)`` pairs through the packed schedule (concrete ``pairs``/``target``).

    Args:
      params: LSTM parameters; tokens: ``(B, T)``; pairs: ``(B, P, 2)`` positions or
        ``(B, P, 2, 2)`` spans (NumPy); target: ``(B, P)`` (NumPy); lengths: ``(B,)``
        (NumPy); init_carry: per-layer ``(h (B, H), c (B, H))`` or None (zeros); logit_ids: ``(K,)`` or
        None; spaces: tuple of spaces; layer, flags: as in
        :func:`jaxdyn.decompose.lstm.interdependence.interdependence`; parts: also return
        the parts (:func:`readout`); chunk: lanes per chunk.

    Returns:
      Per space, a tuple of arrays with leading axes ``(B, P)`` (:func:`readout`).

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Murdoch et al. (2018), Eqs. 8-19.
    """
    if chunk is not None and (not isinstance(chunk, int | np.integer) or chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {chunk!r}")
    pairs, target = np.asarray(pairs), np.asarray(target)
    sched = cached_schedule(pairs, target, np.asarray(lengths), tokens.shape[1], flags[1], chunk)
    out = _di_packed_jit(
        params,
        tokens,
        jnp.asarray(target, jnp.int32),
        init_carry,
        logit_ids,
        sched,
        spaces=spaces,
        layer=layer,
        flags=flags,
        parts=parts,
    )
    lead = pairs.shape[:2]
    return tuple(tuple(v.reshape(*lead, *v.shape[1:]) for v in vals) for vals in out)
