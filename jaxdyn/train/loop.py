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
same data position, carry, RNG, learning rate), and refuses a different config.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxdyn.checkpoint import CheckpointError, Trajectory, to_jsonable
from jaxdyn.config import ModelConfig, OptimConfig, RunConfig
from jaxdyn.models.lstm import LSTMSequenceModel, zero_carry
from jaxdyn.trace.records import batch_means
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.optim import (
    PlateauState,
    get_learning_rate,
    make_optimizer,
    plateau_update,
    set_learning_rate,
)
from jaxdyn.train.state import TrainState, init_train_state, zero_like_carry
from jaxdyn.train.step import make_eval_step, make_train_step
from jaxdyn.train.tasks import Stream, TaskData

#: A trace sink: called as ``sink(step, epoch, trace)`` on every captured step.
TraceSink = Callable[[int, int, dict], None]


def model_for(m: ModelConfig, vocab_size: int, num_outputs: int) -> LSTMSequenceModel:
    """The LSTM model a model config describes, for given input/output sizes."""
    return LSTMSequenceModel(
        vocab_size=vocab_size,
        num_outputs=num_outputs,
        emb_dim=m.emb_dim,
        hidden=m.hidden,
        num_layers=m.num_layers,
        dropout=m.dropout,
        tie_weights=m.tie_weights,
        init_range=m.init_range,
    )


def build_model(cfg: RunConfig, data: TaskData) -> LSTMSequenceModel:
    """The model a config and task describe."""
    return model_for(cfg.model, len(data.vocab), len(data.out_vocab))


def capture_spec(cfg: RunConfig) -> CaptureSpec | None:
    """The training-time capture spec of a config (None when disabled)."""
    c = cfg.capture
    if not c.enabled:
        return None
    return CaptureSpec(every=c.every, reductions=c.reductions, param_grads=c.param_grads)


@functools.lru_cache(maxsize=16)
def compiled_steps(model: LSTMSequenceModel, optim: OptimConfig, spec: CaptureSpec | None):
    """``(tx, step, capture_step, eval_step)`` for a model/optimizer/spec, memoised.

    All arguments are frozen and hashable, so runs of the same shapes in one
    process (taggers of a study, resumed runs, tests) reuse the jitted
    functions and XLA's compiled programs instead of recompiling.
    """
    tx = make_optimizer(optim.name, optim.lr, optim.clip, optim.weight_decay)
    capture = make_train_step(model, tx, spec) if spec is not None else None
    return tx, make_train_step(model, tx, None), capture, make_eval_step(model)


def evaluate(eval_step, params, stream: Stream, bptt: int) -> float:
    """Mean per-token cross-entropy of ``params`` on a stream (zero initial state)."""
    carry = zero_carry(params, stream.inputs.shape[0])
    total = jnp.zeros(())
    count = jnp.zeros(())
    for k in range(stream.num_chunks(bptt)):
        t, c, carry = eval_step(params, carry, stream.chunk(k, bptt))
        total, count = total + t, count + c
    total, count = jax.device_get((total, count))
    if count == 0:
        raise ValueError("evaluation stream has no tokens")
    return float(total / count)


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


class _Writer:
    def __init__(self, workdir: Path):
        self.dir = workdir / "metrics"
        self.dir.mkdir(parents=True, exist_ok=True)

    def jsonl(self, name: str, row: dict) -> None:
        with open(self.dir / name, "a") as fh:
            fh.write(json.dumps(to_jsonable(row)) + "\n")

    def epochs_csv(self, history: Sequence[dict]) -> None:
        if not history:
            return
        keys = list(history[0])
        tmp = self.dir / "epochs.csv.tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for row in history:
                w.writerow({k: row.get(k) for k in keys})
        tmp.replace(self.dir / "epochs.csv")
        tmp = self.dir / "epochs.jsonl.tmp"
        tmp.write_text("".join(json.dumps(to_jsonable(r)) + "\n" for r in history))
        tmp.replace(self.dir / "epochs.jsonl")

    def truncate(self, step: int) -> None:
        """Drop log rows written after the checkpoint at ``step`` (they are redone on resume).

        ``steps.jsonl`` rows carry the step count after the update (kept if
        ``<= step``), ``traces.jsonl`` rows the index of the captured step
        (kept if ``< step``).
        """
        for name, keep in (
            ("steps.jsonl", lambda s: s <= step),
            ("traces.jsonl", lambda s: s < step),
        ):
            path = self.dir / name
            if not path.exists():
                continue
            lines = [l for l in path.read_text().splitlines() if l.strip()]
            kept = [l for l in lines if keep(int(json.loads(l)["step"]))]
            if len(kept) != len(lines):
                tmp = self.dir / f"{name}.tmp"
                tmp.write_text("".join(l + "\n" for l in kept))
                tmp.replace(path)


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    state: TrainState
    history: list[dict]
    workdir: Path
    finished: bool
    model: LSTMSequenceModel


