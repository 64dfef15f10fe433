"""Decompositional interdependence (DI) of position or span pairs from CD-T.

``DI(A, B) = ||beta_{A|B} - beta_A - beta_B|| / ||beta_{A|B}||`` at a target position
(:func:`jaxdyn.analysis.interactions.di_ratio`), with the same arguments and results as
the LSTM's :func:`jaxdyn.decompose.lstm.interdependence` (``pairs`` ``(P, 2)``
positions or ``(P, 2, 2)`` inclusive spans, ``-1`` / ``[-1, -1]`` the empty set,
``space`` ``"hidden"``/``"logits"``/both, ``parts=True`` for :class:`DIParts`).
``beta`` is CD-T's relevant part (:mod:`jaxdyn.decompose.transformer.rules`, same
rule options as :func:`jaxdyn.decompose.transformer.contextual_decomposition`).

* **Spaces**: ``"hidden"`` is the residual stream after block ``layer`` (default the
  top block, the final LayerNorm's input); ``"logits"`` the logits' relevant part
  (the final LayerNorm and decoder rules applied to the top stream). With separate
  biases the decoder bias is not part of beta, and without ``parts`` the logit-space
  ratio is taken through the decoder matrix without forming the logits
  (:func:`jaxdyn.analysis.interactions.di_ratio_linear`). ``output`` (``parts``) is
  the forward pass at the target (the stream, or the logits with the bias).
* **Beta-only propagation**: every rule reads the irrelevant part only through
  ``beta + gamma + iota`` (the forward value, shared by all sets of a sentence) and the
  bias term ``iota`` (independent of the set; one stream per sentence), so each set
  propagates ``beta`` alone with ``gamma + iota = total - beta``. Tests check it
  against the full decomposition.
* **Sets**: position pairs use one set per position (shared by every pair), one empty
  set and one union per pair; span pairs three sets per pair. All sets run over all
  ``T`` positions with fixed shapes (``schedule="dense"``, the only schedule here:
  jit/vmap-able in every argument); ``mask_chunk`` sets at a time bound memory.
* **Guard**: ``beta_{A|B} = 0`` gives ``DI = 0`` (empty parts, parts after the target,
  padding), never NaN.
* **Context**: a model with learned positions reads at most ``C`` positions; inputs
  padded beyond ``C`` whose valid lengths fit (values on the host) are cut to ``C``
  (the cut positions are padding, which no earlier position reads).

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Eq. 1; Hsu et al. (2025), ICLR, Sec. 3 (CD-T); Murdoch et al. (2018), Eqs. 10-12.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.interactions import di_ratio, di_ratio_linear
from jaxdyn.decompose.lstm._checks import as_int, check_pairs, host_value
from jaxdyn.decompose.lstm.interdependence import SPACES, DIParts, all_pairs
from jaxdyn.decompose.transformer import rules as R
from jaxdyn.decompose.transformer._checks import check_params, check_tokens, context_of
from jaxdyn.models.transformer import block_names, decoder_weight, layer_norm

SCHEDULES = ("dense",)


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
_di_batch_jit = jax.jit(_di_batch, static_argnames=_STATIC)


# ----------------------------------------------------------------------------- public API


def _resolve(params, space, layer, mask_chunk, schedule):
    if mask_chunk is not None and (not isinstance(mask_chunk, int | np.integer) or mask_chunk < 1):
        raise ValueError(f"mask_chunk must be a positive int or None, got {mask_chunk!r}")
    if schedule not in SCHEDULES:
        raise ValueError(
            f"schedule must be one of {SCHEDULES} for a Transformer (every set runs over "
            f"all positions; the LSTM's packed schedule has no analogue), got {schedule!r}"
        )
    spaces = (space,) if isinstance(space, str) else tuple(space)
    if not spaces or any(s not in SPACES for s in spaces) or len(set(spaces)) < len(spaces):
        raise ValueError(f"space must be one of {SPACES} or a tuple of them, got {space!r}")
    n_layers = len(block_names(params))
    if not -n_layers <= layer < n_layers:
        raise ValueError(f"layer must lie in [-{n_layers}, {n_layers}), got {layer}")
    return spaces, layer % n_layers


def _fit_context(params, tokens, lengths):
    """Cut padding beyond a learned-position context when the valid lengths fit."""
    c = context_of(params)
    if c is None or tokens.shape[1] <= c:
        return tokens
    ln = None if lengths is None else host_value(lengths)
    if ln is None or np.max(ln, initial=0) > c:
        longest = tokens.shape[1] if ln is None else int(np.max(ln))
        raise ValueError(
            f"sequences of {longest} positions exceed the model's context of {c} learned "
            "positions (train with a longer data.bptt, or analyse shorter sentences)"
        )
    return tokens[:, :c]


def interdependence_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: jax.Array,
    *,
    heads: int,
    lengths: jax.Array | None = None,
    space: str | tuple[str, ...] = "hidden",
    layer: int = -1,
    logit_ids: jax.Array | None = None,
    bias: str = "separate",
    activation: str = "shapley",
    positions: str = "bias",
    mask_chunk: int | None = None,
    schedule: str = "dense",
    parts: bool = False,
):
    """DI for ``B`` padded sentences with ``P`` position or span pairs each, in one call.

    Args:
      params: Transformer LM/tagger ``params`` (layout of :mod:`jaxdyn.models.transformer`).
      tokens: ``(B, T)`` int ids; lengths: ``(B,)`` valid lengths (default ``T``).
      pairs: ``(B, P, 2)`` positions (``-1`` = empty; pad with ``(-1, -1)``, DI 0) or
        ``(B, P, 2, 2)`` inclusive spans ``[[a_lo, a_hi], [b_lo, b_hi]]`` (``[-1, -1]`` empty).
      target: ``(B, P)`` or ``(B,)`` positions at which beta is read.
      heads: the model's attention heads (``model.heads``).
      space: ``"hidden"`` (residual stream after block ``layer``), ``"logits"``, or a
        tuple of both (one computation, a dict of results).
      layer: block for hidden space (negative counts from the top).
      logit_ids: optional ``(K,)`` decoder rows for logit space.
      bias, activation, positions: CD-T rules (:mod:`jaxdyn.decompose.transformer.rules`).
      mask_chunk: sets per chunk (bounds memory); default all at once.
      schedule: ``"dense"`` (the only one; accepted for the LSTM's signature).
      parts: return :class:`DIParts` (DI, the parts and the forward output at the targets).

    Returns:
      ``(B, P)`` DI values, or :class:`DIParts` with leading axes ``(B, P)``; for a tuple
      ``space``, a dict keyed by space.

    Raises:
      ValueError: bad shapes, positions, spans, targets, token ids, lengths, options, or
        sentences longer than a learned-position context.

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Hsu et al. (2025), ICLR, Sec. 3.
    """
    tokens, pairs, target = as_int(tokens), as_int(pairs), as_int(target)
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
    rules = R.check_rules(bias, activation, positions)
    check_params(params, heads)
    spaces, layer = _resolve(params, space, layer, mask_chunk, schedule)
    xp = np if isinstance(target, np.ndarray) else jnp
    target = xp.broadcast_to(target[:, None] if target.ndim == 1 else target, pairs.shape[:2])
    b, t = tokens.shape
    check_pairs(pairs, target, t, lengths, spans=pairs.ndim == 4)
    tokens = _fit_context(params, tokens, lengths)
    check_tokens(params, tokens, lengths, logit_ids)
    lengths = np.full((b,), t, np.int32) if lengths is None else as_int(lengths)
    out = _di_batch_jit(
        params, tokens, pairs, target, lengths,
        None if logit_ids is None else jnp.asarray(logit_ids),
        heads=int(heads), rules=rules, spaces=spaces, layer=layer, spans=pairs.ndim == 4,
        chunk=mask_chunk, parts=parts,
    )  # fmt: skip
    res = {s: DIParts(*v) if parts else v[0] for s, v in out.items()}
    return res[space] if isinstance(space, str) else res


def interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    pairs: jax.Array,
    target: int | jax.Array,
    *,
    heads: int,
    length: int | jax.Array | None = None,
    **kwargs,
):
    """DI of ``P`` position or span pairs of one sentence (:func:`interdependence_batch`).

    Args:
      tokens: ``(T,)`` ids; pairs: ``(P, 2)`` positions or ``(P, 2, 2)`` spans;
      target: int or ``(P,)``; heads: the model's heads; length: valid length;
      **kwargs: ``space``, ``layer``, ``logit_ids``, rules, ``mask_chunk``,
        ``schedule``, ``parts`` as in :func:`interdependence_batch`.

    Returns:
      ``(P,)`` DI values (or :class:`DIParts`, or a dict by space).

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1; Hsu et al. (2025), ICLR, Sec. 3.
    """
    tokens, pairs, target = as_int(tokens), as_int(pairs), as_int(target)
    if tokens.ndim != 1 or pairs.ndim not in (2, 3) or pairs.shape[1:] not in ((2,), (2, 2)):
        raise ValueError(
            f"need tokens (T,), pairs (P, 2) or spans (P, 2, 2); got {tokens.shape}, {pairs.shape}"
        )
    target = (np if isinstance(target, np.ndarray) else jnp).broadcast_to(target, pairs.shape[:1])
    if length is not None and np.ndim(length) != 0:
        raise ValueError(f"length must be a scalar (one sentence), got shape {np.shape(length)}")
    out = interdependence_batch(
        params, tokens[None], pairs[None], target[None], heads=heads,
        lengths=None if length is None else as_int(length).reshape(1), **kwargs,
    )  # fmt: skip
    return jax.tree_util.tree_map(lambda v: v[0], out)


def all_pairs_interdependence(
    params: Mapping[str, Any],
    tokens: jax.Array,
    *,
    heads: int,
    max_distance: int | None = None,
    target: str | int = "last",
    length: int | None = None,
    **kwargs,
) -> tuple[np.ndarray, jax.Array]:
    """DI of all pairs ``x < y`` (within ``max_distance``) of one sentence.

    Args:
      target: ``"last"`` (position ``length - 1``), ``"pair_end"`` (each pair's ``y``) or
        an int position (pairs with ``y > target`` are dropped); other arguments as in
        :func:`interdependence`.

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
    di = interdependence(params, tokens, pairs, tgt, heads=heads, length=length, **kwargs)
    return pairs, di
