"""Training maps: the weight-metric pass vs a NumPy loop, and a 1,000-checkpoint trajectory.

Two measurements (``benchmarks/RESULTS.md``, section "Training maps"):

1. ``--compare``: the metrics of every tensor of the default preset's model
   (``jaxdyn.analysis.weight_metrics.tree_metrics``: one compiled call per
   checkpoint, one device-to-host transfer) against a NumPy loop computing the same
   metrics tensor by tensor (``np.linalg.svd`` per matrix), float32 both, on
   ``--checkpoints`` random perturbations of the initial parameters; interleaved,
   medians. Also checks that both agree.
2. ``--generate DIR`` then ``--process DIR``: a run folder of the default model
   with ``--checkpoints`` parameters-only checkpoints (the real initialisation and
   first step, then a synthetic random walk of the parameters saved with
   ``Trajectory.save_params``), and the phases study's whole metric pass over it
   (streamed from the checkpoint folder: ``phases.compute.run_rows``) followed by
   the HMM fit. Run ``--process`` under ``/usr/bin/time -v`` for the peak resident
   memory::

       python benchmarks/training_maps.py --compare
       python benchmarks/training_maps.py --generate /tmp/maps1000 --checkpoints 1000
       /usr/bin/time -v python benchmarks/training_maps.py --process /tmp/maps1000
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.runtime import tune_host_allocator


def numpy_metrics(tree: dict) -> dict:
    """The same metrics as ``tree_metrics`` with NumPy, one tensor at a time (float32)."""
    out = {}
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        x = np.asarray(x, np.float32)
        flat = x.ravel()
        l1, l2 = np.abs(flat).sum(), np.sqrt(np.dot(flat, flat))
        m = {"l1": l1, "l2": l2, "l1_l2": l1 / l2 if l2 > 0 else 0.0}
        m.update(mean=flat.mean(), var=flat.var())
        if x.ndim == 2:
            s = np.linalg.svd(x, compute_uv=False)
            p = s / s.sum()
            m.update(
                frobenius=l2,
                spectral=s[0],
                nuclear=s.sum(),
                sv_mean=s.mean(),
                sv_var=s.var(),
                stable_rank=l2**2 / s[0] ** 2,
                effective_rank=np.exp(-np.sum(p[p > 0] * np.log(p[p > 0]))),
            )
        out[name] = m
    return out


def _default_params():
    from jaxdyn.config import preset
    from jaxdyn.train.build import build_model

    cfg = preset("default")
    model = build_model(cfg, vocab_size=10_000, num_outputs=10_000)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))["params"]
    return params


def compare(n: int, repeats: int) -> None:
    from jaxdyn.analysis.weight_metrics import tree_metrics

    base = _default_params()
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    trees = [
        jax.tree_util.tree_map(lambda x, k=k: x + 0.01 * jax.random.normal(k, x.shape), base)
        for k in keys
    ]
    shapes = {
        "/".join(str(getattr(k, "key", k)) for k in p): x.shape
        for p, x in jax.tree_util.tree_flatten_with_path(base)[0]
    }
    print(
        f"default model: {sum(int(np.prod(s)) for s in shapes.values()):,} parameters in {len(shapes)} tensors {shapes}"
    )
    jax.device_get(tree_metrics(trees[0]))  # compile
    np_trees = [jax.device_get(t) for t in trees]
    got, ref = jax.device_get(tree_metrics(trees[0])), numpy_metrics(np_trees[0])
    worst = max(
        abs(float(got[p][k]) - float(ref[p][k])) / max(abs(float(ref[p][k])), 1e-6)
        for p in ref
        for k in ref[p]
    )
    print(f"max relative difference jaxdyn vs NumPy: {worst:.2e}")
    t_jax, t_np = [], []
    for _ in range(repeats):  # interleaved
        t0 = time.perf_counter()
        for t in trees:
            jax.device_get(tree_metrics(t))
        t_jax.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for t in np_trees:
            numpy_metrics(t)
        t_np.append((time.perf_counter() - t0) / n)
    a, b = statistics.median(t_jax), statistics.median(t_np)
    print(
        f"per checkpoint: tree_metrics {1e3 * a:.1f} ms, NumPy loop {1e3 * b:.1f} ms, ratio NumPy/jaxdyn {b / a:.2f}x ({repeats} interleaved repeats of {n} checkpoints, medians)"
    )


def _phases_cfg(families: str):
    from jaxdyn.config import PhasesConfig

    hmm = ",".join(f for f in families.split(",") if f != "sim")
    return PhasesConfig(
        max_chunks=1,
        grad_chunks=1,
        sim_tokens=600,
        max_states=4,
        restarts=2,
        compute_families=families,
        hmm_families=hmm,
    )


def generate(workdir: Path, n: int) -> None:
    from jaxdyn.checkpoint import Trajectory
    from jaxdyn.config import CheckpointConfig, preset
    from jaxdyn.train import train
    from jaxdyn.train.tasks import load_task

    cfg = dataclasses.replace(
        preset("default"), checkpoint=CheckpointConfig(schedule="every:1", kind="params")
    )
    data = load_task(cfg.data)
    t0 = time.perf_counter()
    res = train(cfg, workdir, data, progress=False, max_steps=1)  # real init + step 1
    params = jax.device_get(res.state.params)
    rng = np.random.default_rng(0)
    with Trajectory(workdir) as traj:
        start = traj.latest_step() + 1
        for step in range(start, n):  # synthetic: a random walk of every parameter
            params = jax.tree_util.tree_map(
                lambda x: x + np.float32(1e-3) * rng.standard_normal(x.shape, np.float32), params
            )
            traj.save_params(params, step, {"epoch": 0, "chunk": step, "history": []})
        steps = traj.all_steps()
    size = sum(f.stat().st_size for f in (workdir / "ckpt").rglob("*") if f.is_file())
    print(
        f"{len(steps)} checkpoints ({steps[0]}..{steps[-1]}), {size / 2**30:.2f} GiB, {time.perf_counter() - t0:.0f} s"
    )


def process(workdir: Path, families: str) -> None:
    from jaxdyn.studies.phases.compute import read_rows, run_rows, write_rows
    from jaxdyn.studies.phases.report import fit_map
    from jaxdyn.train.tasks import load_task
    from jaxdyn.train.trajectory import run_model

    cfg_run, _, _, _ = run_model(workdir)
    data = load_task(cfg_run.data)
    cfg = _phases_cfg(families)
    out = workdir / "phases"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    n = write_rows(out / "metrics.csv", run_rows(workdir, data.valid, data.train, cfg))
    t1 = time.perf_counter()
    rows = read_rows(out / "metrics.csv")
    fit = fit_map(rows, cfg, out)
    t2 = time.perf_counter()
    steps = len(fit["mm"].steps)
    print(
        f"families {families}: {steps} checkpoints, {n:,} rows: metric pass {t1 - t0:.0f} s ({1e3 * (t1 - t0) / steps:.0f} ms per checkpoint), HMM (K {cfg.min_states}..{cfg.max_states}, {cfg.restarts} restarts) {t2 - t1:.0f} s, BIC picks {fit['best'].num_states}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--generate", type=Path)
    ap.add_argument("--process", type=Path)
    ap.add_argument("--checkpoints", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--families",
        default="weights,grad,loss,te,sim",
        help="--process: phases.compute_families (e.g. weights: the weight-metric pass only)",
    )
    args = ap.parse_args(argv)
    tune_host_allocator()
    if args.compare:
        compare(args.checkpoints or 20, args.repeats)
    if args.generate:
        generate(args.generate, args.checkpoints or 1000)
    if args.process:
        process(args.process, args.families)
    if not (args.compare or args.generate or args.process):
        ap.error("choose --compare, --generate DIR or --process DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
