"""Helpers shared by the studies: their models' training configs and checkpoint selection."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxdyn.config.sections import CaptureConfig, DataConfig, ModelConfig, OptimConfig
from jaxdyn.report.markdown import SKIPPED_FILE  # listing what analyses skipped


def study_run_config(
    run,
    *,
    model: ModelConfig,
    data: DataConfig,
    optim: OptimConfig,
    epochs: int | None,
    seed: int | None,
    log_every: int = 50,
):
    """The training config of a study's own model: the study's sections, the run's
    epochs and seed where the study leaves them ``None``; no trace capture."""
    from jaxdyn.config import RunConfig

    return RunConfig(
        model=model,
        data=data,
        optim=optim,
        capture=CaptureConfig(enabled=False),
        epochs=run.epochs if epochs is None else epochs,
        seed=run.seed if seed is None else seed,
        log_every=log_every,
    )


def check_checkpoints(spec: str, key: str) -> None:
    """Validate a checkpoint selection: ``all``, ``last`` or comma-separated epochs."""
    if spec in ("all", "last"):
        return
    try:
        epochs = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        epochs = []
    if not epochs or any(e < 0 for e in epochs):
        raise ValueError(
            f"{key} must be 'all', 'last' or comma-separated epochs such as '0,5', got {spec!r}"
        )


def select_epochs(spec: str, available: Sequence[int], key: str = "checkpoints") -> list[int]:
    """The epochs of ``available`` that a selection names (sorted).

    Raises:
      ValueError: a named epoch has no checkpoint (listing the available ones).
    """
    check_checkpoints(spec, key)
    avail = sorted(set(int(e) for e in available))
    if not avail:
        raise ValueError("the run has no checkpoints")
    if spec == "all":
        return avail
    if spec == "last":
        return [avail[-1]]
    want = sorted({int(x) for x in spec.split(",") if x.strip()})
    missing = [e for e in want if e not in avail]
    if missing:
        raise ValueError(f"{key}: no checkpoint for epochs {missing}; available: {avail}")
    return want


def checkpoint_epochs(workdir) -> dict[int, int]:
    """``{epoch: step}`` of a run's intact ``init``/``epoch`` checkpoints (metadata only)."""
    from jaxdyn.checkpoint import Trajectory

    out = {}
    with Trajectory(workdir, read_only=True) as traj:
        for step in traj.valid_steps():
            meta = traj.restore_meta(step)
            if meta.get("kind") in ("init", "epoch"):
                out[int(meta["epoch"])] = step
    return out


def skipped_checkpoints(workdir) -> list[dict]:
    """Checkpoints of a run that analyses cannot read: ``[{"step", "kind", "epoch", "problem"}]``.

    ``kind``/``epoch`` are None when the checkpoint's metadata is unreadable too.
    """
    from jaxdyn.checkpoint import Trajectory

    out = []
    with Trajectory(workdir, read_only=True) as traj:
        for step in traj.all_steps():
            problem = traj.check(step)
            if problem is None:
                continue
            try:
                meta = traj._read_meta(step)
            except Exception:  # the metadata file itself may be what is corrupt
                meta = {}
            if meta.get("kind", "epoch") not in ("init", "epoch"):
                continue  # analyses read init/epoch checkpoints only
            epoch = meta.get("epoch")
            out.append({"step": step, "kind": meta.get("kind"), "epoch": epoch, "problem": problem})
    return out


def record_skipped(workdir, key: str) -> list[dict]:
    """Warn (stderr) about every checkpoint an analysis skips, and record them.

    The record is ``workdir/skipped_checkpoints.json``: ``{key: [entries of
    skipped_checkpoints]}``, the entry for ``key`` rewritten on every call (an
    empty list when nothing is skipped), so a report can list what each analysis
    left out.
    """
    skipped = skipped_checkpoints(workdir)
    for s in skipped:
        what = f"epoch {s['epoch']}" if s["epoch"] is not None else f"step {s['step']}"
        print(
            f"warning: {key}: skipping the checkpoint of {what} (step {s['step']}) in "
            f"{workdir}: {s['problem']}",
            file=sys.stderr,
        )
    path = Path(workdir) / SKIPPED_FILE
    try:
        rec = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        rec = {}
    rec[key] = skipped
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    tmp.replace(path)
    return skipped


def iter_selected(workdir, spec: str, key: str = "checkpoints", *, member: int | None = None):
    """The checkpoints (``jaxdyn.train.trajectory.Checkpoint``) a selection names, in order
    (of population member ``member``; None: member 0 or the single model).

    Corrupt or incomplete checkpoints are skipped with a warning on stderr and
    listed in ``workdir/skipped_checkpoints.json`` under ``key`` (:func:`record_skipped`).
    """
    from jaxdyn.train.trajectory import iter_checkpoints

    check_checkpoints(spec, key)
    record_skipped(workdir, key)
    if spec == "all":
        yield from iter_checkpoints(workdir, member=member)
        return
    by_epoch = checkpoint_epochs(workdir)
    epochs = select_epochs(spec, list(by_epoch), key)
    yield from iter_checkpoints(workdir, steps=[by_epoch[e] for e in epochs], member=member)


def model_text(m) -> str:
    """The model family of a ``ModelConfig`` for report text (``LSTM`` or
    ``Transformer (4 heads, d_ff 512, learned positions)``)."""
    if m.kind == "transformer":
        d_ff = 4 * m.hidden if m.d_ff is None else m.d_ff
        return f"Transformer ({m.heads} heads, d_ff {d_ff}, {m.positions} positions)"
    return "LSTM"
