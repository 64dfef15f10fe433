"""Contextual decomposition of pre-LN Transformer language models (CD-T).

Splits every node of the forward pass of :mod:`jaxdyn.models.transformer` into the
relevant part ``beta`` of a chosen set of input positions (any set: positions or
spans), the irrelevant part ``gamma`` and the bias term ``iota``, with
``beta + gamma + iota`` equal to the forward pass (completeness, up to rounding);
the rules are in :mod:`jaxdyn.decompose.transformer.rules`. Nodes: the residual
stream (the embedding ``x_0`` and each block's output), each block's attention and
MLP outputs, and the logits.

* **Padding**: positions ``t >= length`` are never relevant and their parts are set to
  0; residuals ignore them. Earlier positions do not depend on them (causal attention).
* **Forward pass**: the model's own pure functions
  (:func:`jaxdyn.models.transformer.lm_apply`) give the attention probabilities and
  the totals; ``heads`` is not recoverable from the parameters, so it is an argument.

References:
  Hsu et al. (2025), "Efficient automated circuit discovery in transformers using
  contextual decomposition", ICLR, Sec. 3; Murdoch, Liu & Yu (2018), ICLR, Eqs. 10-12.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.decompose.lstm._checks import as_int
from jaxdyn.decompose.transformer import rules as R
from jaxdyn.decompose.transformer._checks import check_params, check_tokens
from jaxdyn.models.transformer import block_names, decoder_weight


class CDResult(NamedTuple):
    """CD-T of one sequence for one source set (add leading axes when batched).

    Attributes:
      beta, gamma, iota: ``(L+1, T, D)`` parts of the residual stream (index 0: the
        embedding ``x_0``; ``l + 1``: block ``l``'s output).
      beta_attn, gamma_attn, iota_attn: ``(L, T, D)`` parts of each attention output.
      beta_mlp, gamma_mlp, iota_mlp: ``(L, T, D)`` parts of each MLP output.
      beta_logits, gamma_logits, iota_logits: ``(T, K)`` parts of the logits (``iota``
        holds the decoder bias and what the bias term contributes; 0 with
        ``bias="proportional"``).
      stream: ``(L+1, T, D)`` forward residual stream; logits: ``(T, K)`` forward logits.
      residual, residual_attn, residual_mlp: max ``|beta + gamma + iota - forward|`` per
        node ``(L+1,)``, ``(L,)``, ``(L,)``; residual_logits: the same for the logits.
    """

    beta: jax.Array
    gamma: jax.Array
    iota: jax.Array
    beta_attn: jax.Array
    gamma_attn: jax.Array
    iota_attn: jax.Array
    beta_mlp: jax.Array
    gamma_mlp: jax.Array
    iota_mlp: jax.Array
    beta_logits: jax.Array
    gamma_logits: jax.Array
    iota_logits: jax.Array
    stream: jax.Array
    logits: jax.Array
    residual: jax.Array
    residual_attn: jax.Array
    residual_mlp: jax.Array
    residual_logits: jax.Array


def _propagate(params, tokens, relevant, fw: R.Forward, rules: R.Rules, logit_ids):
    """Parts of every node for one float source mask ``(T,)``."""
    parts = R.embedding_parts(params, tokens, relevant, rules.positions, rules.bias)
    stream, attn, mlp = [parts], [], []
    for l, name in enumerate(block_names(params)):
        p = params[name]
        h = R.layer_norm(parts, p["ln_1"], fw.sigma1[l], rules.bias)
        a = R.attention(h, p["attn"], fw.probs[l], rules.bias)
        parts = R.add(parts, a)
        h = R.layer_norm(parts, p["ln_2"], fw.sigma2[l], rules.bias)
        u = R.linear(h, p["mlp"]["w_in"], p["mlp"]["b_in"], rules.bias)
        m = R.linear(
            R.gelu_parts(u, rules.activation), p["mlp"]["w_out"], p["mlp"]["b_out"], rules.bias
        )
        parts = R.add(parts, m)
        stream.append(parts)
        attn.append(a)
        mlp.append(m)
    y = R.layer_norm(parts, params["ln_f"], fw.sigmaf, rules.bias)
    w, b = decoder_weight(params), params["decoder"]["bias"]
    if logit_ids is not None:
        w, b = w[logit_ids], b[logit_ids]
    logits = R.linear(y, w.T, b, rules.bias)
    stack = lambda v: tuple(jnp.stack(x) for x in zip(*v))  # noqa: E731
    return stack(stream), stack(attn), stack(mlp), logits


def _cd_single(params, tokens, relevant, length, logit_ids, *, heads: int, rules: R.Rules):
    """CD-T of one sequence ``(T,)`` for ``M`` source masks ``(M, T)``: leading axis ``M``."""
    fw = R.forward(params, tokens, heads)
    t_len = tokens.shape[0]
    valid = jnp.arange(t_len) < length
    dtype = params["embed"]["weight"].dtype
    masks = (relevant.astype(bool) & valid).astype(dtype)
    fw_logits = fw.logits if logit_ids is None else fw.logits[:, logit_ids]
    vmask = valid[:, None]

    def one(mask):
        stream, attn, mlp, logits = _propagate(params, tokens, mask, fw, rules, logit_ids)
        zero = lambda parts: tuple(jnp.where(vmask, v, 0.0) for v in parts)  # noqa: E731
        stream, attn, mlp, logits = (zero(x) for x in (stream, attn, mlp, logits))

        def res(parts, total):
            err = jnp.abs(parts[0] + parts[1] + parts[2] - total)
            return jnp.max(jnp.where(vmask, err, 0.0), axis=(-2, -1))

        return CDResult(
            *stream, *attn, *mlp, *logits,
            fw.stream, fw_logits,
            res(stream, fw.stream), res(attn, fw.attn), res(mlp, fw.mlp), res(logits, fw_logits),
        )  # fmt: skip

    return jax.vmap(one)(masks)


def _cd_batch(params, tokens, relevant, lengths, logit_ids, *, heads, rules):
    one = functools.partial(_cd_single, heads=heads, rules=rules)
    return jax.vmap(one, in_axes=(None, 0, 0, 0, None))(
        params, tokens, relevant, lengths, logit_ids
    )


_cd_batch_jit = jax.jit(_cd_batch, static_argnames=("heads", "rules"))


def cd_batch(
    params: Mapping[str, Any],
    tokens: jax.Array,
    relevant: jax.Array,
    *,
    heads: int,
    lengths: jax.Array | None = None,
    logit_ids: jax.Array | None = None,
    bias: str = "separate",
    activation: str = "shapley",
    positions: str = "bias",
) -> CDResult:
    """CD-T of ``B`` sequences, each with ``M`` source sets, in one compiled call.

    Args:
      params: Transformer LM/tagger ``params`` (layout of :mod:`jaxdyn.models.transformer`);
        float64 parameters (under ``jax.enable_x64(True)``) give a float64 CD.
      tokens: ``(B, T)`` int ids (padded; ``T`` at most the learned-position context).
      relevant: ``(B, M, T)`` bool source masks (any position sets).
      heads: the model's attention heads (``model.heads``).
      lengths: ``(B,)`` valid lengths; default all ``T``.
      logit_ids: optional ``(K,)`` decoder rows to decompose (default all).
      bias, activation, positions: the rules (:mod:`jaxdyn.decompose.transformer.rules`).

    Returns:
      :class:`CDResult` with leading axes ``(B, M)``.

    Raises:
      ValueError: bad shapes, token ids, lengths, ``logit_ids``, heads or rule names;
        more positions than the learned context.

    References:
      Hsu et al. (2025), ICLR, Sec. 3; Murdoch et al. (2018), Eqs. 10-12.
    """
    tokens, relevant = as_int(tokens), jnp.asarray(relevant)
    if tokens.ndim != 2 or relevant.ndim != 3 or relevant.shape[::2] != tokens.shape:
        raise ValueError(
            f"need tokens (B, T), relevant (B, M, T); got {tokens.shape}, {relevant.shape}"
        )
    rules = R.check_rules(bias, activation, positions)
    check_params(params, heads)
    check_tokens(params, tokens, lengths, logit_ids)
    b, t = tokens.shape
    lengths = jnp.full((b,), t, jnp.int32) if lengths is None else jnp.asarray(lengths, jnp.int32)
    ids = None if logit_ids is None else jnp.asarray(logit_ids)
    return _cd_batch_jit(params, tokens, relevant, lengths, ids, heads=int(heads), rules=rules)


def contextual_decomposition(
    params: Mapping[str, Any],
    tokens: jax.Array,
    relevant: jax.Array,
    *,
    heads: int,
    length: int | jax.Array | None = None,
    logit_ids: jax.Array | None = None,
    bias: str = "separate",
    activation: str = "shapley",
    positions: str = "bias",
) -> CDResult:
    """CD-T of one token sequence for one source set.

    Args:
      params: as in :func:`cd_batch`.
      tokens: ``(T,)`` int ids.
      relevant: ``(T,)`` bool, True at the source positions (contiguous or not).
      heads: the model's attention heads.
      length: valid length (positions ``>= length`` are padding); default ``T``.
      logit_ids, bias, activation, positions: as in :func:`cd_batch`.

    Returns:
      :class:`CDResult` (shapes without batch axes).

    Raises:
      ValueError: as in :func:`cd_batch`.

    References:
      Hsu et al. (2025), ICLR, Sec. 3; Murdoch et al. (2018), Eqs. 10-12.
    """
    tokens, relevant = as_int(tokens), jnp.asarray(relevant)
    if tokens.ndim != 1 or relevant.shape != tokens.shape:
        raise ValueError(
            f"need tokens (T,) and relevant (T,), got {tokens.shape}, {relevant.shape}"
        )
    if length is not None and jnp.ndim(length) != 0:
        raise ValueError(f"length must be a scalar (one sequence), got shape {jnp.shape(length)}")
    out = cd_batch(
        params, tokens[None], relevant[None, None], heads=heads,
        lengths=None if length is None else jnp.reshape(jnp.asarray(length, jnp.int32), (1,)),
        logit_ids=logit_ids, bias=bias, activation=activation, positions=positions,
    )  # fmt: skip
    return jax.tree_util.tree_map(lambda v: v[0, 0], out)
