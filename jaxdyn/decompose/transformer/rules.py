"""CD-T propagation rules for the pre-LN Transformer of :mod:`jaxdyn.models.transformer`.

Every node of the forward pass is split into parts: ``beta`` (relevant: what the
chosen input positions contribute), ``gamma`` (irrelevant: the other positions) and
``iota`` (the bias term: biases, LayerNorm shifts and, by option, the learned
positions), so that ``beta + gamma + iota`` is the forward value. The attention
probabilities and the LayerNorm scales are those of the full forward pass, so every
operation but the GELU is linear in the parts.

**Biases** (``bias``):

* ``"separate"`` (default): every bias goes to ``iota``, which is propagated like the
  other parts (and through the GELU by its own value, ``f(iota)``). ``iota`` does not
  depend on the source positions, and a network that is linear except for its fixed
  attention and LayerNorm scales gives interdependence 0.
* ``"proportional"`` (CD-T's released rules): ``iota = 0``; a bias ``c`` is split
  between ``beta`` and ``gamma`` in proportion to the magnitudes the rule's weights
  name (``w = |beta'| / (|beta'| + |gamma'|)`` elementwise; ``beta += w c``,
  ``gamma += (1 - w) c``). CD-T adds ``1e-8`` to the denominator, which loses the
  bias where both parts are 0; here ``w = 1/2`` there, so completeness stays exact.

**Rules** (``x W + c``: row vectors, weights ``(in, out)`` as the model stores them):

* Embedding: ``beta_t = E[w_t]`` for ``t`` in the source set, else ``gamma_t = E[w_t]``.
  Learned positions ``P_t`` (``positions``): ``"bias"`` (default) puts them in the bias
  term (``iota``; with proportional biases they go with the token, i.e. ``beta_t`` inside
  the set, as CD-T decomposes the whole embedding output); ``"irrelevant"`` puts them in
  ``gamma``. Rotary models have no position parameters (the rotation acts inside the
  attention probabilities, which are fixed).
* Linear map: ``p -> p W`` for each part; ``c`` by the bias rule with weights
  ``|beta W|, |gamma W|``.
* LayerNorm (CD-T's linearisation): with ``sigma = sqrt(var(x) + eps)`` of the full
  input ``x``, each part ``p -> scale * (p - mean(p)) / sigma``; the shift by the bias
  rule with weights ``|beta_in|, |gamma_in|`` (the input parts, as CD-T). Exact because
  the mean is linear: the parts' centred values sum to ``x - mean(x)``.
* Attention: ``A`` (per head, causal) from the full forward pass; values
  ``v = h W_v + b_v`` by the linear rule; head ``h``'s context part ``A_h v_{part,h}``;
  the output projection ``W_o, b_o`` by the linear rule.
* GELU ``f`` on ``u = beta + gamma + iota`` (``activation``):
  ``"shapley"`` (default; Murdoch et al.'s average over the orders in which ``beta``
  and ``gamma`` join ``iota``, as the LSTM engine)::

      beta'  = ((f(beta + iota) - f(iota)) + (f(u) - f(gamma + iota))) / 2
      gamma' = ((f(gamma + iota) - f(iota)) + (f(u) - f(beta + iota))) / 2
      iota'  = f(iota)

  ``"irrelevant_first"`` (CD-T's released ``prop_act``: ``iota``, then ``gamma``, then
  ``beta``): ``iota' = f(iota)``, ``gamma' = f(gamma + iota) - f(iota)``,
  ``beta' = f(u) - f(gamma + iota)``. Where a part is exactly 0 its share is set to 0
  (so an empty source set has ``beta = 0`` exactly, not rounding noise).
* Residual additions add the parts; the final LayerNorm and the decoder
  (``y W_dec^T + b_dec``) follow the LayerNorm and linear rules.

Not implemented: CD-T's ``normalize_rel_irrel`` (moving a node's total into the larger
part wherever ``beta`` and ``gamma`` have opposite signs, a stabilising heuristic of its
code that is not one of the paper's rules); decomposing the attention probabilities.

References:
  Hsu, Zhou, Zhang, Sun, Shah, Yu & Kumbier (2025), "Efficient automated circuit
  discovery in transformers using contextual decomposition", ICLR, Sec. 3; Murdoch,
  Liu & Yu (2018), ICLR, Eqs. 10-12 (linearising a nonlinearity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.models.transformer import LN_EPS, block_names, lm_apply, merge_heads, split_heads

BIAS = ("separate", "proportional")
ACTIVATIONS = ("shapley", "irrelevant_first")
POSITIONS = ("bias", "irrelevant")


class Rules(NamedTuple):
    """The static choices of the decomposition (see the module docstring)."""

    bias: str = "separate"
    activation: str = "shapley"
    positions: str = "bias"


def check_rules(bias: str, activation: str, positions: str) -> Rules:
    """:class:`Rules` from the keyword values; ValueError naming a bad one."""
    for name, value, allowed in (
        ("bias", bias, BIAS),
        ("activation", activation, ACTIVATIONS),
        ("positions", positions, POSITIONS),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return Rules(bias, activation, positions)


def gelu(x: jax.Array) -> jax.Array:
    """The model's exact (erf) GELU."""
    return jax.nn.gelu(x, approximate=False)


