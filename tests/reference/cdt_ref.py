"""Independent float64 NumPy reference of contextual decomposition for Transformer LMs (CD-T).

Written from the rules (Hsu et al. 2025, CD-T, Sec. 3; Murdoch et al. 2018, Eqs. 10-12
for the nonlinearity), not from jaxdyn's code: one sequence, Python loops over
positions and heads, every node's parts kept in a dict. The model is a pre-LN
decoder: ``x_0 = E[w_t] + P_t``; per block ``a = Attn(LN_1(x))``, ``x' = x + a``,
``m = W_2 gelu(W_1 LN_2(x') + b_1) + b_2``, ``x'' = x' + m``; logits
``W_dec LN_f(x_L) + b_dec``.

Parts of every node: ``rel`` (beta), ``irr`` (gamma) and ``bias`` (iota; zero under
``bias="proportional"``). Rules:

* embedding: ``rel_t = E[w_t]`` for ``t`` in the span, else ``irr_t = E[w_t]``;
  ``P_t`` goes to ``bias`` (``positions="bias"``, separate biases), with the token
  (``positions="bias"``, proportional biases) or to ``irr`` (``positions="irrelevant"``).
* linear ``y = x W + c``: each part mapped by ``W``; ``c`` to ``bias`` (separate) or
  split ``c |rW| / (|rW| + |iW|)`` to ``rel`` and the rest to ``irr`` (half each
  where both are 0) (proportional).
* LayerNorm: ``sigma = sqrt(var(x) + eps)`` of the whole input; each part ``p`` maps to
  ``g (p - mean(p)) / sigma``; the shift ``b`` like a linear bias, split by the
  input parts' magnitudes ``|r|, |i|`` (proportional).
* attention: probabilities ``A`` of the whole input (causal softmax per head); the
  values' parts by the linear rule; each head's context part ``sum_s A[t, s] v_part[s]``;
  the output projection by the linear rule.
* GELU ``f``: ``shapley``: ``f(r + i + b)`` split over the orders of adding ``r`` and
  ``i`` after ``b``; ``irrelevant_first``: ``b`` then ``i`` then ``r``.
* residual additions add parts.
"""

from __future__ import annotations

import math

import numpy as np


def gelu(x, approximate: bool):
    x = np.asarray(x, np.float64)
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _ln_total(x, g, b, eps):
    """Plain LayerNorm of one vector."""
    mu = x.mean()
    sigma = math.sqrt(((x - mu) ** 2).mean() + eps)
    return g * (x - mu) / sigma + b, sigma


def _softmax(z):
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()


