"""The host training loop: chunks -> jitted step -> sinks, checkpoints, metrics, resume.

This is an edge of the library: it reads the clock, writes files and moves
metrics to the host. Everything it calls per step is a compiled pure function.

Files written under ``workdir``::

    config.json, vocab.json, out_vocab.json
    ckpt/, manifests/            checkpoint trajectory (``jaxdyn.checkpoint``)
    metrics/epochs.jsonl, metrics/epochs.csv   one row per epoch (epoch 0 = initialisation)
    metrics/steps.jsonl          training loss every ``log_every`` steps
    metrics/traces.jsonl         batch means of the captured trace reductions

Rerunning on the same ``workdir`` resumes from the newest checkpoint (exactly:
same data position, carry, RNG, learning rate), and refuses a different training
config (``RunConfig.training_dict``: study sections may change).

:func:`train` takes the model and the optimizer as objects (any Flax module
following ``jaxdyn.models.taps``'s protocol, any ``optax.GradientTransformation``);
by default it builds them from ``cfg.model`` and ``cfg.optim``
(:func:`build_model`, :func:`optimizer_for`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from jaxdyn.checkpoint import CheckpointError, Trajectory, to_jsonable
from jaxdyn.config import TRAINING_KEYS, ConfigError, RunConfig
from jaxdyn.models.taps import apply_model, initial_carry
from jaxdyn.trace.records import batch_means
from jaxdyn.train.build import (  # noqa: F401  (re-exported: callers import them from here)
    build_model,
    capture_spec,
    compiled_steps,
    model_for,
    optimizer_for,
)
from jaxdyn.train.logs import Writer, epoch_row, history_array, ppl  # noqa: F401
from jaxdyn.train.optim import (
    PlateauState,
    get_learning_rate,
    has_learning_rate,
    plateau_update,
    set_learning_rate,
)
from jaxdyn.train.state import TrainState, init_train_state
from jaxdyn.train.tasks import Stream, TaskData

#: A trace sink: called as ``sink(step, epoch, trace)`` on every captured step.
TraceSink = Callable[[int, int, dict], None]


def evaluate(eval_step, params, stream: Stream, bptt: int, *, model=None) -> float:
    """Mean per-token cross-entropy of ``params`` on a stream (from the initial carry).

    Args:
      eval_step: ``make_eval_step(model)``.
      params: the model's parameters.
      stream: the evaluation stream.
      bptt: chunk length.
      model: the model, for its initial carry (``jaxdyn.models.taps``); None: the
        LSTM layout's zero carry (old callers).
    """
    if model is None:
        from jaxdyn.models.lstm import zero_carry

        carry = zero_carry(params, stream.inputs.shape[0])
    else:
        carry = initial_carry(model, params, stream.inputs.shape[0])
    total = jnp.zeros(())
    count = jnp.zeros(())
    for k in range(stream.num_chunks(bptt)):
        t, c, carry = eval_step(params, carry, stream.chunk(k, bptt))
        total, count = total + t, count + c
    total, count = jax.device_get((total, count))
    if count == 0:
        raise ValueError("evaluation stream has no tokens")
    return float(total / count)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    state: TrainState
    history: list[dict]
    workdir: Path
    finished: bool
    model: Any
    #: the members' seeds for a population run (``cfg.seeds > 1``; ``state`` and
    #: ``history`` then cover every member), None for a single model
    seeds: list[int] | None = None


def _training_part(d: dict) -> dict:
    """The training keys of a (possibly older) config dict, defaults filled in."""
    d = {k: v for k, v in d.items() if k in TRAINING_KEYS}
    try:  # fills fields added since the file was written with their defaults
        d = RunConfig.from_dict(d).training_dict()
    except (TypeError, ValueError):
        pass
    d = json.loads(json.dumps(d))
    d.get("data", {}).pop("data_dir", None)  # where the corpus lives may change between sessions
    return d


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys whose values differ between two nested dicts: ``(key, a, b)``."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(_differences(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out.append((prefix + k, va, vb))
    return out


def _check_output_size(model, state: TrainState, batch_size: int, num_outputs: int) -> None:
    """A model given to :func:`train` must predict the task's ``num_outputs`` classes."""
    dummy = jnp.zeros((batch_size, 1), jnp.int32)
    logits = jax.eval_shape(
        lambda p, c: apply_model(model, {"params": p}, dummy, c, train=False)[0],
        state.params,
        state.carry,
    )
    if logits.shape[-1] != num_outputs:
        raise ValueError(
            f"{type(model).__name__} outputs {logits.shape[-1]} classes but the task has "
            f"{num_outputs} (len(data.out_vocab)); size the model for the task"
        )


def _check_same_config(workdir: Path, cfg: RunConfig, has_checkpoints: bool) -> None:
    path = workdir / "config.json"
    if path.exists() and has_checkpoints:
        old = _training_part(json.loads(path.read_text()))
        new = _training_part(cfg.training_dict())
        if old != new:
            diff = _differences(old, new)
            shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in diff[:5])
            more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
            raise ConfigError(
                f"{workdir} holds a run with a different config ({path}): {shown}{more}; "
                "use another --workdir, or delete it to start over"
            )
    # the latest invocation's whole tree (study sections may change freely)
    path.write_text(json.dumps(cfg.to_dict(), indent=2))


