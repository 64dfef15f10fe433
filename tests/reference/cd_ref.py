"""Independent NumPy reference of contextual decomposition for LSTM LMs.

Written from the equations of Murdoch, Liu & Yu (2018), Eqs. 8-19, in the
references' style: one call per span, a Python loop over time, one matrix-vector
product per gate. Float64 by default; ``dtype`` selects another precision (the
benchmark uses float32). Span: a set of positions; convention flags as in
``jaxdyn.decompose.lstm.cd``.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _three(r, i, b, fn):
    """Shares of fn(r + i + b): averaged over the two orders of adding r and i after b."""
    rel = 0.5 * (fn(r + b) - fn(b) + fn(r + i + b) - fn(i + b))
    irr = 0.5 * (fn(i + b) - fn(b) + fn(r + i + b) - fn(r + b))
    return rel, irr, fn(b)


def _two(r, i):
    return 0.5 * (np.tanh(r) + np.tanh(r + i) - np.tanh(i)), 0.5 * (
        np.tanh(i) + np.tanh(r + i) - np.tanh(r)
    )


def numpy_params(params, dtype=np.float64):
    """Nested dict of NumPy arrays (gates split) from a jaxdyn parameter tree."""
    layers = sorted(params["rnn"], key=lambda s: int(s[1:]))
    out = {"emb": np.asarray(params["encoder"]["weight"], dtype), "layers": []}
    for name in layers:
        p = params["rnn"][name]
        out["layers"].append(
            {
                "W_ih": np.split(np.asarray(p["weight_ih"], dtype), 4, axis=0),
                "W_hh": np.split(np.asarray(p["weight_hh"], dtype), 4, axis=0),
                "b": np.split(np.asarray(p["bias_ih"], dtype) + np.asarray(p["bias_hh"], dtype), 4),
            }
        )
    dec = params["decoder"]
    w = dec["weight"] if "weight" in dec else params["encoder"]["weight"]
    out["W_dec"] = np.asarray(w, dtype)
    out["b_dec"] = np.asarray(dec["bias"], dtype)
    return out


def forward_ref(np_params, tokens, init_carry=None):
    """Plain forward: lists (per layer) of h (T, H) and c (T, H), and logits (T, V)."""
    x = np_params["emb"][np.asarray(tokens)]
    hs, cs = [], []
    for l, p in enumerate(np_params["layers"]):
        hdim = p["W_hh"][0].shape[0]
        h = np.zeros(hdim, x.dtype) if init_carry is None else np.asarray(init_carry[l][0], x.dtype)
        c = np.zeros(hdim, x.dtype) if init_carry is None else np.asarray(init_carry[l][1], x.dtype)
        hl, cl = [], []
        for t in range(len(x)):
            a = [p["W_ih"][k] @ x[t] + p["W_hh"][k] @ h + p["b"][k] for k in range(4)]
            c = _sigmoid(a[1]) * c + _sigmoid(a[0]) * np.tanh(a[2])
            h = _sigmoid(a[3]) * np.tanh(c)
            hl.append(h)
            cl.append(c)
        hs.append(np.stack(hl))
        cs.append(np.stack(cl))
        x = hs[-1]
    return hs, cs, x @ np_params["W_dec"].T + np_params["b_dec"]


def cd_ref(
    np_params,
    tokens,
    span,
    *,
    init_carry=None,
    decompose_output_gate=False,
    span_bias="inclusive",
    upper_bias_in_span=False,
    decode=True,
):
    """CD for one span (an iterable of positions).

    Returns:
      dict with ``beta_h, gamma_h, beta_c, gamma_c`` (lists over layers of (T, H))
      and, if ``decode``, ``beta_logits, gamma_logits`` (T, V) of the top layer
      (decoder bias apart).
    """
    tokens = np.asarray(tokens)
    span = {int(s) for s in span}
    T = len(tokens)
    if span_bias == "inclusive":
        bias_pos = span
    elif span_bias == "exclusive_last":  # Murdoch's start <= t < stop, for any set
        bias_pos = {t for t in span if t + 1 in span}
    else:
        raise ValueError(span_bias)
    x = np_params["emb"][tokens]
    rel_inputs = [x[t] if t in span else np.zeros_like(x[t]) for t in range(T)]
    irr_inputs = [np.zeros_like(x[t]) if t in span else x[t] for t in range(T)]
    out = {"beta_h": [], "gamma_h": [], "beta_c": [], "gamma_c": []}
    for l, p in enumerate(np_params["layers"]):
        W_ii, W_if, W_ig, W_io = p["W_ih"]
        W_hi, W_hf, W_hg, W_ho = p["W_hh"]
        b_i, b_f, b_g, b_o = p["b"]
        hdim = W_hi.shape[0]
        rel_h = np.zeros(hdim, x.dtype)
        rel_c = np.zeros(hdim, x.dtype)
        if init_carry is None:
            irr_h, irr_c = np.zeros(hdim, x.dtype), np.zeros(hdim, x.dtype)
        else:
            irr_h = np.asarray(init_carry[l][0], x.dtype)
            irr_c = np.asarray(init_carry[l][1], x.dtype)
        bh, gh, bc, gc = [], [], [], []
        for t in range(T):
            xr, xi = rel_inputs[t], irr_inputs[t]
            ri, rf, rg, ro = (
                W @ xr + U @ rel_h
                for W, U in ((W_ii, W_hi), (W_if, W_hf), (W_ig, W_hg), (W_io, W_ho))
            )
            ii, if_, ig, io = (
                W @ xi + U @ irr_h
                for W, U in ((W_ii, W_hi), (W_if, W_hf), (W_ig, W_hg), (W_io, W_ho))
            )
            i_r, i_i, i_b = _three(ri, ii, b_i, _sigmoid)
            g_r, g_i, g_b = _three(rg, ig, b_g, np.tanh)
            f_r, f_i, f_b = _three(rf, if_, b_f, _sigmoid)
            new_rc = i_r * (g_r + g_b) + i_b * g_r + (f_r + f_b) * rel_c
            new_ic = (
                i_i * (g_r + g_i + g_b)
                + (i_r + i_b) * g_i
                + (f_r + f_i + f_b) * irr_c
                + f_i * rel_c
            )
            in_span_bias = (t in bias_pos) if (l == 0 or upper_bias_in_span) else False
            if in_span_bias:
                new_rc = new_rc + i_b * g_b
            else:
                new_ic = new_ic + i_b * g_b
            t_r, t_i = _two(new_rc, new_ic)
            if decompose_output_gate:
                o_r, o_i, o_b = _three(ro, io, b_o, _sigmoid)
                new_rh = (o_r + o_b) * t_r
                new_ih = o_i * t_r + (o_r + o_i + o_b) * t_i
            else:
                o = _sigmoid(ro + io + b_o)
                new_rh, new_ih = o * t_r, o * t_i
            rel_h, irr_h, rel_c, irr_c = new_rh, new_ih, new_rc, new_ic
            bh.append(rel_h)
            gh.append(irr_h)
            bc.append(rel_c)
            gc.append(irr_c)
        for k, v in zip(("beta_h", "gamma_h", "beta_c", "gamma_c"), (bh, gh, bc, gc)):
            out[k].append(np.stack(v))
        rel_inputs, irr_inputs = out["beta_h"][-1], out["gamma_h"][-1]
    if not decode:
        return out
    out["beta_logits"] = out["beta_h"][-1] @ np_params["W_dec"].T
    out["gamma_logits"] = out["gamma_h"][-1] @ np_params["W_dec"].T
    return out


def _positions(part):
    """A part of a DI pair: an int position (-1 = empty) or an iterable of positions."""
    if isinstance(part, int | np.integer):
        return [int(part)] if part >= 0 else []
    return sorted({int(p) for p in part})


def di_ref(np_params, tokens, x, y, target, *, layer=-1, space="hidden", parts=False, **kw):
    """Decompositional interdependence of parts x and y at ``target``.

    A part is a position (-1 = empty) or an iterable of positions (a span).
    DI = ||beta_{x|y} - beta_x - beta_y|| / ||beta_{x|y}||, 0 when beta_{x|y} = 0.
    With ``parts``, returns ``(di, beta_x, beta_y, beta_xy)`` (zeros for empty parts).
    """

    def beta(span):
        if not span:
            return None
        r = cd_ref(np_params, tokens, span, decode=space == "logits", **kw)
        if space == "hidden":
            return r["beta_h"][layer][target]
        return r["beta_logits"][target]

    sx, sy = _positions(x), _positions(y)
    bxy, bx, by = beta(sorted(set(sx + sy))), beta(sx), beta(sy)
    if bxy is None:
        return (0.0, None, None, None) if parts else 0.0
    bx = np.zeros_like(bxy) if bx is None else bx
    by = np.zeros_like(bxy) if by is None else by
    den = np.linalg.norm(bxy)
    di = 0.0 if den == 0 else float(np.linalg.norm(bxy - bx - by) / den)
    return (di, bx, by, bxy) if parts else di
