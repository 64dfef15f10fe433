"""The compiled DI kernel of :mod:`jaxdyn.decompose.transformer.interdependence`.

Beta-only CD-T: each rule of :mod:`jaxdyn.decompose.transformer.rules` applied to
``beta`` alone, reading ``gamma + iota = total - beta`` from the forward pass and the
bias term ``iota`` (separate biases) from one stream per sentence. Fixed shapes: every
source set runs over all ``T`` positions.

References:
  Hsu et al. (2025), ICLR, Sec. 3 (CD-T); Saphra & Lopez (2020), Findings of EMNLP,
  Eq. 1 (DI); Murdoch et al. (2018), Eqs. 10-12.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxdyn.analysis.interactions import di_ratio, di_ratio_linear
from jaxdyn.decompose.transformer import rules as R
from jaxdyn.models.transformer import block_names, decoder_weight, layer_norm

# ----------------------------------------------------------------------------- beta-only rules


def _lin(beta, w, c, tot_out, bias):
    """Linear rule on beta; ``tot_out`` is the map's forward output (``x W + c``)."""
    bw = beta @ w
    if bias == "separate":
        return bw
    return bw + R.share(bw, tot_out - c - bw) * c


def _ln(beta, p, sigma, tot_in, bias):
    out = p["scale"] * (beta - beta.mean(-1, keepdims=True)) / sigma
    if bias == "separate":
        return out
    return out + R.share(beta, tot_in - beta) * p["bias"]


def _gelu(beta, u, iota, activation):
    """GELU rule on beta with ``u`` the forward input and ``iota`` its bias term."""
    f_u, f_rest = R.gelu(u), R.gelu(u - beta)
    if activation == "irrelevant_first":
        new = f_u - f_rest
    else:
        new = 0.5 * ((R.gelu(beta + iota) - R.gelu(iota)) + (f_u - f_rest))
    return jnp.where(beta == 0, 0.0, new)


