"""Train-step throughput: jaxdyn vs PyTorch nn.LSTM, and the cost of trace capture.

Thesis shape: 2 x 200 LSTM, vocabulary 10k, batch 20, BPTT 35, SGD with global
norm clipping 0.25. Contenders run alternately in rounds; each round times
``--steps`` consecutive steps; we report the median per-step time over rounds.
Compile time (first call) is reported separately.

    python benchmarks/train_step.py            # full (about 2-3 minutes on 2 cores)
    python benchmarks/train_step.py --quick
    python benchmarks/train_step.py --default-malloc   # glibc defaults (page faults every step)
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from _timing import setup_process

from jaxdyn.models import language_model
from jaxdyn.trace import CaptureSpec
from jaxdyn.train import init_train_state, make_optimizer, make_train_step

V, E, H, L, B, T = 10_000, 200, 200, 2, 20, 35


class TorchLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Embedding(V, E)
        self.drop = torch.nn.Dropout(0.2)
        self.rnn = torch.nn.LSTM(E, H, L, dropout=0.2, batch_first=True)
        self.decoder = torch.nn.Linear(H, V)

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        return self.decoder(self.drop(out)), hidden


def torch_contender(batches):
    torch.manual_seed(0)
    model = TorchLM()
    model.train()
    crit = torch.nn.CrossEntropyLoss()
    hidden = [None]
    data = [(torch.from_numpy(x).long(), torch.from_numpy(y).long()) for x, y in batches]

    def run(n):
        for i in range(n):
            x, y = data[i % len(data)]
            h = hidden[0]
            if h is not None:
                h = tuple(t.detach() for t in h)
            model.zero_grad()
            out, hidden[0] = model(x, h)
            loss = crit(out.reshape(-1, V), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-20.0)
        return float(loss)

    return run


def jax_contender(batches, spec: CaptureSpec | None, to_host: bool):
    model = language_model(V, emb_dim=E, hidden=H, num_layers=L, dropout=0.2)
    tx = make_optimizer("sgd", 20.0, 0.25)
    state = [init_train_state(model, tx, 0, B)]
    step = make_train_step(model, tx, spec)
    data = [{"inputs": jnp.asarray(x), "targets": jnp.asarray(y)} for x, y in batches]

    def run(n):
        s = state[0]
        for i in range(n):
            s, metrics, trace = step(s, data[i % len(data)])
            if trace is not None and to_host:
                jax.device_get(trace)
        jax.block_until_ready(s.params)
        state[0] = s
        return float(metrics["loss"])

    return run


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default malloc settings (jaxdyn's CLI tunes them; see jaxdyn.runtime)",
    )
    args = ap.parse_args()
    malloc = setup_process()  # reads --default-malloc
    if args.quick:
        args.rounds, args.steps = 3, 4
    rng = np.random.default_rng(0)
    batches = [
        (rng.integers(0, V, (B, T)).astype(np.int32), rng.integers(0, V, (B, T)).astype(np.int32))
        for _ in range(8)
    ]
    summary = CaptureSpec(reductions=("l1", "l2"), param_grads=False)
    full = dataclasses.replace(summary, keep_full=True, param_grads=True)
    contenders = {
        "pytorch nn.LSTM (SGD+clip)": torch_contender(batches),
        "jaxdyn, no capture": jax_contender(batches, None, False),
        "jaxdyn, on-device summary capture": jax_contender(batches, summary, False),
        "jaxdyn, full trace to host": jax_contender(batches, full, True),
    }
    compile_s = {}
    for name, run in contenders.items():
        t0 = time.perf_counter()
        run(1)
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():  # alternate contenders every round
            t0 = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_ms = med["pytorch nn.LSTM (SGD+clip)"]
    base = med["jaxdyn, no capture"]
    print(
        f"# train step, thesis shape (V={V}, {L}x{H}, B={B}, T={T}); {args.rounds} rounds x {args.steps} steps"
    )
    print(
        f"# jax {jax.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, malloc {malloc} (both contenders)"
    )
    print(
        "| contender | first call (s) | median step (ms) | tokens/s | vs PyTorch | vs no capture |"
    )
    print("|---|---|---|---|---|---|")
    for name in contenders:
        m = med[name]
        print(
            f"| {name} | {compile_s[name]:.2f} | {m * 1e3:.1f} | {B * T / m:,.0f} | "
            f"{torch_ms / m:.2f}x | {m / base:.2f} |"
        )


if __name__ == "__main__":
    main()
