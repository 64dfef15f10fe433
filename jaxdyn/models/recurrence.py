"""The LSTM recurrence with a hand-written backward pass (``jax.custom_vjp``).

Autodiff of a ``lax.scan`` accumulates ``dW_hh`` inside the backward loop (one
small ``(4H, B) x (B, H)`` product per step) and keeps every intermediate. Here
the backward loop only carries ``(dh, dc)`` and emits the gate pre-activation
gradients ``dA_t``; ``dW_hh = sum_t dA_t^T h_{t-1}`` is then one large matmul
over all timesteps, as cuDNN and PyTorch do. The input projection (and hence
``dW_ih``, the biases and the input gradient) stays outside, differentiated by
JAX from ``dA``. Forward values are identical to the plain scan; gradients agree
with autodiff of :func:`scan_forward` to float rounding (tested). Forward-mode
differentiation (``jax.jvp``) is not available through this function.

Shapes are time-major here: ``pre (T, B, 4H)``, ``h0, c0 (B, H)``; outputs
``hs, cs, i, f, g, o`` are ``(T, B, H)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def scan_forward(w_hh: jax.Array, pre: jax.Array, h0: jax.Array, c0: jax.Array):
    """Plain (autodiff-able) recurrence: ``(hs, cs, i, f, g, o, hT, cT)``.

    Args:
      w_hh: ``(4H, H)`` recurrent weight (gate order i, f, g, o).
      pre: ``(T, B, 4H)`` input projections ``W_ih x_t + b_ih + b_hh``.
      h0, c0: ``(B, H)`` initial state.

    References:
      Hochreiter & Schmidhuber (1997); PyTorch ``nn.LSTM`` equations.
    """

    # Transposed once, outside the loop: XLA:CPU otherwise re-lays out W_hh for
    # every step's matmul (4.3 -> 2.8 ms per layer forward at the thesis shape;
    # `python benchmarks/train_step_breakdown.py`).
    w_t = w_hh.T

    def cell(state, a_x):
        h, c = state
        a = a_x + h @ w_t
        ai, af, ag, ao = jnp.split(a, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(ai), jax.nn.sigmoid(af), jnp.tanh(ag), jax.nn.sigmoid(ao)
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), (h, c, i, f, g, o)

    (h, c), (hs, cs, i, f, g, o) = jax.lax.scan(cell, (h0, c0), pre)
    return hs, cs, i, f, g, o, h, c


@jax.custom_vjp
def lstm_recurrence(w_hh: jax.Array, pre: jax.Array, h0: jax.Array, c0: jax.Array):
    """:func:`scan_forward` with a fused backward pass (same outputs)."""
    return scan_forward(w_hh, pre, h0, c0)


def _fwd(w_hh, pre, h0, c0):
    out = scan_forward(w_hh, pre, h0, c0)
    hs, cs, i, f, g, o, _, _ = out
    return out, (w_hh, h0, c0, hs, cs, i, f, g, o)


def _bwd(res, cts):
    w_hh, h0, c0, hs, cs, i, f, g, o = res
    d_hs, d_cs, d_i, d_f, d_g, d_o, d_hT, d_cT = cts
    c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)

    def step(carry, xs):
        dh_next, dc_next = carry
        dh_out, dc_out, di_out, df_out, dg_out, do_out, c_t, cp, it, ft, gt, ot = xs
        dh = dh_out + dh_next
        tc = jnp.tanh(c_t)
        dc = dc_next + dc_out + dh * ot * (1.0 - tc * tc)
        da_i = (dc * gt + di_out) * it * (1.0 - it)
        da_f = (dc * cp + df_out) * ft * (1.0 - ft)
        da_g = (dc * it + dg_out) * (1.0 - gt * gt)
        da_o = (dh * tc + do_out) * ot * (1.0 - ot)
        da = jnp.concatenate([da_i, da_f, da_g, da_o], axis=-1)
        return (da @ w_hh, dc * ft), da

    xs = (d_hs, d_cs, d_i, d_f, d_g, d_o, cs, c_prev, i, f, g, o)
    (dh0, dc0), da = jax.lax.scan(step, (d_hT, d_cT), xs, reverse=True)
    h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)
    d_whh = jnp.einsum("tbg,tbh->gh", da, h_prev)
    return d_whh, da, dh0, dc0


lstm_recurrence.defvjp(_fwd, _bwd)
