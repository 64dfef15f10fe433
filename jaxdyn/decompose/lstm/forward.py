"""Plain forward pass of a PyTorch-layout LSTM stack, one sequence at a time.

Shared by contextual decomposition (:mod:`jaxdyn.decompose.lstm.cd`), the packed
interdependence schedule (:mod:`jaxdyn.decompose.lstm.di_packed`) and the studies that
need the reference forward activations ``h``, ``c`` and gate pre-activations
``a`` of each layer. Parameters follow :mod:`jaxdyn.models.lstm` (gate order i,
f, g, o).

References:
  Hochreiter & Schmidhuber (1997), "Long short-term memory"; PyTorch ``nn.LSTM``
  equations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdyn.models.lstm import layer_names


def _split4(a: jax.Array) -> tuple[jax.Array, ...]:
    return tuple(jnp.split(a, 4, axis=-1))


def forward_layer(p, xs, h0, c0):
    """Plain LSTM layer over one sequence.

    Args:
      p: layer parameters (``weight_ih (4H, In)``, ``weight_hh``, ``bias_ih``, ``bias_hh``).
      xs: inputs ``(T, In)``; h0, c0: ``(H,)``.

    Returns:
      ``(h (T, H), c (T, H), a (T, 4H))`` with ``a`` the gate pre-activations.

    References:
      Hochreiter & Schmidhuber (1997); PyTorch ``nn.LSTM`` equations.
    """
    bias = p["bias_ih"] + p["bias_hh"]
    pre = xs @ p["weight_ih"].T + bias
    w_hh_t = p["weight_hh"].T  # once, outside the loop (see jaxdyn.models.recurrence)

    def step(carry, pre_t):
        h, c = carry
        a = pre_t + h @ w_hh_t
        ai, af, ag, ao = _split4(a)
        c = jax.nn.sigmoid(af) * c + jax.nn.sigmoid(ai) * jnp.tanh(ag)
        h = jax.nn.sigmoid(ao) * jnp.tanh(c)
        return (h, c), (h, c, a)

    _, (h, c, a) = jax.lax.scan(step, (h0, c0), pre)
    return h, c, a


def forward(params, tokens, init_carry):
    """Plain forward of one sequence: per-layer lists of ``h``, ``c``, ``a`` and logits."""
    x = params["encoder"]["weight"][tokens]
    hs, cs, as_ = [], [], []
    for l, name in enumerate(layer_names(params)):
        h, c, a = forward_layer(params["rnn"][name], x, *init_carry[l])
        hs.append(h)
        cs.append(c)
        as_.append(a)
        x = h
    return hs, cs, as_


def zero_carry_single(params, dtype):
    """All-zero per-layer ``(h, c)`` of shape ``(H,)`` each."""
    out = []
    for name in layer_names(params):
        z = jnp.zeros((params["rnn"][name]["weight_hh"].shape[1],), dtype)
        out.append((z, z))
    return tuple(out)


def zero_carry(params, batch: int, dtype):
    """All-zero per-layer ``(h, c)`` of shape ``(batch, H)`` each."""
    return jax.tree_util.tree_map(
        lambda z: jnp.zeros((batch, *z.shape), z.dtype), zero_carry_single(params, dtype)
    )
