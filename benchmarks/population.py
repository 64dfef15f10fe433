"""Population step throughput: P = 4 members in one vmapped step vs 4 sequential steps.

Thesis shape: 2 x 200 LSTM, vocabulary 10k, batch 20, BPTT 35, dropout 0.2, SGD
(lr 20) with global-norm clipping 0.25. Contenders, each advancing 4 models by
one step on the same batch:

* jaxdyn population: one ``make_population_step`` call on a 4-member state;
* jaxdyn sequential: ``make_train_step`` called once per model (4 calls);
* PyTorch: 4 ``nn.LSTM`` models (same layout as ``benchmarks/train_step.py``)
  stepped in turn;
* floor: the 4 models' GEMMs and decoder softmax alone (:func:`floor_contender`), the time no
  contender can beat on this machine; the last line compares it with the goal.

They run alternately in rounds (interleaved, so load changes on a shared
machine hit all of them alike); each round times ``--steps`` consecutive
population steps; the table reports medians over rounds. First calls
(compilation) are timed separately.

``--mesh`` also runs, in a subprocess with 4 forced host devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``), the population step
sharded over a 4-device ``("pop", "data")`` mesh against the same step
unsharded: the maximum parameter difference after the timed steps, and the
overhead (the devices share the same cores, so this measures correctness and
cost, not speed).

    python benchmarks/population.py            # about 3-5 minutes on 2 cores
    python benchmarks/population.py --quick
    python benchmarks/population.py --mesh
    python benchmarks/population.py --per-core   # one pinned 1-thread process per core

``--per-core`` measures what the cores give when each runs its own members
single-threaded (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
``taskset``), all started at one wall-clock moment, against one process stepping the
same members in turn with XLA's threads over every core: inter-member against
intra-op parallelism (what several ``jax.distributed`` processes on one host would do).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _timing import setup_process

from jaxdyn.models import language_model
from jaxdyn.train import init_train_state, make_optimizer, make_train_step
from jaxdyn.train.population import (
    init_population,
    make_population_step,
    place_batch,
    population_mesh,
    shard_population,
)

V, E, H, L, B, T = 10_000, 200, 200, 2, 20, 35


def _batches(n=8):
    rng = np.random.default_rng(0)
    return [
        (rng.integers(0, V, (B, T)).astype(np.int32), rng.integers(0, V, (B, T)).astype(np.int32))
        for _ in range(n)
    ]


def _model_tx():
    return language_model(V, emb_dim=E, hidden=H, num_layers=L, dropout=0.2), make_optimizer(
        "sgd", 20.0, 0.25
    )


def population_contender(batches, p, mesh=None, unroll=False):
    model, tx = _model_tx()
    state = init_population(model, tx, list(range(p)), B)
    if mesh is not None:
        state = shard_population(state, mesh)
    step = make_population_step(model, tx, mesh=mesh, unroll=unroll)
    data = [
        place_batch({"inputs": jnp.asarray(x), "targets": jnp.asarray(y)}, mesh) for x, y in batches
    ]
    box = [state]

    def run(n):
        s = box[0]
        for i in range(n):
            s, metrics, _ = step(s, data[i % len(data)])
        jax.block_until_ready(s.params)
        box[0] = s
        return metrics["loss"]

    run.state = box
    return run


def sequential_contender(batches, p):
    model, tx = _model_tx()
    states = [init_train_state(model, tx, s, B) for s in range(p)]
    step = make_train_step(model, tx)
    data = [{"inputs": jnp.asarray(x), "targets": jnp.asarray(y)} for x, y in batches]

    def run(n):
        for i in range(n):
            for k in range(p):
                states[k], metrics, _ = step(states[k], data[i % len(data)])
        jax.block_until_ready([s.params for s in states])
        return metrics["loss"]

    return run


def torch_contender(batches, p, threads=None):
    import torch
    from train_step import torch_contender as one

    torch.manual_seed(0)
    runs = [one(batches) for _ in range(p)]
    default = torch.get_num_threads()

    def run(n):
        torch.set_num_threads(threads or default)
        for _ in range(n):
            for r in runs:
                loss = r(1)
        return loss

    return run


def floor_contender(p):
    """The unavoidable work of ``p`` thesis-shape train steps: a lower bound on any step.

    Per model, written by hand (no autodiff, no recurrence): the decoder with its
    softmax cross-entropy forward and backward (logits ``(B T, V)``, softmax, the
    gradient ``softmax - onehot``, then the input and weight gradients: 3 GEMMs of
    ``(B T) x H x V``), and for each of the ``L`` LSTM layers its input and recurrent
    projections ``(B T, E|H) x (E|H, 4H)`` as whole-sequence GEMMs, forward and
    backward (the real recurrence runs them as ``T`` smaller GEMMs, which is no
    faster). Gates, dropout, clipping and the update are left out. Each model's work
    is separate in one compiled call: members do not share weights, so no contender
    can merge their GEMMs into larger ones.
    """
    rng = np.random.default_rng(1)
    n = B * T
    proj = [(E if layer == 0 else H, 4 * H) for layer in range(L)] + [(H, 4 * H)] * L

    def arrays(*shape):
        return jnp.asarray(rng.standard_normal(shape, np.float32) * 0.05)

    models = [
        {
            "h": arrays(n, H),
            "w": arrays(V, H),
            "y": jnp.asarray(rng.integers(0, V, n).astype(np.int32)),
            "proj": [(arrays(n, k), arrays(k, m), arrays(n, m)) for k, m in proj],
        }
        for _ in range(p)
    ]
    flops = 3 * 2 * n * p * (H * V + sum(k * m for k, m in proj))

    @jax.jit
    def work(models):
        out = []
        for m in models:
            logits = m["h"] @ m["w"].T
            prob = jax.nn.softmax(logits)
            loss = jnp.mean(jax.nn.logsumexp(logits, -1) - logits[jnp.arange(n), m["y"]])
            g = (prob - jax.nn.one_hot(m["y"], V)) / n
            out += [loss, g @ m["w"], g.T @ m["h"]]
            for x, w, gy in m["proj"]:
                out += [x @ w, gy @ w.T, x.T @ gy]  # forward, input grad, weight grad
        return out

    def run(n_steps):
        for _ in range(n_steps):
            r = work(models)
        jax.block_until_ready(r)

    run.flops = flops
    return run


def _mesh_check(args) -> None:
    """In a 4-device process: sharded vs unsharded population step (difference, overhead)."""
    assert len(jax.devices()) == 4, jax.devices()
    batches = _batches()
    mesh = population_mesh(args.members)
    plain = population_contender(batches, args.members)
    sharded = population_contender(batches, args.members, mesh)
    first = {}
    for name, run in (("unsharded", plain), ("sharded", sharded)):
        t0 = time.perf_counter()
        run(1)
        first[name] = time.perf_counter() - t0
    times = {"unsharded": [], "sharded": []}
    for _ in range(args.rounds):
        for name, run in (("unsharded", plain), ("sharded", sharded)):
            t0 = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps)
    diff = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(
            jax.tree.leaves(plain.state[0].params), jax.tree.leaves(sharded.state[0].params)
        )
    )
    tok = args.members * B * T
    print(f"# 4 forced host devices, mesh {dict(mesh.shape)}, P={args.members}")
    print("| population step | first call (s) | median step (ms) | tokens/s |")
    print("|---|---|---|---|")
    for name in times:
        m = statistics.median(times[name])
        print(f"| {name} | {first[name]:.2f} | {m * 1e3:.1f} | {tok / m:,.0f} |")
    steps = 1 + args.rounds * args.steps
    print(f"max |sharded - unsharded| over all parameters after {steps} steps: {diff:.3g}")


SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _core_child(args) -> None:
    """One pinned, single-threaded process: ``--members`` sequential steps per round,
    started at ``--start-at`` (wall clock) with its siblings; prints its finish time."""
    run = sequential_contender(_batches(), args.members)
    run(1)  # compile
    while time.time() < args.start_at:
        time.sleep(0.001)
    run(args.rounds * args.steps)
    print(f"FINISHED {time.time():.6f}", flush=True)


def per_core(args) -> None:
    """Members spread over the cores, one single-threaded process per core, against the
    same members stepped in turn by one process using every core (XLA's threads)."""
    cores = sorted(os.sched_getaffinity(0))
    p = args.members
    if p % len(cores):
        raise SystemExit(f"--per-core needs --members divisible by the {len(cores)} cores")
    n_steps = args.rounds * args.steps
    env = {**os.environ, "XLA_FLAGS": SINGLE_THREAD}
    start = time.time() + 30.0  # after every child has compiled
    cmd = [sys.executable, __file__, "--core-child", "--members", str(p // len(cores))]
    cmd += ["--rounds", str(args.rounds), "--steps", str(args.steps), "--start-at", str(start)]
    procs = [
        subprocess.Popen(
            ["taskset", "-c", str(c), *cmd], env=env, stdout=subprocess.PIPE, text=True
        )
        for c in cores
    ]
    ends = [float(pr.communicate()[0].split("FINISHED ")[1]) for pr in procs]
    spread = max(ends) - start
    seq = sequential_contender(_batches(), p)
    seq(1)
    t0 = time.perf_counter()
    seq(n_steps)
    together = time.perf_counter() - t0
    tok = p * B * T * n_steps
    print(f"# {p} models x {n_steps} steps each; load average {os.getloadavg()[0]:.2f} at the end")
    print("| contender | time for 4 model steps (ms) | tokens/s | vs one process |")
    print("|---|---|---|---|")
    for name, t in (
        (f"one process, {len(cores)} XLA threads, models in turn", together),
        (f"{len(cores)} pinned 1-thread processes, {p // len(cores)} models each", spread),
    ):
        print(f"| {name} | {t / n_steps * 1e3:.1f} | {tok / t:,.0f} | {together / t:.2f}x |")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3, help="population steps per round")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--mesh", action="store_true", help="also the 4-device CPU mesh check")
    ap.add_argument("--mesh-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--per-core",
        action="store_true",
        help="instead: one pinned single-threaded process per core vs one process (Linux)",
    )
    ap.add_argument("--core-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--default-malloc", action="store_true", help="glibc's malloc defaults")
    args = ap.parse_args()
    malloc = setup_process()
    if args.quick:
        args.rounds, args.steps = 3, 2
    if args.mesh_child:
        _mesh_check(args)
        return
    if args.core_child:
        _core_child(args)
        return
    if args.per_core:
        per_core(args)
        return
    import torch

    p = args.members
    threads = torch.get_num_threads()
    batches = _batches()
    contenders = {
        f"jaxdyn population, P={p} in one vmapped step": population_contender(batches, p),
        f"jaxdyn population, P={p} unrolled in one step": population_contender(
            batches, p, unroll=True
        ),
        f"jaxdyn, {p} sequential steps": sequential_contender(batches, p),
        f"PyTorch, {p} nn.LSTM models in turn": torch_contender(batches, p),
        f"PyTorch, {p} nn.LSTM models in turn, 1 thread": torch_contender(batches, p, 1),
        f"floor: the GEMMs and softmax of {p} steps alone": floor_contender(p),
    }
    load0 = os.getloadavg()
    compile_s = {}
    for name, run in contenders.items():
        t0 = time.perf_counter()
        run(1)
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():  # interleaved: every round runs each once
            t0 = time.perf_counter()
            run(args.steps)
            times[name].append((time.perf_counter() - t0) / args.steps)
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    seq = med[f"jaxdyn, {p} sequential steps"]
    tok = p * B * T
    print(
        f"# {p} models x one step, thesis shape (V={V}, {L}x{H}, B={B}, T={T}, SGD+clip 0.25); "
        f"{args.rounds} rounds x {args.steps} steps, medians"
    )
    print(
        f"# jax {jax.__version__}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch threads {threads} (default), malloc {malloc}; load average "
        f"{load0[0]:.2f} before / {load1[0]:.2f} after"
    )
    print(
        "| contender | first call (s) | median time for 4 model steps (ms) | tokens/s | vs sequential |"
    )
    print("|---|---|---|---|---|")
    for name in contenders:
        m = med[name]
        print(
            f"| {name} | {compile_s[name]:.2f} | {m * 1e3:.1f} | {tok / m:,.0f} | {seq / m:.2f}x |"
        )
    floor = med[f"floor: the GEMMs and softmax of {p} steps alone"]
    flops = contenders[f"floor: the GEMMs and softmax of {p} steps alone"].flops
    print(
        f"floor: {flops / 1e9:.1f} GFLOP of GEMMs and the softmax in {floor * 1e3:.1f} ms "
        f"({flops / floor / 1e9:.0f} GFLOP/s); the goal (population >= 1.5x the sequential "
        f"steps) needs <= {seq / 1.5 * 1e3:.1f} ms for {p} model steps, "
        + ("below the floor" if floor > seq / 1.5 else "above the floor")
    )
    if args.mesh:
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
        cmd = [sys.executable, __file__, "--mesh-child", "--members", str(p)]
        cmd += ["--rounds", str(args.rounds), "--steps", str(args.steps)]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