def train(
    cfg: RunConfig,
    workdir: str | Path,
    data: TaskData,
    *,
    progress: bool = True,
    max_steps: int | None = None,
    sinks: Sequence[TraceSink] = (),
    init_params: Any = None,
    resume_step: int | None = None,
    model: Any = None,
    tx: optax.GradientTransformation | None = None,
    mesh: Any = "auto",
) -> TrainResult:
    """Train (or resume training) and save a checkpoint per epoch.

    Args:
      cfg: the run configuration (data, epochs, seed, capture, checkpoints; and
        the model/optimizer unless given).
      workdir: run folder (created); an existing run there is resumed.
      data: the task (see ``jaxdyn.train.tasks``).
      progress: show a progress bar on stderr.
      max_steps: stop after this many optimizer steps in this call (a
        checkpoint is saved there) — for interrupting a run on purpose.
      sinks: callables receiving every captured trace.
      init_params: start from these parameters (e.g. a tagger sharing a
        language model's initialisation) instead of ``cfg.seed``'s.
      resume_step: resume from this checkpoint instead of the newest one.
      model: the model to train (any Flax module following
        ``jaxdyn.models.taps``'s protocol, sized for ``data``); default
        ``build_model(cfg, data)``. Resuming checks the config, not the model:
        resume a run with the model it was started with.
      tx: any Optax transformation; default ``optimizer_for(cfg.optim)``. The
        plateau rule (``cfg.optim.plateau_factor < 1``) applies when its state
        exposes an injected learning rate (``optax.inject_hyperparams``); for one
        without, a message says the rule is skipped and ``lr`` is left empty.
      mesh: population runs only (``cfg.seeds > 1``, see
        :func:`jaxdyn.train.population_loop.train_population`): the device mesh,
        ``"auto"`` (every visible device when there are several) or None.

    Returns:
      A :class:`TrainResult`; ``finished`` tells whether all epochs are done.
      With ``cfg.seeds > 1`` the whole population is trained as one state
      (:mod:`jaxdyn.train.population_loop`).
    """
    if cfg.seeds > 1:
        from jaxdyn.train.population_loop import train_population

        return train_population(
            cfg,
            workdir,
            data,
            progress=progress,
            max_steps=max_steps,
            sinks=sinks,
            init_params=init_params,
            resume_step=resume_step,
            model=model,
            tx=tx,
            mesh=mesh,
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    traj = Trajectory(workdir)
    try:
        # a config.json without checkpoints is a run that failed before starting: replace it
        _check_same_config(workdir, cfg, bool(traj.all_steps()))
        data.vocab.save(workdir / "vocab.json")
        data.out_vocab.save(workdir / "out_vocab.json")
        bptt = cfg.data.bptt
        model = build_model(cfg, data) if model is None else model
        tx = optimizer_for(cfg.optim) if tx is None else tx
        spec = capture_spec(cfg)
        step_plain, step_capture, eval_step = compiled_steps(model, tx, spec)
        batch_size = data.train.inputs.shape[0]
        state = init_train_state(model, tx, cfg.seed, batch_size, params=init_params)
        _check_output_size(model, state, batch_size, len(data.out_vocab))
        plateau_on = cfg.optim.plateau_factor < 1.0 and has_learning_rate(state.opt_state)
        if cfg.optim.plateau_factor < 1.0 and not plateau_on:
            print(
                f"plateau schedule (optim.plateau_factor={cfg.optim.plateau_factor:g}) not "
                "applied: the optimizer exposes no injected learning rate (wrap it in "
                "optax.inject_hyperparams to schedule it)",
                file=sys.stderr,
            )
        writer = Writer(workdir)
        n_chunks = data.train.num_chunks(bptt)
        start = resume_step if resume_step is not None else traj.latest_step()
        if start is not None:
            state, meta = traj.restore(start, state)
            epoch, chunk = int(meta["epoch"]), int(meta["chunk"])
            plateau = PlateauState(best=float(meta["plateau_best"]))
            history = list(meta["history"])
            # per-step losses of the interrupted epoch, so its train loss (and the
            # log cadence) match an uninterrupted run exactly
            losses = [jnp.float32(x) for x in meta.get("epoch_losses", [])]
            writer.truncate(start)
            writer.epochs_csv(history)
            print(
                f"resuming {workdir} from step {start} (epoch {epoch}, chunk {chunk})",
                file=sys.stderr,
            )
        else:
            epoch, chunk, plateau, losses = 0, 0, PlateauState(), []
            writer.truncate(0)
            val = evaluate(eval_step, state.params, data.valid, bptt, model=model)
            history = [epoch_row(0, 0, float("nan"), val, get_learning_rate(state.opt_state), 0.0)]
            writer.epochs_csv(history)
            traj.save(state, _meta(cfg, data, 0, 0, plateau, history, "init"))

        def save(kind):
            meta = _meta(cfg, data, epoch, chunk, plateau, history, kind)
            meta["epoch_losses"] = [float(x) for x in jax.device_get(losses)]
            traj.save(state, meta)

        steps_here = 0
        host_step = int(state.step)  # mirrors state.step without a device sync per step
        while epoch < cfg.epochs:
            if chunk == 0:
                state = state._replace(carry=initial_carry(model, state.params, batch_size))
            t0 = time.perf_counter()
            bar = tqdm(
                total=n_chunks,
                initial=chunk,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not progress,
                leave=False,
                file=sys.stderr,
                unit="batch",
            )
            while chunk < n_chunks:
                step_no = host_step
                batch = data.train.chunk(chunk, bptt)
                if spec is not None and spec.should_capture(step_no):
                    state, metrics, trace = step_capture(state, batch)
                    _emit(trace, sinks, writer, step_no, epoch)
                else:
                    state, metrics, _ = step_plain(state, batch)
                losses.append(metrics["loss"])
                chunk += 1
                steps_here += 1
                host_step += 1
                bar.update(1)
                if len(losses) % cfg.log_every == 0:
                    recent = float(jnp.mean(jnp.stack(losses[-cfg.log_every :])))
                    if not math.isfinite(recent):
                        raise FloatingPointError(f"training loss is {recent} at step {step_no}")
                    bar.set_postfix(loss=f"{recent:.3f}", ppl=f"{ppl(recent):.1f}")
                    writer.jsonl(
                        "steps.jsonl", {"step": step_no + 1, "epoch": epoch, "loss": recent}
                    )
                if (
                    cfg.checkpoint_every_steps
                    and host_step % cfg.checkpoint_every_steps == 0
                    and chunk < n_chunks  # at an epoch's end the epoch checkpoint follows
                ):
                    save("steps")
                if max_steps is not None and steps_here >= max_steps and chunk < n_chunks:
                    save("interrupted")
                    bar.close()
                    return TrainResult(state, history, workdir, False, model)
            bar.close()
            train_loss = float(jnp.mean(jnp.stack(losses))) if losses else float("nan")
            val = evaluate(eval_step, state.params, data.valid, bptt, model=model)
            lr = get_learning_rate(state.opt_state)
            if plateau_on:
                plateau, new_lr, _ = plateau_update(plateau, val, lr, cfg.optim.plateau_factor)
                if new_lr != lr:
                    state = state._replace(opt_state=set_learning_rate(state.opt_state, new_lr))
            else:  # the best loss is still tracked (and checkpointed)
                plateau = PlateauState(best=min(plateau.best, val))
            epoch, chunk, losses = epoch + 1, 0, []
            row = epoch_row(epoch, host_step, train_loss, val, lr, time.perf_counter() - t0)
            history.append(row)
            writer.epochs_csv(history)
            if progress:
                print(
                    f"epoch {epoch:3d} | step {row['step']:6d} | train ppl {ppl(train_loss):8.2f} | "
                    f"valid ppl {row['valid_ppl']:8.2f} | lr {'-' if lr is None else f'{lr:g}'} | "
                    f"{row['seconds']:.1f}s",
                    file=sys.stderr,
                )
            save("epoch")
            if max_steps is not None and steps_here >= max_steps:
                return TrainResult(state, history, workdir, epoch >= cfg.epochs, model)
        return TrainResult(state, history, workdir, True, model)
    finally:
        traj.close()


def _meta(cfg, data, epoch, chunk, plateau, history, kind):
    return to_jsonable(
        {
            "kind": kind,
            "epoch": epoch,
            "chunk": chunk,
            "plateau_best": plateau.best if math.isfinite(plateau.best) else 1e30,
            "history": history,
            "config": cfg.training_dict(),
            "vocab": data.vocab.to_dict(),
            "out_vocab": data.out_vocab.to_dict() if data.out_vocab is not data.vocab else None,
            "task": data.kind,
            "train_tokens": data.train.num_tokens,
        }
    )


def _emit(trace, sinks, writer, step_no, epoch):
    means = jax.device_get(batch_means(trace))
    pg = jax.device_get(trace["reduced"].get("param_grad", {}))
    row = {"step": step_no, "epoch": epoch, **{k: float(v) for k, v in means.items()}}
    for path, stats in pg.items():
        row[f"param_grad/{path}/te"] = float(stats["te"]) if "te" in stats else None
    writer.jsonl("traces.jsonl", row)
    for sink in sinks:
        sink(step_no, epoch, trace)


def load_run(workdir: str | Path) -> tuple[RunConfig, list[int]]:
    """Config and valid checkpoint steps of a finished or running run."""
    workdir = Path(workdir)
    cfg = RunConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    with Trajectory(workdir, read_only=True) as traj:
        steps = traj.valid_steps()
    if not steps:
        raise CheckpointError(f"no intact checkpoints under {workdir}")
    return cfg, steps
