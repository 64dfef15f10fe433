"""Transformer train-step throughput: jaxdyn vs PyTorch of the same shape, same recipe.

Thesis-comparable shape (about as many parameters as the 2 x 200 LSTM): vocabulary
10k, d_model 200, 2 pre-LN blocks, 4 heads, d_ff 800, learned positions, context =
BPTT 35, batch 20, dropout 0.2; Adam (lr 1e-3) with linear warmup and global-norm
clipping 1.0. The PyTorch model is ``nn.TransformerEncoderLayer(norm_first=True,
activation="gelu", batch_first=True)`` blocks with a causal mask, learned positions, a
final LayerNorm and a linear decoder (its layers also drop out attention probabilities
and the MLP's hidden units: two more dropouts per block than jaxdyn's model). The
contenders run alternately in rounds; each round times ``--steps`` consecutive steps;
we report the median per-step time over rounds, and the first call (compile) apart.

    python benchmarks/transformer_step.py            # about 2 minutes on 2 cores
    python benchmarks/transformer_step.py --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
from _timing import setup_process

from jaxdyn.models.transformer import language_model
from jaxdyn.trace import CaptureSpec
from jaxdyn.train import init_train_state, make_optimizer, make_train_step

V, D, L, NH, F, B, T, P, WARMUP = 10_000, 200, 2, 4, 800, 20, 35, 0.2, 100


class TorchLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, D)
        self.pos = torch.nn.Parameter(0.02 * torch.randn(T, D))
        self.drop = torch.nn.Dropout(P)
        self.blocks = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(
                D, NH, F, P, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(L)
        )
        self.ln_f = torch.nn.LayerNorm(D)
        self.decoder = torch.nn.Linear(D, V)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(T))

    def forward(self, x):
        h = self.drop(self.embed(x) + self.pos[: x.shape[1]])
        for blk in self.blocks:
            h = blk(h, src_mask=self.mask, is_causal=True)
        return self.decoder(self.ln_f(h))


def torch_contender(batches):
    torch.manual_seed(0)
    model = TorchLM()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP))
    crit = torch.nn.CrossEntropyLoss()
    data = [(torch.from_numpy(x).long(), torch.from_numpy(y).long()) for x, y in batches]

    def run(n):
        for i in range(n):
            x, y = data[i % len(data)]
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x).reshape(-1, V), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        return loss.item()

    return run, sum(p.numel() for p in model.parameters())


def jax_contender(batches, spec: CaptureSpec | None):
    model = language_model(V, d_model=D, num_layers=L, heads=NH, d_ff=F, context=T, dropout=P)
    tx = make_optimizer("adam", 1e-3, 1.0, warmup_steps=WARMUP)
    state = [init_train_state(model, tx, 0, B)]
    step = make_train_step(model, tx, spec)
    data = [{"inputs": jnp.asarray(x), "targets": jnp.asarray(y)} for x, y in batches]

    def run(n):
        s = state[0]
        for i in range(n):
            s, metrics, _ = step(s, data[i % len(data)])
        jax.block_until_ready(s.params)
        state[0] = s
        return float(metrics["loss"])

    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state[0].params))
    return run, n_params


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--default-malloc", action="store_true", help="glibc's malloc defaults")
    ap.add_argument("--torch-threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = ap.parse_args()
    malloc = setup_process()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.quick:
        args.rounds, args.steps = 3, 4
    rng = np.random.default_rng(0)
    batches = [
        (rng.integers(0, V, (B, T)).astype(np.int32), rng.integers(0, V, (B, T)).astype(np.int32))
        for _ in range(8)
    ]
    summary = CaptureSpec(reductions=("l1", "l2"), param_grads=False)
    contenders = {
        "pytorch TransformerEncoderLayer x2 (Adam+warmup+clip)": torch_contender(batches),
        "jaxdyn transformer, no capture": jax_contender(batches, None),
        "jaxdyn transformer, on-device summary capture": jax_contender(batches, summary),
    }
    compile_s = {}
    for name, (run, _) in contenders.items():
        t0 = time.perf_counter()
        run(1)
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (run, _) in contenders.items():  # alternate contenders every round
            t0 = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    torch_s = med[next(iter(contenders))]
    print(
        f"# transformer train step (V={V}, d={D}, {L} blocks, {NH} heads, d_ff={F}, B={B}, "
        f"T={T}); {args.rounds} rounds x {args.steps} steps; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(
        f"# jax {jax.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, malloc {malloc}"
    )
    print("| contender | parameters | first call (s) | median step (ms) | tokens/s | vs PyTorch |")
    print("|---|---|---|---|---|---|")
    for name, (_, n) in contenders.items():
        m = med[name]
        print(
            f"| {name} | {n:,} | {compile_s[name]:.2f} | {m * 1e3:.1f} | {B * T / m:,.0f} | "
            f"{torch_s / m:.2f}x |"
        )


if __name__ == "__main__":
    main()