def forward_ref(ref, tokens):
    """Plain forward pass of one sequence (float64).

    Returns:
      dict: ``resid`` (L+1, T, D) residual stream (embedding, then after each block),
      ``attn``/``mlp`` (L, T, D) block outputs added to the stream, ``logits`` (T, V),
      ``probs`` (L, H, T, T), ``sigma1``/``sigma2`` (L, T), ``sigmaf`` (T,).
    """
    tokens = np.asarray(tokens)
    t_len = len(tokens)
    nh = ref["heads"]
    x = np.stack([ref["tok"][w] + ref["pos"][t] for t, w in enumerate(tokens)])
    d = x.shape[1]
    dh = d // nh
    out = {k: [] for k in ("resid", "attn", "mlp", "probs", "sigma1", "sigma2")}
    out["resid"].append(x.copy())
    for blk in ref["blocks"]:
        ln1 = np.zeros_like(x)
        s1 = np.zeros(t_len)
        for t in range(t_len):
            ln1[t], s1[t] = _ln_total(x[t], *blk["ln1"], ref["eps"])
        q, k, v = (ln1 @ blk[w] + blk[c] for w, c in (("wq", "bq"), ("wk", "bk"), ("wv", "bv")))
        ctx = np.zeros_like(x)
        probs = np.zeros((nh, t_len, t_len))
        for h in range(nh):
            sl = slice(h * dh, (h + 1) * dh)
            for t in range(t_len):
                scores = np.array([q[t, sl] @ k[s, sl] for s in range(t + 1)]) / math.sqrt(dh)
                p = _softmax(scores)
                probs[h, t, : t + 1] = p
                ctx[t, sl] = sum(p[s] * v[s, sl] for s in range(t + 1))
        a = ctx @ blk["wo"] + blk["bo"]
        x = x + a
        ln2 = np.zeros_like(x)
        s2 = np.zeros(t_len)
        for t in range(t_len):
            ln2[t], s2[t] = _ln_total(x[t], *blk["ln2"], ref["eps"])
        m = gelu(ln2 @ blk["w1"] + blk["b1"], ref["approximate"]) @ blk["w2"] + blk["b2"]
        x = x + m
        for key, val in zip(
            ("resid", "attn", "mlp", "probs", "sigma1", "sigma2"), (x.copy(), a, m, probs, s1, s2)
        ):
            out[key].append(val)
    lnf = np.zeros_like(x)
    sf = np.zeros(t_len)
    for t in range(t_len):
        lnf[t], sf[t] = _ln_total(x[t], *ref["lnf"], ref["eps"])
    res = {k: np.stack(v) for k, v in out.items()}
    res["logits"] = lnf @ ref["w_dec"].T + ref["b_dec"]
    res["sigmaf"] = sf
    return res


# ----------------------------------------------------------------------------- the rules


def _share(a, b):
    """Fraction of a proportionally split bias that goes with ``a``: ``|a| / (|a| + |b|)``."""
    tot = np.abs(a) + np.abs(b)
    return np.where(tot > 0, np.abs(a) / np.where(tot > 0, tot, 1.0), 0.5)


def _add_bias(parts, c, bias_mode, wa, wb):
    """Add the bias ``c`` to the parts (separate: to ``bias``; proportional: by ``wa, wb``)."""
    if bias_mode == "separate":
        return {"rel": parts["rel"], "irr": parts["irr"], "bias": parts["bias"] + c}
    w = _share(wa, wb)
    return {"rel": parts["rel"] + c * w, "irr": parts["irr"] + c * (1.0 - w), "bias": parts["bias"]}


def _linear(parts, w, c, bias_mode):
    mapped = {k: v @ w for k, v in parts.items()}
    return _add_bias(mapped, c, bias_mode, mapped["rel"], mapped["irr"])


def _layer_norm(parts, g, b, sigma, bias_mode):
    out = {}
    for k, v in parts.items():
        out[k] = np.stack([g * (v[t] - v[t].mean()) / sigma[t] for t in range(v.shape[0])])
    return _add_bias(out, b, bias_mode, parts["rel"], parts["irr"])


def _gelu_parts(parts, rule, approximate):
    f = lambda z: gelu(z, approximate)  # noqa: E731
    r, i, b = parts["rel"], parts["irr"], parts["bias"]
    if rule == "shapley":
        rel = 0.5 * ((f(r + b) - f(b)) + (f(r + i + b) - f(i + b)))
        irr = 0.5 * ((f(i + b) - f(b)) + (f(r + i + b) - f(r + b)))
    elif rule == "irrelevant_first":
        rel = f(r + i + b) - f(i + b)
        irr = f(i + b) - f(b)
    else:
        raise ValueError(rule)
    return {"rel": rel, "irr": irr, "bias": f(b)}


def _add(p, q):
    return {k: p[k] + q[k] for k in p}


