"""Where a thesis-shaped train step spends its time (jaxdyn vs PyTorch pieces).

    python benchmarks/train_step_breakdown.py
    python benchmarks/train_step_breakdown.py --default-malloc   # glibc's malloc defaults

Times (median of rounds, ms): the LSTM body forward, one LSTM layer forward+backward
(jaxdyn's fused-backward recurrence vs ``torch.nn.LSTM``), the decoder matmul,
log-sum-exp over the logits standalone and fused after the matmul, the whole
loss gradient with and without the decoder's gradient, and two A/B pairs (rounds
alternating) for the third session's changes: the recurrence with ``W_hh^T`` inside
vs hoisted out of the loop, and the decoder by autodiff vs ``linear_decoder``.
"""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import torch
from _timing import median_ms, setup_process

from jaxdyn.models import language_model
from jaxdyn.models.decoder import linear_decoder
from jaxdyn.models.lstm import lstm_layer_scan
from jaxdyn.models.recurrence import lstm_recurrence, scan_forward
from jaxdyn.train.step import masked_xent

V, H, B, T = 10_000, 200, 20, 35


def timeit(f, *a, n=20, rounds=3):
    return median_ms(lambda: f(*a), rounds=rounds, n=n)


def ab(before, now, *a, rounds=9, n=10):
    """Median ms of two jitted functions, alternating round by round."""
    tb, tn = [], []
    for _ in range(rounds):
        tb.append(timeit(before, *a, n=n, rounds=1))
        tn.append(timeit(now, *a, n=n, rounds=1))
    return statistics.median(tb), statistics.median(tn)


def recurrence_before(w_hh, pre, h0, c0):
    """``scan_forward`` as it was before the third session: ``W_hh^T`` inside the loop."""

    def cell(state, a_x):
        h, c = state
        a = a_x + h @ w_hh.T
        ai, af, ag, ao = jnp.split(a, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(ai), jax.nn.sigmoid(af), jnp.tanh(ag), jax.nn.sigmoid(ao)
        c = f * c + i * g
        return (o * jnp.tanh(c), c), (o * jnp.tanh(c), c, i, f, g, o)

    return jax.lax.scan(cell, (h0, c0), pre)[1]


def main():
    setup_process()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    model = language_model(V, dropout=0.0)
    p = model.init(jax.random.key(0), jnp.zeros((B, 1), jnp.int32))["params"]
    x = jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32)
    y = jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32)
    m = jnp.ones((B, T), bool)
    zc = (jnp.zeros((B, H)),) * 2

    def body(p):
        e = p["encoder"]["weight"][x]
        o, _ = lstm_layer_scan(p["rnn"]["l0"], e, zc)
        o, _ = lstm_layer_scan(p["rnn"]["l1"], o["h"], zc)
        return o["h"].sum()

    def loss(p):
        return masked_xent(model.apply({"params": p}, x)[0], y, m)[0]

    def functional_loss(p, decoder):
        e = p["encoder"]["weight"][x]
        o, _ = lstm_layer_scan(p["rnn"]["l0"], e, zc)
        o, _ = lstm_layer_scan(p["rnn"]["l1"], o["h"], zc)
        logits = decoder(o["h"], p["decoder"]["weight"], p["decoder"]["bias"])
        return masked_xent(logits, y, m)[0]

    def loss_no_dec(p):
        p = {**p, "decoder": jax.lax.stop_gradient(p["decoder"])}
        return loss(p)

    w = p["rnn"]["l0"]["weight_hh"]
    pre = jax.random.normal(jax.random.key(1), (T, B, 4 * H))
    h2 = jax.random.normal(jax.random.key(2), (B * T, H))
    W, b = p["decoder"]["weight"], p["decoder"]["bias"]
    logits = h2 @ W.T
    lstm = torch.nn.LSTM(H, H, 1)
    xt = torch.randn(T, B, H)

    def torch_layer():
        out, _ = lstm(xt)
        out.sum().backward()

    rec_before, rec_now = ab(
        jax.jit(lambda w, q: recurrence_before(w, q, *zc)),
        jax.jit(lambda w, q: scan_forward(w, q, *zc)[:6]),
        w,
        pre,
    )
    dec_before, dec_now = ab(
        jax.jit(jax.grad(lambda p: functional_loss(p, lambda h, w, b: h @ w.T + b))),
        jax.jit(jax.grad(lambda p: functional_loss(p, linear_decoder))),
        p,
    )
    rows = [
        ("LSTM body forward (2 layers)", timeit(jax.jit(body), p)),
        (
            "one layer fwd+bwd, jaxdyn recurrence (+input proj excluded)",
            timeit(
                jax.jit(jax.grad(lambda w, q: lstm_recurrence(w, q, *zc)[0].sum(), (0, 1))), w, pre
            ),
        ),
        (
            "one layer fwd+bwd, torch.nn.LSTM (incl. input proj)",
            median_ms(torch_layer, rounds=3, n=20),
        ),
        ("decoder matmul (700 x 200 x 10k)", timeit(jax.jit(lambda h, W: h @ W.T), h2, W)),
        (
            "logsumexp of materialised logits",
            timeit(jax.jit(lambda z: jax.nn.logsumexp(z, -1)), logits),
        ),
        (
            "matmul + bias + logsumexp fused",
            timeit(jax.jit(lambda h, W, b: jax.nn.logsumexp(h @ W.T + b, -1)), h2, W, b),
        ),
        ("loss gradient, all parameters", timeit(jax.jit(jax.grad(loss)), p)),
        ("loss gradient, decoder frozen", timeit(jax.jit(jax.grad(loss_no_dec)), p)),
        ("A/B: one layer's forward recurrence, W_hh^T inside the loop (before)", rec_before),
        ("A/B: one layer's forward recurrence, W_hh^T hoisted (scan_forward)", rec_now),
        ("A/B: loss gradient, decoder by autodiff of x W^T + b (before)", dec_before),
        ("A/B: loss gradient, decoder by linear_decoder", dec_now),
    ]
    print(f"# jax {jax.__version__}, torch {torch.__version__}; V={V}, H={H}, B={B}, T={T}")
    print("| piece | median (ms) |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