class Forward(NamedTuple):
    """The forward pass of one sequence, as the rules read it (``L`` blocks).

    Attributes:
      stream: ``(L+1, T, D)`` residual stream (``x_0`` then each block's output).
      attn, mlp: ``(L, T, D)`` the blocks' attention and MLP outputs.
      mid: ``(L, T, D)`` ``x_{l-1} + a_l`` (the second LayerNorm's input).
      probs: ``(L, H, T, T)`` attention probabilities.
      pre: ``(L, T, F)`` GELU inputs ``LN_2(mid) W_in + b_in``.
      sigma1, sigma2: ``(L, T, 1)`` LayerNorm scales of ``stream[l]`` and ``mid[l]``.
      sigmaf: ``(T, 1)`` final LayerNorm scale.
      logits: ``(T, K)``.
    """

    stream: jax.Array
    attn: jax.Array
    mlp: jax.Array
    mid: jax.Array
    probs: jax.Array
    pre: jax.Array
    sigma1: jax.Array
    sigma2: jax.Array
    sigmaf: jax.Array
    logits: jax.Array


def _sigma(x: jax.Array) -> jax.Array:
    mu = x.mean(-1, keepdims=True)
    return jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + LN_EPS)


def forward(params: Mapping[str, Any], tokens: jax.Array, heads: int) -> Forward:
    """The model's own eval forward (:func:`jaxdyn.models.transformer.lm_apply`) of ``(T,)``."""
    from jaxdyn.models.transformer import layer_norm

    logits, inner = lm_apply(params, tokens[None], heads=heads, return_internals=True)
    names = block_names(params)
    stream = [inner["embedding"][0]] + [inner[n]["out"][0] for n in names]
    attn = [inner[n]["attn"][0] for n in names]
    mid = [s + a for s, a in zip(stream[:-1], attn)]
    pre = [
        layer_norm(params[n]["ln_2"], m) @ params[n]["mlp"]["w_in"] + params[n]["mlp"]["b_in"]
        for n, m in zip(names, mid)
    ]
    st = lambda v: jnp.stack(v)  # noqa: E731
    return Forward(
        stream=st(stream),
        attn=st(attn),
        mlp=st([inner[n]["mlp"][0] for n in names]),
        mid=st(mid),
        probs=st([inner[n]["probs"][0] for n in names]),
        pre=st(pre),
        sigma1=st([_sigma(s) for s in stream[:-1]]),
        sigma2=st([_sigma(m) for m in mid]),
        sigmaf=_sigma(stream[-1]),
        logits=logits[0],
    )


# ----------------------------------------------------------------------------- rules on parts
# A "parts" value is a tuple (beta, gamma, iota) of equal shapes.


def share(a: jax.Array, b: jax.Array) -> jax.Array:
    """``|a| / (|a| + |b|)`` elementwise, ``1/2`` where both are 0 (same shapes).

    References:
      Hsu et al. (2025), ICLR, Sec. 3 (bias split by the parts' magnitudes).
    """
    tot = jnp.abs(a) + jnp.abs(b)
    ok = tot > 0
    return jnp.where(ok, jnp.abs(a) / jnp.where(ok, tot, 1.0), 0.5)