def cdt_ref(ref, tokens, span, *, bias="separate", activation="shapley", positions="bias"):
    """CD-T parts of one sequence for the span (a set of positions).

    Returns:
      dict node -> {"rel", "irr", "bias"}: ``resid`` (L+1, T, D), ``attn``/``mlp``
      (L, T, D), ``logits`` (T, V); and ``forward`` (:func:`forward_ref`).
    """
    fw = forward_ref(ref, tokens)
    tokens = np.asarray(tokens)
    t_len = len(tokens)
    nh = ref["heads"]
    d = ref["tok"].shape[1]
    dh = d // nh
    span = set(int(s) for s in span)
    parts = {k: np.zeros((t_len, d)) for k in ("rel", "irr", "bias")}
    for t, w in enumerate(tokens):
        inside = t in span
        parts["rel" if inside else "irr"][t] += ref["tok"][w]
        if positions == "irrelevant":
            parts["irr"][t] += ref["pos"][t]
        elif bias == "separate":
            parts["bias"][t] += ref["pos"][t]
        else:
            parts["rel" if inside else "irr"][t] += ref["pos"][t]
    rec = {"resid": [parts], "attn": [], "mlp": []}
    for l, blk in enumerate(ref["blocks"]):
        ln1 = _layer_norm(parts, *blk["ln1"], fw["sigma1"][l], bias)
        vals = _linear(ln1, blk["wv"], blk["bv"], bias)
        ctx = {k: np.zeros((t_len, d)) for k in vals}
        for h in range(nh):
            sl = slice(h * dh, (h + 1) * dh)
            a = fw["probs"][l, h]
            for k in vals:
                for t in range(t_len):
                    ctx[k][t, sl] = sum(a[t, s] * vals[k][s, sl] for s in range(t + 1))
        att = _linear(ctx, blk["wo"], blk["bo"], bias)
        parts = _add(parts, att)
        ln2 = _layer_norm(parts, *blk["ln2"], fw["sigma2"][l], bias)
        hid = _gelu_parts(_linear(ln2, blk["w1"], blk["b1"], bias), activation, ref["approximate"])
        mlp = _linear(hid, blk["w2"], blk["b2"], bias)
        parts = _add(parts, mlp)
        rec["attn"].append(att)
        rec["mlp"].append(mlp)
        rec["resid"].append(parts)
    lnf = _layer_norm(parts, *ref["lnf"], fw["sigmaf"], bias)
    logits = _linear(lnf, ref["w_dec"].T, ref["b_dec"], bias)
    out = {
        node: {k: np.stack([p[k] for p in lst]) for k in ("rel", "irr", "bias")}
        for node, lst in rec.items()
    }
    out["logits"] = logits
    out["forward"] = fw
    return out


def di_ref(rel_x, rel_y, rel_xy):
    """``||b_xy - b_x - b_y|| / ||b_xy||`` (0 where ``b_xy = 0``) over the last axis."""
    num = np.linalg.norm(rel_xy - rel_x - rel_y, axis=-1)
    den = np.linalg.norm(rel_xy, axis=-1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def numpy_params(params, heads: int):
    """The reference's layout (float64 NumPy) from a ``jaxdyn.models.transformer`` tree."""
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    names = sorted((k for k in params if k.startswith("block_")), key=lambda s: int(s[6:]))
    blocks = []
    for n in names:
        p = params[n]
        a, m = p["attn"], p["mlp"]
        blocks.append(
            {
                "ln1": (f(p["ln_1"]["scale"]), f(p["ln_1"]["bias"])),
                "ln2": (f(p["ln_2"]["scale"]), f(p["ln_2"]["bias"])),
                **{k: f(a[k]) for k in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")},
                "w1": f(m["w_in"]),
                "b1": f(m["b_in"]),
                "w2": f(m["w_out"]),
                "b2": f(m["b_out"]),
            }
        )
    tok = f(params["embed"]["weight"])
    dec = params["decoder"]
    return {
        "tok": tok,
        "pos": f(params["pos"]["weight"]) if "pos" in params else np.zeros((1024, tok.shape[1])),
        "blocks": blocks,
        "lnf": (f(params["ln_f"]["scale"]), f(params["ln_f"]["bias"])),
        "w_dec": f(dec["weight"]) if "weight" in dec else tok,
        "b_dec": f(dec["bias"]),
        "heads": heads,
        "eps": 1e-5,
        "approximate": False,
    }
