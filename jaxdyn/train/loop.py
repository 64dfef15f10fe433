"""The host training loop: chunks -> jitted step -> sinks, checkpoints, metrics, resume.

This is an edge of the library: it reads the clock, writes files, moves metrics
to the host and (while it runs, in the main thread) handles Ctrl-C. Everything
it calls per step is a compiled pure function.

One loop trains a single model and a population (``cfg.seeds > 1``, P members
as one vmapped state): what differs (initialisation, the compiled steps, the
shape of losses and learning rates, metric rows, checkpoint metadata) lives in
a small strategy object, :class:`Single` here and
:class:`jaxdyn.train.population_loop.Population`.

Files written under ``workdir``::

    config.json, vocab.json, out_vocab.json
    ckpt/, manifests/            checkpoint trajectory (``jaxdyn.checkpoint``)
    metrics/epochs.jsonl, metrics/epochs.csv   one row per epoch (epoch 0 = initialisation)
    metrics/steps.jsonl          training loss every ``log_every`` steps
    metrics/traces.jsonl         batch means of the captured trace reductions
    tensorboard/                 the same curves as TensorBoard event files (``cfg.tensorboard``)

Rerunning on the same ``workdir`` resumes from the newest full checkpoint
(exactly: same data position, carry, RNG, learning rate); a finished run says
so and trains nothing; a larger ``epochs`` extends a finished run from its last
checkpoint. A different training config (``RunConfig.training_dict`` except
``epochs``; study sections may change) is refused, naming the differing keys.

Ctrl-C (SIGINT) during :func:`train` saves a checkpoint at the next step
boundary and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``); a
second Ctrl-C stops at once without saving.

:func:`train` takes the model and the optimizer as objects (any Flax module
following ``jaxdyn.models.taps``'s protocol, any ``optax.GradientTransformation``);
by default it builds them from ``cfg.model`` and ``cfg.optim``
(:func:`build_model`, :func:`optimizer_for`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from jaxdyn.checkpoint import Trajectory
from jaxdyn.config import RunConfig
from jaxdyn.models.taps import apply_model
from jaxdyn.train.build import (  # noqa: F401  (re-exported: callers import them from here)
    build_model,
    capture_spec,
    compiled_steps,
    model_for,
    optimizer_for,
)
from jaxdyn.train.logs import Writer, epoch_row, history_array, ppl  # noqa: F401
from jaxdyn.train.optim import (
    has_learning_rate,
)
from jaxdyn.train.run_folder import check_same_config
from jaxdyn.train.schedule import demote_candidates, scheduled_kind
from jaxdyn.train.single import (  # noqa: F401  (chunk_offset, evaluate: re-exported)
    Single,
    chunk_offset,
    evaluate,
)
from jaxdyn.train.state import TrainState
from jaxdyn.train.tasks import TaskData

#: A trace sink: called as ``sink(step, epoch, trace)`` on every captured step.
TraceSink = Callable[[int, int, dict], None]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`train`; a checkpoint was saved at ``step`` (rerun to resume)."""

    def __init__(self, workdir: Path, step: int, epoch: int, chunk: int):
        super().__init__(f"interrupted at step {step}")
        self.workdir, self.step, self.epoch, self.chunk = workdir, step, epoch, chunk


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


