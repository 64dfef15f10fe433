"""The host loop of a population (``cfg.seeds > 1``): one state, one step, one checkpoint.

:func:`jaxdyn.train.loop.train` hands a config with ``seeds = P > 1`` to
:func:`train_population`. It mirrors the single-model loop (same files, same
exact resume, same config check) with these differences:

* member ``m`` has seed ``cfg.seed + m``; all members see the same chunks in the
  same order (the shared data order);
* every checkpoint holds the whole population (leading ``(P,)`` axis on every
  leaf) plus ``meta["population"] = {"size": P, "seeds": [...]}``;
  :func:`jaxdyn.train.trajectory.iter_checkpoints` reads one member back
  (``member=m``) as an ordinary model's parameters;
* metric rows carry ``member`` (and ``seed`` in ``epochs.*``): ``epochs.csv`` has
  one row per member per epoch, ``steps.jsonl``/``traces.jsonl`` one row per
  member per logged/captured step;
* the plateau rule decides per member (the injected learning rate is ``(P,)``);
* a member whose training loss becomes non-finite is reported by index on stderr
  and in its rows (``finite: false``) and recorded in the checkpoint metadata
  (``failed_members``); the others keep training (members are independent). Only
  when every member has failed does training stop with ``FloatingPointError``.
* trace sinks receive the population trace (leading ``(P,)`` axis).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdyn.checkpoint import Trajectory
from jaxdyn.config import RunConfig
from jaxdyn.trace.records import batch_means
from jaxdyn.train.build import build_model, capture_spec, optimizer_for
from jaxdyn.train.logs import Writer, epoch_row, ppl
from jaxdyn.train.optim import PlateauState, has_learning_rate, plateau_update, set_learning_rate
from jaxdyn.train.population import (
    init_population,
    learning_rates,
    member_seeds,
    place_batch,
    population_carry,
    population_mesh,
    population_steps,
    shard_population,
    take_member,
)
from jaxdyn.train.tasks import Stream, TaskData


def evaluate_population(eval_step, params, stream: Stream, bptt: int, *, model) -> np.ndarray:
    """Per-member mean token cross-entropy ``(P,)`` of stacked ``params`` on a stream."""
    carry = population_carry(model, params, stream.inputs.shape[0])
    total = count = None
    for k in range(stream.num_chunks(bptt)):
        t, c, carry = eval_step(params, carry, stream.chunk(k, bptt))
        total, count = (t, c) if total is None else (total + t, count + c)
    if total is None:
        raise ValueError("evaluation stream has no tokens")
    total, count = (np.asarray(x, np.float64) for x in jax.device_get((total, count)))
    if not (count > 0).all():
        raise ValueError("evaluation stream has no tokens")
    return total / count


def resolve_mesh(mesh: Any, size: int, batch_size: int):
    """``"auto"``: a :func:`population_mesh` over the visible devices when there are several."""
    if mesh != "auto":
        return mesh
    devices = jax.devices()
    if len(devices) < 2:
        return None
    m = population_mesh(size, devices)
    if batch_size % m.shape["data"]:  # no data parallelism for this batch size
        m = population_mesh(size, devices[: math.gcd(size, len(devices))])
    return None if m.devices.size < 2 else m


def _meta(cfg, data, epoch, chunk, plateaus, history, kind, seeds, failed):
    from jaxdyn.train.loop import _meta as single_meta

    meta = single_meta(cfg, data, epoch, chunk, PlateauState(), history, kind)
    meta["plateau_best"] = [p.best if math.isfinite(p.best) else 1e30 for p in plateaus]
    meta["population"] = {"size": len(seeds), "seeds": list(seeds)}
    meta["failed_members"] = sorted(failed)
    return meta


def _rows(epoch, step, train_loss, val, lrs, seconds, seeds, failed):
    rows = []
    for m, s in enumerate(seeds):
        lr = None if lrs is None else float(lrs[m])
        row = epoch_row(epoch, step, float(train_loss[m]), float(val[m]), lr, seconds)
        rows.append({"member": m, "seed": s, **row, "finite": m not in failed})
    return rows


def train_population(
    cfg: RunConfig,
    workdir: str | Path,
    data: TaskData,
    *,
    progress: bool = True,
    max_steps: int | None = None,
    sinks=(),
    init_params: Any = None,
    resume_step: int | None = None,
    model: Any = None,
    tx=None,
    mesh: Any = "auto",
):
    """Train (or resume) ``cfg.seeds`` members as one population; see the module docstring.

    Arguments as :func:`jaxdyn.train.loop.train`, plus:
      mesh: a :func:`~jaxdyn.train.population.population_mesh` to shard the
        population over; ``"auto"`` (default) uses every visible device when there
        are several; None keeps everything on the default device.

    Returns:
      A :class:`~jaxdyn.train.loop.TrainResult` whose ``state`` is the population
      state (leading ``(P,)`` axis), ``history`` one row per member per epoch
      (``member``, ``seed``, ...), and ``seeds`` the members' seeds.
    """
    from jaxdyn.train.loop import TrainResult, _check_output_size, _check_same_config

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    traj = Trajectory(workdir)
    try:
        _check_same_config(workdir, cfg, bool(traj.all_steps()))
        data.vocab.save(workdir / "vocab.json")
        data.out_vocab.save(workdir / "out_vocab.json")
        bptt = cfg.data.bptt
        model = build_model(cfg, data) if model is None else model
        tx = optimizer_for(cfg.optim) if tx is None else tx
        spec = capture_spec(cfg)
        seeds = member_seeds(cfg.seed, cfg.seeds)
        size = len(seeds)
        batch_size = data.train.inputs.shape[0]
        mesh = resolve_mesh(mesh, size, batch_size)
        step_plain, step_capture, eval_step = population_steps(model, tx, spec, mesh)
        state = init_population(model, tx, seeds, batch_size, params=init_params)
        _check_output_size(model, take_member(state, 0), batch_size, len(data.out_vocab))
        if mesh is not None:
            state = shard_population(state, mesh)
        plateau_on = cfg.optim.plateau_factor < 1.0 and has_learning_rate(state.opt_state)
        if cfg.optim.plateau_factor < 1.0 and not plateau_on:
            print(
                f"plateau schedule (optim.plateau_factor={cfg.optim.plateau_factor:g}) not "
                "applied: the optimizer exposes no injected learning rate",
                file=sys.stderr,
            )
        writer = Writer(workdir)
        n_chunks = data.train.num_chunks(bptt)
        start = resume_step if resume_step is not None else traj.latest_step()
        if start is not None:
            state, meta = traj.restore(start, state)
            epoch, chunk = int(meta["epoch"]), int(meta["chunk"])
            plateaus = [PlateauState(best=float(b)) for b in meta["plateau_best"]]
            history = list(meta["history"])
            failed = set(meta.get("failed_members", []))
            losses = [jnp.asarray(x, jnp.float32) for x in meta.get("epoch_losses", [])]
            writer.truncate(start)
            writer.epochs_csv(history)
            print(
                f"resuming population of {size} from step {start} (epoch {epoch}, chunk {chunk})",
                file=sys.stderr,
            )
        else:
            epoch, chunk, losses, failed = 0, 0, [], set()
            plateaus = [PlateauState() for _ in seeds]
            writer.truncate(0)
            val = evaluate_population(eval_step, state.params, data.valid, bptt, model=model)
            nan = np.full(size, np.nan)
            lrs = learning_rates(state.opt_state)
            history = _rows(0, 0, nan, val, lrs, 0.0, seeds, failed)
            writer.epochs_csv(history)
            traj.save(state, _meta(cfg, data, 0, 0, plateaus, history, "init", seeds, failed))

        def save(kind):
            meta = _meta(cfg, data, epoch, chunk, plateaus, history, kind, seeds, failed)
            meta["epoch_losses"] = [np.asarray(x).tolist() for x in jax.device_get(losses)]
            traj.save(state, meta)

        def check_finite(recent, step_no):
            bad = [m for m in np.flatnonzero(~np.isfinite(recent)) if m not in failed]
            for m in bad:
                failed.add(int(m))
                print(
                    f"member {m} (seed {seeds[m]}) has a non-finite training loss "
                    f"({recent[m]}) at step {step_no}; the other members continue",
                    file=sys.stderr,
                )
            if len(failed) == size:
                raise FloatingPointError(
                    f"every member's training loss is non-finite at step {step_no}"
                )

        steps_here = 0
        host_step = int(np.asarray(jax.device_get(state.step)).reshape(-1)[0])
        while epoch < cfg.epochs:
            if chunk == 0:
                carry = population_carry(model, state.params, batch_size)
                state = state._replace(carry=carry)
                if mesh is not None:
                    state = shard_population(state, mesh)
            t0 = time.perf_counter()
            bar = tqdm(
                total=n_chunks,
                initial=chunk,
                desc=f"epoch {epoch + 1}/{cfg.epochs} ({size} members)",
                disable=not progress,
                leave=False,
                file=sys.stderr,
                unit="batch",
            )
            while chunk < n_chunks:
                step_no = host_step
                batch = place_batch(data.train.chunk(chunk, bptt), mesh)
                if spec is not None and spec.should_capture(step_no):
                    state, metrics, trace = step_capture(state, batch)
                    _emit_population(trace, sinks, writer, step_no, epoch)
                else:
                    state, metrics, _ = step_plain(state, batch)
                losses.append(metrics["loss"])
                chunk += 1
                steps_here += 1
                host_step += 1
                bar.update(1)
                if len(losses) % cfg.log_every == 0:
                    recent = np.asarray(jnp.mean(jnp.stack(losses[-cfg.log_every :]), axis=0))
                    check_finite(recent, step_no)
                    ok = recent[np.isfinite(recent)]
                    bar.set_postfix(loss=f"{ok.mean():.3f}", ppl=f"{ppl(float(ok.mean())):.1f}")
                    for m in range(size):
                        row = {"step": step_no + 1, "epoch": epoch, "member": m}
                        writer.jsonl("steps.jsonl", {**row, "loss": float(recent[m])})
                if (
                    cfg.checkpoint_every_steps
                    and host_step % cfg.checkpoint_every_steps == 0
                    and chunk < n_chunks
                ):
                    save("steps")
                if max_steps is not None and steps_here >= max_steps and chunk < n_chunks:
                    save("interrupted")
                    bar.close()
                    return TrainResult(state, history, workdir, False, model, seeds)
            bar.close()
            train_loss = (
                np.asarray(jnp.mean(jnp.stack(losses), axis=0)) if losses else np.full(size, np.nan)
            )
            if losses:
                check_finite(train_loss, host_step - 1)
            val = evaluate_population(eval_step, state.params, data.valid, bptt, model=model)
            lrs = learning_rates(state.opt_state)
            if plateau_on:
                new = lrs.copy()
                for m in range(size):
                    plateaus[m], new[m], _ = plateau_update(
                        plateaus[m], float(val[m]), float(lrs[m]), cfg.optim.plateau_factor
                    )
                if (new != lrs).any():
                    opt_state = set_learning_rate(state.opt_state, jnp.asarray(new))
                    state = state._replace(opt_state=opt_state)
                    if mesh is not None:
                        state = shard_population(state, mesh)
            else:
                plateaus = [PlateauState(min(p.best, float(v))) for p, v in zip(plateaus, val)]
            epoch, chunk, losses = epoch + 1, 0, []
            secs = time.perf_counter() - t0
            rows = _rows(epoch, host_step, train_loss, val, lrs, secs, seeds, failed)
            history.extend(rows)
            writer.epochs_csv(history)
            if progress:
                vp = " ".join(f"{r['valid_ppl']:.1f}" for r in rows)
                print(
                    f"epoch {epoch:3d} | step {host_step:6d} | valid ppl per member {vp} | "
                    f"{secs:.1f}s",
                    file=sys.stderr,
                )
            save("epoch")
            if max_steps is not None and steps_here >= max_steps:
                return TrainResult(state, history, workdir, epoch >= cfg.epochs, model, seeds)
        return TrainResult(state, history, workdir, True, model, seeds)
    finally:
        traj.close()


def _emit_population(trace, sinks, writer, step_no, epoch):
    means = jax.device_get(jax.vmap(batch_means)(trace))
    pg = jax.device_get(trace["reduced"].get("param_grad", {}))
    size = next(iter(jax.tree_util.tree_leaves(trace))).shape[0]
    for m in range(size):
        row = {"step": step_no, "epoch": epoch, "member": m}
        row.update({k: float(v[m]) for k, v in means.items()})
        for path, stats in pg.items():
            row[f"param_grad/{path}/te"] = float(stats["te"][m]) if "te" in stats else None
        writer.jsonl("traces.jsonl", row)
    for sink in sinks:
        sink(step_no, epoch, trace)