def _mix(probs, v):
    """``A_h v_h`` per head: probs ``(H, T, T)``, v ``(T, D)``."""
    h = probs.shape[0]
    t, d = v.shape
    vh = v.reshape(t, h, d // h)
    return jnp.einsum("hts,shd->thd", probs, vh).reshape(t, d)


def _iota_pre(params, tokens, fw: R.Forward, rules: R.Rules):
    """The bias term at every GELU input ``(L, T, F)`` (separate biases; zeros otherwise)."""
    if rules.bias != "separate":
        return jnp.zeros_like(fw.pre)
    iota = jnp.zeros_like(fw.stream[0])
    if "pos" in params and rules.positions == "bias":
        iota = params["pos"]["weight"][: tokens.shape[0]]
    # LayerNorm rule on the bias term: its own mean, the full input's sigma, plus the shift
    ln = lambda x, q, s: q["scale"] * (x - x.mean(-1, keepdims=True)) / s + q["bias"]  # noqa: E731
    out = []
    for l, name in enumerate(block_names(params)):
        p = params[name]
        v = ln(iota, p["ln_1"], fw.sigma1[l]) @ p["attn"]["wv"] + p["attn"]["bv"]
        iota = iota + _mix(fw.probs[l], v) @ p["attn"]["wo"] + p["attn"]["bo"]
        u = ln(iota, p["ln_2"], fw.sigma2[l]) @ p["mlp"]["w_in"] + p["mlp"]["b_in"]
        out.append(u)
        iota = iota + R.gelu(u) @ p["mlp"]["w_out"] + p["mlp"]["b_out"]
    return jnp.stack(out)


def _beta_stream(params, beta, fw, v_tot, iota_pre, rules, n_blocks):
    """beta ``(T, D)`` after each of the first ``n_blocks`` blocks: ``[(T, D)] * n_blocks``."""
    out = []
    for l, name in enumerate(block_names(params)[:n_blocks]):
        p, bias = params[name], rules.bias
        h = _ln(beta, p["ln_1"], fw.sigma1[l], fw.stream[l], bias)
        v = _lin(h, p["attn"]["wv"], p["attn"]["bv"], v_tot[l], bias)
        beta = beta + _lin(_mix(fw.probs[l], v), p["attn"]["wo"], p["attn"]["bo"], fw.attn[l], bias)
        h = _ln(beta, p["ln_2"], fw.sigma2[l], fw.mid[l], bias)
        u = _lin(h, p["mlp"]["w_in"], p["mlp"]["b_in"], fw.pre[l], bias)
        g = _gelu(u, fw.pre[l], iota_pre[l], rules.activation)
        beta = beta + _lin(g, p["mlp"]["w_out"], p["mlp"]["b_out"], fw.mlp[l], bias)
        out.append(beta)
    return out


# ----------------------------------------------------------------------------- kernel


def _sets(pairs, t_len, spans):
    """Source masks ``(S, T)`` and, per pair, the rows of ``A``, ``B``, ``A | B``."""
    pos = jnp.arange(t_len)
    n = pairs.shape[0]
    if spans:
        lo, hi = pairs[..., 0], pairs[..., 1]  # (P, 2)
        inside = (pos >= lo[..., None]) & (pos <= hi[..., None])  # (P, 2, T)
        masks = jnp.concatenate([inside[:, 0], inside[:, 1], inside[:, 0] | inside[:, 1]])
        rows = jnp.arange(n)
        return masks, rows, rows + n, rows + 2 * n
    x, y = pairs[:, 0], pairs[:, 1]
    union = (pos == x[:, None]) | (pos == y[:, None])
    masks = jnp.concatenate([jnp.eye(t_len, dtype=bool), jnp.zeros((1, t_len), bool), union])
    empty = lambda z: jnp.where(z < 0, t_len, z)  # noqa: E731
    return masks, empty(x), empty(y), t_len + 1 + jnp.arange(n)


def _map_sets(fn, masks, chunk):
    """``fn`` over the rows of ``masks``, ``chunk`` rows at a time (None: all at once)."""
    s = masks.shape[0]
    if chunk is None or chunk >= s:
        return jax.vmap(fn)(masks)
    n = -(-s // chunk)
    padded = jnp.concatenate([masks, jnp.zeros((n * chunk - s, masks.shape[1]), masks.dtype)])
    out = jax.lax.map(jax.vmap(fn), padded.reshape(n, chunk, -1))
    return jax.tree_util.tree_map(lambda v: v.reshape(n * chunk, *v.shape[2:])[:s], out)


def _di_sentence(params, tokens, pairs, target, length, logit_ids, *, heads, rules, spaces,
                 layer, spans, chunk):  # fmt: skip
    """Gathered parts of one sentence: ``{space: (b_x, b_y, b_xy, output)}`` at the targets."""
    fw = R.forward(params, tokens, heads)
    t_len = tokens.shape[0]
    dtype = params["embed"]["weight"].dtype
    names = block_names(params)
    v_tot = jnp.stack(
        [
            layer_norm(params[n]["ln_1"], fw.stream[l]) @ params[n]["attn"]["wv"]
            + params[n]["attn"]["bv"]
            for l, n in enumerate(names)
        ]
    )
    iota_pre = _iota_pre(params, tokens, fw, rules)
    masks, rx, ry, rxy = _sets(pairs, t_len, spans)
    masks = (masks & (jnp.arange(t_len) < length)).astype(dtype)
    top = len(names) - 1
    n_blocks = (top if "logits" in spaces else layer) + 1
    emb = params["embed"]["weight"][tokens]
    with_pos = "pos" in params and rules.bias == "proportional" and rules.positions == "bias"
    if with_pos:
        emb = emb + params["pos"]["weight"][:t_len]

    def one(mask):
        outs = _beta_stream(params, mask[:, None] * emb, fw, v_tot, iota_pre, rules, n_blocks)
        keep = {"hidden": outs[min(layer, n_blocks - 1)], "logits": outs[-1]}
        return {s: keep[s] for s in spaces}

    streams = _map_sets(one, masks, chunk)
    res = {}
    if "hidden" in spaces:
        b = streams["hidden"]
        res["hidden"] = (b[rx, target], b[ry, target], b[rxy, target], fw.stream[layer + 1][target])
    if "logits" in spaces:
        b, x_tot = streams["logits"], fw.stream[-1][target]
        sig = fw.sigmaf[target]
        w, c = decoder_weight(params), params["decoder"]["bias"]
        lg = fw.logits
        if logit_ids is not None:
            w, c, lg = w[logit_ids], c[logit_ids], lg[:, logit_ids]
        lg = lg[target]
        ys = [_ln(b[r, target], params["ln_f"], sig, x_tot, rules.bias) for r in (rx, ry, rxy)]
        if rules.bias == "proportional":
            ys = [_lin(y, w.T, c, lg, "proportional") for y in ys]
        res["logits"] = (*ys, lg)
    return res


def _di_batch(params, tokens, pairs, target, lengths, logit_ids, *, parts, **kw):
    one = functools.partial(_di_sentence, **kw)
    got = jax.vmap(one, in_axes=(None, 0, 0, 0, 0, None))(
        params, tokens, pairs, target, lengths, logit_ids
    )
    out = {}
    for space, (bx, by, bxy, output) in got.items():
        if space == "logits" and kw["rules"].bias == "separate":
            w = decoder_weight(params)
            w = w if logit_ids is None else w[logit_ids]
            if not parts:
                flat = [v.reshape(-1, v.shape[-1]) for v in (bx, by, bxy)]
                out[space] = (di_ratio_linear(*flat, w).reshape(bx.shape[:2]),)
                continue
            bx, by, bxy = (v @ w.T for v in (bx, by, bxy))
        di = di_ratio(bx, by, bxy)
        out[space] = (di, bx, by, bxy, output) if parts else (di,)
    return out


_STATIC = ("heads", "rules", "spaces", "layer", "spans", "chunk", "parts")
di_batch_jit = jax.jit(_di_batch, static_argnames=_STATIC)
