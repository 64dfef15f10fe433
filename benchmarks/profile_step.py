"""Where one thesis-shaped train step spends its time, per XLA thunk; and page faults.

    python benchmarks/profile_step.py                   # allocator tuned, as jaxdyn's CLI
    python benchmarks/profile_step.py --default-malloc  # glibc's malloc defaults
    python benchmarks/profile_step.py --torch           # also PyTorch's profiler table

Prints the median step time and minor page faults per step (``ru_minflt``) of
jaxdyn's no-capture train step, then the thunks of the median profiled step that
took over 0.3 ms, with start and end times (ms from the step's start) and the
thread: concurrent thunks overlap. With ``--torch``, the top operators of the same
step in PyTorch (``torch.profiler``, self CPU time per step).
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _timing import setup_process

from jaxdyn.models import language_model
from jaxdyn.train import init_train_state, make_optimizer, make_train_step

V, E, H, L, B, T = 10_000, 200, 200, 2, 20, 35


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--default-malloc", action="store_true", help="glibc's malloc defaults")
    ap.add_argument("--torch", action="store_true", help="also profile the PyTorch step")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    malloc = setup_process()
    model = language_model(V, emb_dim=E, hidden=H, num_layers=L, dropout=0.2)
    tx = make_optimizer("sgd", 20.0, 0.25)
    state = init_train_state(model, tx, 0, B)
    step = make_train_step(model, tx, None)
    rng = np.random.default_rng(0)
    batch = {k: jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32) for k in ("inputs", "targets")}
    for _ in range(5):
        state, _, _ = step(state, batch)
    jax.block_until_ready(state.params)
    times, f0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.steps):
        t = time.perf_counter()
        state, _, _ = step(state, batch)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - t)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / args.steps
    print(f"# jax {jax.__version__}; malloc {malloc}; thesis shape, no capture")
    print(f"median step {statistics.median(times) * 1e3:.1f} ms, {faults:,.0f} minor faults/step")

    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d, create_perfetto_trace=True)
        for _ in range(10):
            state, _, _ = step(state, batch)
            jax.block_until_ready(state.params)
        jax.profiler.stop_trace()
        trace = next(Path(d).rglob("*.json.gz"))
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    spans = [e for e in events if e.get("ph") == "X"]
    runs = sorted(
        (e for e in spans if e["name"] == "ThunkExecutor::Execute (wait for completion)"),
        key=lambda e: e["dur"],
    )
    run = runs[len(runs) // 2]
    t0, t1 = run["ts"], run["ts"] + run["dur"]
    skip = ("Thunk", "$", "Slinky", "Pjit", "end: ")
    print(f"\nmedian profiled step: {run['dur'] / 1e3:.1f} ms; thunks over 0.3 ms:")
    print("| start (ms) | end (ms) | thread | thunk |\n|---|---|---|---|")
    tids = {}
    for e in sorted(spans, key=lambda e: e["ts"]):
        if t0 <= e["ts"] <= t1 and e["dur"] > 300 and not e["name"].startswith(skip):
            tid = tids.setdefault(e.get("tid"), len(tids))
            print(
                f"| {(e['ts'] - t0) / 1e3:.2f} | {(e['ts'] + e['dur'] - t0) / 1e3:.2f} | {tid} | {e['name']} |"
            )
    if args.torch:
        profile_torch()


def profile_torch(n=10):
    import torch
    from torch.profiler import ProfilerActivity, profile
    from train_step import torch_contender

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    batches = [
        (rng.integers(0, V, (B, T)).astype(np.int32), rng.integers(0, V, (B, T)).astype(np.int32))
    ]
    run = torch_contender(batches)
    run(5)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(n)
    print(f"\n# torch {torch.__version__}: self CPU time per step, top operators")
    print("| operator | ms/step | calls/step |\n|---|---|---|")
    rows = sorted(prof.key_averages(), key=lambda r: -r.self_cpu_time_total)[:12]
    for r in rows:
        print(f"| {r.key} | {r.self_cpu_time_total / n / 1e3:.2f} | {r.count / n:g} |")


if __name__ == "__main__":
    main()