@contextlib.contextmanager
def _sigint_flag():
    """While active (main thread only), the first Ctrl-C sets ``flag.hit`` instead of raising."""
    flag = type("Flag", (), {"hit": False})()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.hit:  # a second Ctrl-C: stop now, without a checkpoint
            raise KeyboardInterrupt
        flag.hit = True
        print(
            "\n[jaxdyn] Ctrl-C: saving a checkpoint at the next step "
            "(press Ctrl-C again to stop without saving)",
            file=sys.stderr,
        )

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


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
    label: str | None = None,
) -> TrainResult:
    """Train (or resume, or extend) a run and save a checkpoint per epoch.

    Args:
      cfg: the run configuration (data, epochs, seed, capture, checkpoints; and
        the model/optimizer unless given). ``cfg.seeds > 1`` trains a population
        as one state (:mod:`jaxdyn.train.population_loop`).
      workdir: run folder (created); an existing run there is resumed, or
        extended when ``cfg.epochs`` is larger than the epochs it has.
      data: the task (see ``jaxdyn.train.tasks``).
      progress: show progress bars on stderr (epoch lines are printed either way).
      max_steps: stop after this many optimizer steps in this call (a
        checkpoint is saved there) — for interrupting a run on purpose.
      sinks: callables receiving every captured trace.
      init_params: start from these parameters (e.g. a tagger sharing a
        language model's initialisation) instead of ``cfg.seed``'s.
      resume_step: resume from this checkpoint instead of the newest full one.
      model: the model to train (any Flax module following
        ``jaxdyn.models.taps``'s protocol, sized for ``data``); default
        ``build_model(cfg, data)``. Resuming checks the config, not the model:
        resume a run with the model it was started with.
      tx: any Optax transformation; default ``optimizer_for(cfg.optim)``. The
        plateau rule (``cfg.optim.plateau_factor < 1``) applies when its state
        exposes an injected learning rate (``optax.inject_hyperparams``); for one
        without, a message says the rule is skipped and ``lr`` is left empty.
      mesh: population runs only: the device mesh, ``"auto"`` (every visible
        device when there are several) or None.
      label: what is training, in front of every log line (default: the run
        folder's path below the enclosing ``jaxdyn run`` folder, e.g.
        ``bottom_up/L8-familiar``, or its name).

    Returns:
      A :class:`TrainResult`; ``finished`` tells whether all epochs are done.

    Raises:
      TrainingInterrupted: Ctrl-C; a checkpoint was saved at the step it names.
      ConfigError: ``workdir`` holds a run of another training config.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    label = _default_label(workdir) if label is None else label
    traj = Trajectory(workdir)
    writer = None
    try:
        # a config.json without checkpoints is a run that failed before starting: replace it
        check_same_config(workdir, cfg, bool(traj.all_steps()))
        if jax.process_index() == 0:
            data.vocab.save(workdir / "vocab.json")
            data.out_vocab.save(workdir / "out_vocab.json")
        bptt = cfg.data.bptt
        model = build_model(cfg, data) if model is None else model
        tx = optimizer_for(cfg.optim) if tx is None else tx
        spec = capture_spec(cfg)
        batch_size = data.train.inputs.shape[0]
        if cfg.seeds > 1:
            from jaxdyn.train.population_loop import Population

            how = Population(cfg, model, tx, spec, batch_size, init_params, mesh)
        else:
            how = Single(cfg, model, tx, spec, batch_size, init_params)
        state = how.state
        _check_output_size(model, how.first, batch_size, len(data.out_vocab))
        plateau_on = cfg.optim.plateau_factor < 1.0 and has_learning_rate(state.opt_state)
        if cfg.optim.plateau_factor < 1.0 and not plateau_on:
            print(
                f"plateau schedule (optim.plateau_factor={cfg.optim.plateau_factor:g}) not "
                "applied: the optimizer exposes no injected learning rate (wrap it in "
                "optax.inject_hyperparams to schedule it)",
                file=sys.stderr,
            )
        n_chunks = data.train.num_chunks(bptt)
        start = resume_step if resume_step is not None else traj.latest_full_step()
        writer = Writer(
            workdir,
            tensorboard=cfg.tensorboard,
            purge_step=start,
            enabled=jax.process_index() == 0,  # multi-process runs: the first process writes
        )
        if start is not None:
            state, meta = traj.restore(start, state)
            epoch, chunk = int(meta["epoch"]), int(meta["chunk"])
            plateau, losses = how.restore(meta)
            history = list(meta["history"])
            # per-step losses of the interrupted epoch, so its train loss (and the
            # log cadence) match an uninterrupted run exactly
            writer.truncate(start)
            writer.epochs_csv(history)
            if epoch >= cfg.epochs:
                more = (
                    f" (more than epochs={cfg.epochs}: the analyses see every epoch it has)"
                    if epoch > cfg.epochs
                    else ""
                )
                print(
                    f"[{label}] already trained to epoch {epoch}{how.describe()}{more}: "
                    f"{workdir} (step {start}); nothing to train",
                    file=sys.stderr,
                )
            else:
                what = "extending" if chunk == 0 and meta.get("kind") == "epoch" else "resuming"
                print(
                    f"[{label}] {what} {workdir}{how.describe()} from step {start} (epoch "
                    f"{epoch}, chunk {chunk}) to epoch {cfg.epochs}",
                    file=sys.stderr,
                )
        else:
            epoch, chunk, plateau, losses = 0, 0, how.init_plateau(), []
            writer.truncate(0)
            val = how.evaluate(state.params, data.valid, bptt)
            history = how.first_rows(val, how.lrs(state.opt_state))
            writer.epochs_csv(history)
            writer.tensorboard_epochs(history)
            traj.save(state, how.meta(cfg, data, 0, 0, plateau, history, "init", losses))

        def save(kind):
            meta = how.meta(cfg, data, epoch, chunk, plateau, history, kind, losses)
            if kind == "params":  # parameters only (checkpoint.kind=params)
                traj.save_params(state.params, host_step, meta)
                return
            traj.save(state, meta)
            if kind == "steps" and cfg.checkpoint.keep_full:  # retention: older ones lose opt state
                ck, legacy = cfg.checkpoint, cfg.checkpoint_every_steps
                traj.demote_all(demote_candidates(host_step, ck, legacy), state.params)

        def stop(kind):
            save(kind)
            writer.flush()
            raise TrainingInterrupted(workdir, host_step, epoch, chunk)

        steps_here = 0
        host_step = how.host_step(state)  # mirrors state.step without a device sync per step
        with _sigint_flag() as interrupt:
            while epoch < cfg.epochs:
                if chunk == 0:
                    state = how.reset_carry(state)
                t0 = time.perf_counter()
                bar = tqdm(
                    total=n_chunks,
                    initial=chunk,
                    desc=f"[{label}] epoch {epoch + 1}/{cfg.epochs}{how.describe()}",
                    disable=not progress,
                    leave=False,
                    file=sys.stderr,
                    unit="batch",
                )
                while chunk < n_chunks:
                    step_no = host_step
                    batch = how.batch(data.train, chunk, epoch, bptt)
                    if spec is not None and spec.should_capture(step_no):
                        state, metrics, trace = how.step_capture(state, batch)
                        how.emit(trace, sinks, writer, step_no, epoch)
                    else:
                        state, metrics, _ = how.step_plain(state, batch)
                    losses.append(metrics["loss"])
                    chunk += 1
                    steps_here += 1
                    host_step += 1
                    bar.update(1)
                    if len(losses) % cfg.log_every == 0:
                        recent = how.mean(losses[-cfg.log_every :])
                        how.check_finite(recent, step_no)
                        shown = how.postfix(recent)
                        bar.set_postfix(loss=f"{shown:.3f}", ppl=f"{ppl(shown):.1f}")
                        for row in how.step_rows(step_no + 1, epoch, recent):
                            writer.jsonl("steps.jsonl", row)
                    kind = scheduled_kind(host_step, cfg.checkpoint, cfg.checkpoint_every_steps)
                    if kind and chunk < n_chunks:  # at an epoch's end the epoch checkpoint follows
                        save(kind)
                    if chunk < n_chunks and interrupt.hit:
                        bar.close()
                        stop("interrupted")
                    if max_steps is not None and steps_here >= max_steps and chunk < n_chunks:
                        save("interrupted")
                        bar.close()
                        return TrainResult(state, history, workdir, False, model, how.seeds)
                bar.close()
                train_loss = how.mean(losses) if losses else how.empty_loss()
                if losses:
                    how.check_finite(train_loss, host_step - 1)
                val = how.evaluate(state.params, data.valid, bptt)
                lr = how.lrs(state.opt_state)
                state, plateau = how.plateau(state, plateau, val, lr, plateau_on)
                epoch, chunk, losses = epoch + 1, 0, []
                rows = how.epoch_rows(
                    epoch, host_step, train_loss, val, lr, time.perf_counter() - t0
                )
                history.extend(rows)
                writer.epochs_csv(history)
                writer.tensorboard_epochs(rows)
                print(f"[{label}] {how.epoch_line(rows, train_loss)}", file=sys.stderr)
                save("epoch")
                if interrupt.hit and epoch < cfg.epochs:
                    writer.flush()
                    raise TrainingInterrupted(workdir, host_step, epoch, chunk)
                if max_steps is not None and steps_here >= max_steps:
                    return TrainResult(
                        state, history, workdir, epoch >= cfg.epochs, model, how.seeds
                    )
        return TrainResult(state, history, workdir, True, model, how.seeds)
    finally:
        if writer is not None:
            writer.close()
        traj.close()


def _default_label(workdir: Path) -> str:
    """The run folder's path below the nearest enclosing run (e.g. ``bottom_up/L8-familiar``
    inside a ``jaxdyn run`` folder), else its name."""
    here = workdir.resolve()
    for parent in list(here.parents)[:3]:
        if (parent / "config.json").exists():
            return "/".join(here.relative_to(parent).parts)
    return workdir.name