def _check_same_config(workdir: Path, cfg: RunConfig, has_checkpoints: bool) -> None:
    path = workdir / "config.json"
    if path.exists() and has_checkpoints:
        old = json.loads(path.read_text())
        new = json.loads(json.dumps(cfg.to_dict()))
        old["data"].pop("data_dir", None)  # where the corpus lives may change between sessions
        new["data"].pop("data_dir", None)
        if old != new:
            raise ValueError(
                f"{workdir} holds a run with a different config ({path}); "
                "use another --workdir or delete it to start over"
            )
    else:
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
) -> TrainResult:
    """Train (or resume training) and save a checkpoint per epoch.

    Args:
      cfg: the run configuration.
      workdir: run folder (created); an existing run there is resumed.
      data: the task (see ``jaxdyn.train.tasks``).
      progress: show a progress bar on stderr.
      max_steps: stop after this many optimizer steps in this call (a
        checkpoint is saved there) — for interrupting a run on purpose.
      sinks: callables receiving every captured trace.
      init_params: start from these parameters (e.g. a tagger sharing a
        language model's initialisation) instead of ``cfg.seed``'s.
      resume_step: resume from this checkpoint instead of the newest one.

    Returns:
      A :class:`TrainResult`; ``finished`` tells whether all epochs are done.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    traj = Trajectory(workdir)
    try:
        # a config.json without checkpoints is a run that failed before starting: replace it
        _check_same_config(workdir, cfg, bool(traj.all_steps()))
        data.vocab.save(workdir / "vocab.json")
        data.out_vocab.save(workdir / "out_vocab.json")
        bptt = cfg.data.bptt
        model = build_model(cfg, data)
        spec = capture_spec(cfg)
        tx, step_plain, step_capture, eval_step = compiled_steps(model, cfg.optim, spec)
        state = init_train_state(
            model, tx, cfg.seed, data.train.inputs.shape[0], params=init_params
        )
        writer = _Writer(workdir)
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
            val = evaluate(eval_step, state.params, data.valid, bptt)
            history = [_epoch_row(0, 0, float("nan"), val, get_learning_rate(state.opt_state), 0.0)]
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
                state = state._replace(carry=zero_like_carry(state.carry))
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
                    bar.set_postfix(loss=f"{recent:.3f}", ppl=f"{_ppl(recent):.1f}")
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
            val = evaluate(eval_step, state.params, data.valid, bptt)
            lr = get_learning_rate(state.opt_state)
            plateau, new_lr, _ = plateau_update(plateau, val, lr, cfg.optim.plateau_factor)
            if new_lr != lr:
                state = state._replace(opt_state=set_learning_rate(state.opt_state, new_lr))
            epoch, chunk, losses = epoch + 1, 0, []
            row = _epoch_row(epoch, host_step, train_loss, val, lr, time.perf_counter() - t0)
            history.append(row)
            writer.epochs_csv(history)
            if progress:
                print(
                    f"epoch {epoch:3d} | step {row['step']:6d} | train ppl {_ppl(train_loss):8.2f} | "
                    f"valid ppl {row['valid_ppl']:8.2f} | lr {lr:g} | {row['seconds']:.1f}s",
                    file=sys.stderr,
                )
            save("epoch")
            if max_steps is not None and steps_here >= max_steps:
                return TrainResult(state, history, workdir, epoch >= cfg.epochs, model)
        return TrainResult(state, history, workdir, True, model)
    finally:
        traj.close()


def _epoch_row(epoch, step, train_loss, val_loss, lr, seconds):
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": train_loss,
        "train_ppl": _ppl(train_loss) if math.isfinite(train_loss) else float("nan"),
        "valid_loss": val_loss,
        "valid_ppl": _ppl(val_loss),
        "lr": lr,
        "seconds": round(seconds, 3),
    }


def _meta(cfg, data, epoch, chunk, plateau, history, kind):
    return to_jsonable(
        {
            "kind": kind,
            "epoch": epoch,
            "chunk": chunk,
            "plateau_best": plateau.best if math.isfinite(plateau.best) else 1e30,
            "history": history,
            "config": cfg.to_dict(),
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


def history_array(history: Sequence[dict], key: str) -> np.ndarray:
    """One column of the epoch history as a float array."""
    return np.asarray([r[key] for r in history], dtype=np.float64)
