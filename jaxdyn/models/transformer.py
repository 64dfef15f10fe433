"""Decoder-only Transformer language models and taggers (pre-LayerNorm, causal attention).

Parameter tree of :class:`TransformerSequenceModel` (the ``params`` collection). Every
linear map is ``y = x @ w + b`` with ``w`` stored ``(in, out)``; the decoder alone keeps
the LSTM's PyTorch layout ``(K, D)`` so tying shares the embedding matrix as it is::

    {"embed": {"weight": (V, D)},                      # token embedding
     "pos": {"weight": (C, D)},                        # positions="learned" only; C = context
     "block_{l}": {                                    # l = 0 .. L-1
        "ln_1": {"scale": (D,), "bias": (D,)},         # before attention
        "attn": {"wq": (D, D), "bq": (D,), "wk": (D, D), "bk": (D,),
                 "wv": (D, D), "bv": (D,), "wo": (D, D), "bo": (D,)},
        "ln_2": {"scale": (D,), "bias": (D,)},         # before the MLP
        "mlp": {"w_in": (D, F), "b_in": (F,), "w_out": (F, D), "b_out": (D,)}},
     "ln_f": {"scale": (D,), "bias": (D,)},            # final LayerNorm
     "decoder": {"weight": (K, D), "bias": (K,)}}      # tied: {"bias": (K,)} only

Head ``h`` of ``H`` (``Dh = D / H``) owns columns ``h*Dh:(h+1)*Dh`` of ``wq``, ``wk``,
``wv`` and the same rows of ``wo``. The forward pass (eval mode; Vaswani et al. 2017 with
the pre-LN placement of Xiong et al. 2020 and GPT-2's final LayerNorm)::

    x_0   = E[tokens] + P[0:T]                       (rotary: x_0 = E[tokens])
    a_l   = Attn_l(LN_1(x_{l-1}))                    # "block_{l}.attn"
    r_l   = x_{l-1} + a_l
    m_l   = W_out GELU(W_in LN_2(r_l) + b_in) + b_out  # "block_{l}.mlp"
    x_l   = r_l + m_l                                # "block_{l}" (residual stream)
    y     = LN_f(x_L)                                # "decoder_in"
    logits = y W_dec^T + b_dec                       # "logits"

    LN(x)  = (x - mean(x)) / sqrt(var(x) + 1e-5) * scale + bias   (biased variance)
    Attn(h): q = h wq + bq, k = h wk + bk, v = h wv + bv, split into H heads;
             (rotary: q, k rotated per head, see :func:`rotary`)
             A = softmax(q k^T / sqrt(Dh) + causal mask)   # "attn_probs_{l}"
             out = concat_h(A_h v_h) wo + bo
    GELU is the exact (erf) GELU, as ``torch.nn.GELU()``.

Training mode adds dropout (rate ``dropout``) to ``x_0`` and to ``a_l`` and ``m_l`` before
each residual addition; there is no dropout on attention probabilities or before the
decoder, so the eval forward above is the whole model. The context length is ``C`` (the
BPTT length): chunks are independent (no carry, the model is not recurrent) and inputs
longer than ``C`` are an error with learned positions.

Trace names (``jaxdyn.models.taps``; all taps at the top level so names are flat, dotted
names are block internals that ``CaptureSpec(gates=False)`` leaves out). Activation and
gradient: ``embedding`` (x_0, before dropout), ``block_{l}`` (x_l), ``block_{l}.attn``
(a_l, before dropout), ``block_{l}.mlp`` (m_l, before dropout), ``decoder_in`` (y),
``logits``. Activation only: ``attn_probs_{l}``, the attention probabilities
``A`` laid out samples-first as ``(B, T, H * T)``: row ``t`` is the query position,
feature ``h * T + s`` the probability that head ``h`` at ``t`` attends to key ``s``
(:func:`probs_from_trace` gives back ``(B, H, T, T)``). Its name lies outside the
``block`` prefix, so ``CaptureSpec(modules=("block",))`` selects the blocks' tensors
that have gradients and never the probabilities.

The pure functions (:func:`layer_norm`, :func:`attention`, :func:`mlp`,
:func:`block_apply`, :func:`lm_apply`, in :mod:`jaxdyn.models.transformer_ops` and
re-exported here) are the model: the Flax module only creates the parameters, adds
dropout and taps, so decompositions can reuse them on a parameter tree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdyn.models.decoder import linear_decoder
from jaxdyn.models.taps import ACTIVATIONS, tap
from jaxdyn.models.transformer_ops import (  # the forward pass, re-exported
    LN_EPS,
    POSITIONS,
    ROTARY_BASE,
    attention,
    attention_probs,
    block_apply,
    block_names,
    causal_mask,
    decoder_weight,
    embed,
    layer_norm,
    lm_apply,
    merge_heads,
    mlp,
    probs_from_trace,
    rotary,
    split_heads,
)

__all__ = [
    "LN_EPS",
    "POSITIONS",
    "ROTARY_BASE",
    "TransformerLanguageModel",
    "TransformerSequenceModel",
    "TransformerTagger",
    "attention",
    "attention_probs",
    "block_apply",
    "block_names",
    "causal_mask",
    "decoder_weight",
    "embed",
    "language_model",
    "layer_norm",
    "lm_apply",
    "merge_heads",
    "mlp",
    "probs_from_trace",
    "rotary",
    "share_initialisation",
    "split_heads",
    "tagger",
]


def _normal(std: float):
    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


def _ln_init(d: int) -> dict[str, jax.Array]:
    return {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))}


def _block_init(key, d: int, f: int, std: float, out_std: float) -> dict[str, Any]:
    ks = jax.random.split(key, 6)
    w, wo = _normal(std), _normal(out_std)
    z = jnp.zeros
    return {
        "ln_1": _ln_init(d),
        "attn": {
            "wq": w(ks[0], (d, d)),
            "bq": z((d,)),
            "wk": w(ks[1], (d, d)),
            "bk": z((d,)),
            "wv": w(ks[2], (d, d)),
            "bv": z((d,)),
            "wo": wo(ks[3], (d, d)),
            "bo": z((d,)),
        },
        "ln_2": _ln_init(d),
        "mlp": {
            "w_in": w(ks[4], (d, f)),
            "b_in": z((f,)),
            "w_out": wo(ks[5], (f, d)),
            "b_out": z((d,)),
        },
    }


class TransformerSequenceModel(nn.Module):
    """Decoder-only pre-LN Transformer over ``num_outputs`` classes (LM or tagger).

    Not recurrent (``jaxdyn.models.taps``): called as ``apply(variables, tokens,
    train=...)``, returns logits ``(B, T, K)``. Taps the names in the module docstring.

    Attributes:
      vocab_size: V. num_outputs: K (V for a language model, tag count for a tagger).
      d_model: D. num_layers: L. heads: H (divides D). d_ff: F (MLP width).
      context: C, the longest input (learned position table size; the BPTT length).
      dropout: rate on x_0 and on each attention/MLP output before the residual add.
      tie_weights: decoder weight = embedding (needs K == V).
      positions: ``"learned"`` (table ``pos``) or ``"rotary"`` (no position parameters).
      init_std: weights ~ N(0, init_std^2); attention/MLP output projections use
        ``init_std / sqrt(2 L)`` (GPT-2); biases 0, LayerNorm scale 1.
    """

    vocab_size: int
    num_outputs: int
    d_model: int = 128
    num_layers: int = 2
    heads: int = 4
    d_ff: int = 512
    context: int = 35
    dropout: float = 0.1
    tie_weights: bool = False
    positions: str = "learned"
    init_std: float = 0.02

    def _check(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.positions == "rotary" and (self.d_model // self.heads) % 2:
            raise ValueError(
                f"rotary positions need an even head size, got {self.d_model // self.heads}"
            )
        if self.tie_weights and self.num_outputs != self.vocab_size:
            raise ValueError(
                f"tie_weights needs num_outputs == vocab_size, got {self.num_outputs}/{self.vocab_size}"
            )

    @nn.compact
    def __call__(self, tokens: jax.Array, *, train: bool = False) -> jax.Array:
        """Args: tokens ``(B, T)`` int ids; train: dropout (``"dropout"`` rng). Returns logits."""
        self._check()
        d, std = self.d_model, self.init_std
        out_std = std / math.sqrt(2 * self.num_layers)
        params: dict[str, Any] = {
            "embed": self.param(
                "embed", lambda k: {"weight": _normal(std)(k, (self.vocab_size, d))}
            )
        }
        if self.positions == "learned":
            params["pos"] = self.param(
                "pos", lambda k: {"weight": _normal(std)(k, (self.context, d))}
            )
        for l in range(self.num_layers):
            params[f"block_{l}"] = self.param(
                f"block_{l}", lambda k: _block_init(k, d, self.d_ff, std, out_std)
            )
        params["ln_f"] = self.param("ln_f", lambda k: _ln_init(d))

        def dec_init(k):
            p = {"bias": jnp.zeros((self.num_outputs,))}
            if not self.tie_weights:
                p["weight"] = _normal(std)(k, (self.num_outputs, d))
            return p

        params["decoder"] = self.param("decoder", dec_init)

        def drop(x):
            return nn.Dropout(self.dropout, deterministic=not train)(x)

        rot = self.positions == "rotary"
        x = tap(self, "embedding", embed(params, tokens))
        x = drop(x)
        for l in range(self.num_layers):
            p, name = params[f"block_{l}"], f"block_{l}"
            a, probs = attention(p["attn"], layer_norm(p["ln_1"], x), self.heads, rotary_pos=rot)
            b, h, t, _ = probs.shape
            self.sow(
                ACTIVATIONS, f"attn_probs_{l}", probs.transpose(0, 2, 1, 3).reshape(b, t, h * t)
            )
            x = x + drop(tap(self, f"{name}.attn", a))
            m = tap(self, f"{name}.mlp", mlp(p["mlp"], layer_norm(p["ln_2"], x)))
            x = tap(self, name, x + drop(m))
        y = tap(self, "decoder_in", layer_norm(params["ln_f"], x))
        return tap(
            self, "logits", linear_decoder(y, decoder_weight(params), params["decoder"]["bias"])
        )


class TransformerLanguageModel(TransformerSequenceModel):
    """Transformer language model (``num_outputs == vocab_size``; see :func:`language_model`)."""


class TransformerTagger(TransformerSequenceModel):
    """The language model's body with a tag softmax (the causal model sees tokens up to t)."""


def language_model(vocab_size: int, **kwargs) -> TransformerLanguageModel:
    """A :class:`TransformerLanguageModel` whose output size is ``vocab_size``."""
    return TransformerLanguageModel(vocab_size=vocab_size, num_outputs=vocab_size, **kwargs)


def tagger(vocab_size: int, num_tags: int, **kwargs) -> TransformerTagger:
    """A :class:`TransformerTagger` over ``num_tags`` tags."""
    return TransformerTagger(vocab_size=vocab_size, num_outputs=num_tags, **kwargs)


def share_initialisation(lm_params: Mapping[str, Any], tagger_params: Mapping[str, Any]):
    """Tagger parameters starting from a language model's body (all but ``decoder``).

    With tied weights the decoder keeps only the tagger's bias. Shapes must match.
    """
    out = {}
    for key in tagger_params:
        if key == "decoder":
            out[key] = tagger_params[key]
            continue
        a = jax.tree_util.tree_map(jnp.shape, lm_params.get(key))
        b = jax.tree_util.tree_map(jnp.shape, tagger_params[key])
        if a != b:
            raise ValueError(f"cannot share '{key}': language model {a} vs tagger {b}")
        out[key] = lm_params[key]
    return out
