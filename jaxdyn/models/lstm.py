"""LSTM language models and taggers with explicit gates in PyTorch's parameter layout.

Parameter tree of :class:`LSTMLanguageModel` and :class:`LSTMTagger` (the ``params``
collection), identical in names, shapes and gate order to PyTorch's
``word_language_model`` example (``encoder``, ``rnn``, ``decoder``)::

    {"encoder": {"weight": (V, E)},
     "rnn": {"l0": {"weight_ih": (4H, E), "weight_hh": (4H, H),
                    "bias_ih": (4H,), "bias_hh": (4H,)},
             "l1": {"weight_ih": (4H, H), ...}},
     "decoder": {"weight": (K, H), "bias": (K,)}}   # tied: {"bias": (K,)} only

Gate order along the ``4H`` axis is ``i, f, g, o`` (input, forget, candidate,
output), as in ``torch.nn.LSTM``. The recurrence (Hochreiter & Schmidhuber 1997,
in PyTorch's formulation) is::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i, f, o = sigmoid(a^i), sigmoid(a^f), sigmoid(a^o);  g = tanh(a^g)
    c_t = f * c_{t-1} + i * g;                          h_t = o * tanh(c_t)

The input projection ``W_ih x_t + b`` of all timesteps is one matmul outside the
recurrence; ``lax.scan`` carries only ``W_hh h_{t-1}``. Arrays are batch-first:
tokens ``(B, T)``, activations ``(B, T, H)``; the carry is a tuple over layers of
``(h, c)`` pairs, each ``(B, H)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdyn.models.decoder import linear_decoder
from jaxdyn.models.recurrence import lstm_recurrence
from jaxdyn.models.taps import ACTIVATIONS, tap

Carry = tuple[tuple[jax.Array, jax.Array], ...]
GATES = ("i", "f", "g", "o")

#: Trace names the models tap (``jaxdyn.models.taps``), all at the top level so the
#: names are flat. Activation and gradient: ``embedding`` (encoder output, before
#: dropout), ``lstm_{l}`` (layer l's h sequence, before dropout), ``decoder_in``
#: (decoder input, after dropout), ``logits`` (decoder output). Activation only:
#: ``lstm_{l}.c`` and the gates ``lstm_{l}.i/f/g/o``.


def _uniform(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def lstm_layer_scan(
    p: Mapping[str, jax.Array],
    xs: jax.Array,
    carry: tuple[jax.Array, jax.Array],
    *,
    return_gates: bool = False,
) -> tuple[dict[str, jax.Array], tuple[jax.Array, jax.Array]]:
    """Run one LSTM layer over a sequence.

    Args:
      p: ``{"weight_ih": (4H, In), "weight_hh": (4H, H), "bias_ih": (4H,), "bias_hh": (4H,)}``.
      xs: inputs ``(B, T, In)``.
      carry: ``(h0, c0)``, each ``(B, H)``.
      return_gates: also return ``c`` and the gate activations ``i, f, g, o``.

    Returns:
      ``(out, (hT, cT))`` where ``out["h"]`` is ``(B, T, H)`` and, with
      ``return_gates``, ``out`` also holds ``"c", "i", "f", "g", "o"``, each ``(B, T, H)``.

    References:
      Hochreiter & Schmidhuber (1997); PyTorch ``nn.LSTM`` equations (gate order i, f, g, o).
    """
    # Input projection for all timesteps at once (one matmul), time-major for the scan;
    # the recurrence has a fused backward pass (jaxdyn.models.recurrence).
    pre = jnp.einsum("bti,gi->tbg", xs, p["weight_ih"]) + (p["bias_ih"] + p["bias_hh"])
    hs, cs, i, f, g, o, h, c = lstm_recurrence(p["weight_hh"], pre, carry[0], carry[1])
    ys = {"h": hs, "c": cs, "i": i, "f": f, "g": g, "o": o} if return_gates else {"h": hs}
    return {k: jnp.swapaxes(v, 0, 1) for k, v in ys.items()}, (h, c)


def layer_names(params: Mapping[str, Any]) -> list[str]:
    """LSTM layer names ``["l0", "l1", ...]`` of a parameter tree, in order."""
    return sorted(params["rnn"], key=lambda s: int(s[1:]))


def decoder_weight(params: Mapping[str, Any]) -> jax.Array:
    """Decoder weight ``(K, H)``; the encoder weight when the model ties them."""
    dec = params["decoder"]
    return dec["weight"] if "weight" in dec else params["encoder"]["weight"]


def zero_carry(params: Mapping[str, Any], batch_size: int, dtype=jnp.float32) -> Carry:
    """All-zero initial state: a tuple over layers of ``(h, c)``, each ``(B, H)``."""
    out = []
    for name in layer_names(params):
        hidden = params["rnn"][name]["weight_hh"].shape[1]
        z = jnp.zeros((batch_size, hidden), dtype)
        out.append((z, z))
    return tuple(out)


def lm_apply(
    params: Mapping[str, Any], tokens: jax.Array, carry: Carry | None = None
) -> tuple[jax.Array, Carry]:
    """Pure evaluation-mode forward pass (no dropout) of a model in this layout.

    Args:
      params: the ``params`` collection (see module docstring).
      tokens: ``(B, T)`` int token ids.
      carry: initial state per layer, ``(h, c)`` each ``(B, H)``; zeros if None.

    Returns:
      ``(logits (B, T, K), carry)``.

    References:
      Zaremba et al. (2014), "Recurrent neural network regularization" (the model);
      PyTorch word_language_model example (the layout).
    """
    if carry is None:
        carry = zero_carry(params, tokens.shape[0], params["encoder"]["weight"].dtype)
    x = params["encoder"]["weight"][tokens]
    new_carry = []
    for l, name in enumerate(layer_names(params)):
        out, c = lstm_layer_scan(params["rnn"][name], x, carry[l])
        x = out["h"]
        new_carry.append(c)
    logits = linear_decoder(x, decoder_weight(params), params["decoder"]["bias"])
    return logits, tuple(new_carry)


class LSTMLayer(nn.Module):
    """One LSTM layer with PyTorch-layout parameters and visible gates.

    Attributes:
      features: hidden size H.
    """

    features: int

    @nn.compact
    def __call__(self, xs, carry, return_gates: bool = False):
        """Args: xs ``(B, T, In)``; carry ``(h, c)`` each ``(B, H)``. Returns (out, carry)."""
        h, in_dim = self.features, xs.shape[-1]
        init = _uniform(1.0 / h**0.5)  # torch.nn.LSTM's default initialisation
        p = {
            "weight_ih": self.param("weight_ih", init, (4 * h, in_dim)),
            "weight_hh": self.param("weight_hh", init, (4 * h, h)),
            "bias_ih": self.param("bias_ih", init, (4 * h,)),
            "bias_hh": self.param("bias_hh", init, (4 * h,)),
        }
        return lstm_layer_scan(p, xs, carry, return_gates=return_gates)


class _LSTMStack(nn.Module):
    hidden: int
    num_layers: int
    dropout: float

    @nn.compact
    def __call__(self, x, carry, *, train, return_gates, tap_output, sow):
        # tap_output/sow are the top-level model's, so the trace names stay flat
        # (`lstm_0`, not `rnn/lstm_0`) while the parameters live under `rnn/l{l}`
        acts, new_carry = {}, []
        for l in range(self.num_layers):
            out, c = LSTMLayer(self.hidden, name=f"l{l}")(x, carry[l], return_gates)
            name = f"lstm_{l}"
            out = dict(out)
            out["h"] = tap_output(name, out["h"])
            for part in ("c", *GATES):
                if part in out:
                    sow(f"{name}.{part}", out[part])
            acts[name] = out
            new_carry.append(c)
            x = out["h"]
            if l < self.num_layers - 1:  # nn.LSTM(dropout=p) drops between layers only
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return x, tuple(new_carry), acts


class LSTMSequenceModel(nn.Module):
    """Embedding, dropout, LSTM stack, dropout, linear decoder over ``num_outputs`` classes.

    Follows ``jaxdyn.models.taps``: it taps its module outputs and gates under the
    flat names listed at the top of this module, and is recurrent
    (:meth:`initial_carry`; called as ``apply(variables, tokens, carry)``).

    Attributes:
      vocab_size: input vocabulary size V.
      num_outputs: output classes K (V for a language model, tag count for a tagger).
      emb_dim: embedding size E (thesis: 200).
      hidden: LSTM hidden size H (thesis: 200).
      num_layers: number of LSTM layers (thesis: 2).
      dropout: dropout rate after the embedding, between layers and before the decoder.
      tie_weights: share the encoder and decoder weight (needs K == V and E == H).
      init_range: embedding/decoder weights ~ U(-init_range, init_range) (thesis: 0.1).
    """

    vocab_size: int
    num_outputs: int
    emb_dim: int = 200
    hidden: int = 200
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = False
    init_range: float = 0.1

    @nn.nowrap
    def initial_carry(self, params: Mapping[str, Any], batch_size: int) -> Carry:
        """The recurrent protocol (``jaxdyn.models.taps``): zeros, ``(h, c)`` per layer."""
        return zero_carry(params, batch_size, params["encoder"]["weight"].dtype)

    @nn.compact
    def __call__(
        self,
        tokens: jax.Array,
        carry: Carry | None = None,
        *,
        train: bool = False,
        return_acts: bool = False,
        return_gates: bool = True,
        perturbations: Mapping[str, jax.Array] | None = None,
    ):
        """Forward pass.

        Args:
          tokens: ``(B, T)`` int ids.
          carry: per-layer ``(h, c)`` from the previous BPTT chunk; zeros if None.
          train: apply dropout (needs a ``"dropout"`` rng).
          return_acts: also return every module's activations.
          return_gates: with ``return_acts``, include each layer's ``c`` and gates.
          perturbations: optional arrays added to module outputs, keyed
            ``embedding``, ``lstm_{l}``, ``decoder_in``, ``logits`` (kept for old
            callers; the train steps use Flax's ``perturbations`` collection, which
            the model taps with the same names, see ``jaxdyn.models.taps``).

        Returns:
          ``(logits (B, T, K), carry)``, plus the activation dict if ``return_acts``.
        """
        if self.tie_weights and (
            self.num_outputs != self.vocab_size or self.emb_dim != self.hidden
        ):
            raise ValueError(
                "tie_weights needs num_outputs == vocab_size and emb_dim == hidden, got "
                f"{self.num_outputs}/{self.vocab_size} and {self.emb_dim}/{self.hidden}"
            )
        pert = perturbations or {}

        def tap_output(name, x):
            return tap(self, name, x + pert[name] if name in pert else x)

        def sow(name, x):
            self.sow(ACTIVATIONS, name, x)

        # gates are computed by the recurrence anyway; sown when activations are captured
        gates = (return_acts and return_gates) or self.is_mutable_collection(ACTIVATIONS)

        b = tokens.shape[0]
        encoder = self.param(
            "encoder",
            lambda k: {"weight": _uniform(self.init_range)(k, (self.vocab_size, self.emb_dim))},
        )
        if carry is None:
            z = jnp.zeros((b, self.hidden), encoder["weight"].dtype)
            carry = tuple((z, z) for _ in range(self.num_layers))
        emb = tap_output("embedding", encoder["weight"][tokens])
        x = nn.Dropout(self.dropout, deterministic=not train)(emb)
        x, new_carry, acts = _LSTMStack(self.hidden, self.num_layers, self.dropout, name="rnn")(
            x, carry, train=train, return_gates=gates, tap_output=tap_output, sow=sow
        )
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        dec_in = tap_output("decoder_in", x)

        def dec_init(k):
            d = {"bias": jnp.zeros((self.num_outputs,))}
            if not self.tie_weights:
                d["weight"] = _uniform(self.init_range)(k, (self.num_outputs, self.hidden))
            return d

        decoder = self.param("decoder", dec_init)
        w = encoder["weight"] if self.tie_weights else decoder["weight"]
        logits = tap_output("logits", linear_decoder(dec_in, w, decoder["bias"]))
        if not return_acts:
            return logits, new_carry
        if not return_gates:
            acts = {k: {"h": v["h"]} for k, v in acts.items()}
        acts = {"embedding": emb, **acts, "decoder_in": dec_in, "logits": logits}
        return logits, new_carry, acts


class LSTMLanguageModel(LSTMSequenceModel):
    """Word-level LSTM language model (thesis setup: 200/200, 2 layers, dropout 0.2).

    ``num_outputs`` should equal ``vocab_size``; use :func:`language_model` to build one.
    """


class LSTMTagger(LSTMSequenceModel):
    """LSTM tagger: the language model's body with a tag softmax of ``num_outputs`` tags.

    Whether it predicts the current or the next token's tag is a property of the
    data (``jaxdyn.data.batching.tag_chunk``), so the module is the same either way.
    """


def language_model(vocab_size: int, **kwargs) -> LSTMLanguageModel:
    """An :class:`LSTMLanguageModel` whose output size is ``vocab_size``."""
    return LSTMLanguageModel(vocab_size=vocab_size, num_outputs=vocab_size, **kwargs)


def tagger(vocab_size: int, num_tags: int, **kwargs) -> LSTMTagger:
    """An :class:`LSTMTagger` over ``num_tags`` tags."""
    return LSTMTagger(vocab_size=vocab_size, num_outputs=num_tags, **kwargs)


def share_initialisation(lm_params: Mapping[str, Any], tagger_params: Mapping[str, Any]):
    """Tagger parameters that start from a language model's body.

    Copies ``encoder`` and ``rnn`` from ``lm_params``; keeps the tagger's own
    ``decoder`` (its output size differs). Shapes must match.
    """
    for key in ("encoder", "rnn"):
        a = jax.tree_util.tree_map(jnp.shape, lm_params[key])
        b = jax.tree_util.tree_map(jnp.shape, tagger_params[key])
        if a != b:
            raise ValueError(f"cannot share '{key}': language model {a} vs tagger {b}")
    return {
        "encoder": lm_params["encoder"],
        "rnn": lm_params["rnn"],
        "decoder": tagger_params["decoder"],
    }