def add_bias(parts, c, w_beta, w_gamma, bias: str):
    """Add ``c`` ``(D,)`` to parts ``(..., D)`` by the bias rule (separate: to ``iota``;
    proportional: ``share(w_beta, w_gamma) c`` to ``beta``, the rest to ``gamma``).

    References:
      Hsu et al. (2025), ICLR, Sec. 3.
    """
    b, g, i = parts
    if bias == "separate":
        return b, g, i + c
    w = share(w_beta, w_gamma)
    return b + w * c, g + (1.0 - w) * c, i


def linear(parts, w, c, bias: str):
    """``x W + c`` on parts ``(..., D_in)`` with ``W (D_in, D_out)``.

    References:
      Hsu et al. (2025), ICLR, Sec. 3 (linear layers).
    """
    mapped = tuple(p @ w for p in parts)
    return add_bias(mapped, c, mapped[0], mapped[1], bias)


def layer_norm(parts, p, sigma, bias: str):
    """CD-T's LayerNorm of parts ``(T, D)``: ``scale (p - mean(p)) / sigma`` with the full
    input's ``sigma (T, 1)``, the shift by the bias rule (weights: the input parts).

    References:
      Hsu et al. (2025), ICLR, Sec. 3 (LayerNorm); Ba et al. (2016), eq. 4.
    """
    out = tuple(p["scale"] * (v - v.mean(-1, keepdims=True)) / sigma for v in parts)
    return add_bias(out, p["bias"], parts[0], parts[1], bias)


def attention(parts, p, probs, bias: str):
    """Attention of parts ``(T, D)`` with the forward probabilities ``(H, T, T)``: values
    and output projection by :func:`linear`, head ``h``'s context ``A_h v_h``.

    References:
      Hsu et al. (2025), ICLR, Sec. 3 (attention with the full input's probabilities).
    """
    heads = probs.shape[0]
    vals = linear(parts, p["wv"], p["bv"], bias)
    ctx = tuple(
        merge_heads(jnp.einsum("hts,bhsd->bhtd", probs, split_heads(v[None], heads)))[0]
        for v in vals
    )
    return linear(ctx, p["wo"], p["bo"], bias)


def gelu_parts(parts, activation: str):
    """GELU of ``beta + gamma + iota`` (any equal shapes) split by the ``activation`` rule.

    References:
      Murdoch et al. (2018), Eqs. 10-12 (``"shapley"``); Hsu et al. (2025), Sec. 3.
    """
    b, g, i = parts
    f_i, f_all = gelu(i), gelu(b + g + i)
    f_gi = gelu(g + i)
    if activation == "irrelevant_first":
        new_b, new_g = f_all - f_gi, f_gi - f_i
    else:
        f_bi = gelu(b + i)
        new_b = 0.5 * ((f_bi - f_i) + (f_all - f_gi))
        new_g = 0.5 * ((f_gi - f_i) + (f_all - f_bi))
    # a part that is exactly 0 stays 0 (XLA may round f(0 + g + i) and f(g + i) apart)
    return jnp.where(b == 0, 0.0, new_b), jnp.where(g == 0, 0.0, new_g), f_i


def add(p, q):
    """Residual addition of parts."""
    return tuple(a + b for a, b in zip(p, q))


def embedding_parts(params, tokens, relevant, positions: str, bias: str):
    """Parts ``(T, D)`` of ``x_0`` for the source mask ``relevant`` ``(T,)`` (float 0/1).

    References:
      Hsu et al. (2025), ICLR, Sec. 3 (the source positions' embeddings are relevant).
    """
    e = params["embed"]["weight"][tokens]
    m = relevant[:, None]
    beta, gamma, iota = m * e, (1.0 - m) * e, jnp.zeros_like(e)
    if "pos" in params:
        pos = params["pos"]["weight"][: tokens.shape[0]]
        if positions == "irrelevant":
            gamma = gamma + pos
        elif bias == "separate":
            iota = iota + pos
        else:
            beta, gamma = beta + m * pos, gamma + (1.0 - m) * pos
    return beta, gamma, iota
