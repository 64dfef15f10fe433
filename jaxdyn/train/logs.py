"""Metric files of a run (``metrics/*.jsonl``, ``epochs.csv``, TensorBoard events) and the
epoch-row format.

TensorBoard event files (``workdir/tensorboard``, written with tensorboardX) carry
the same numbers as the JSONL files, so ``tensorboard --logdir RUN/tensorboard``
shows a run live: ``epoch/<column>`` (every numeric column of ``epochs.csv``),
``train/loss`` (``steps.jsonl``) and ``trace/<name>`` (every per-module trace
statistic of ``traces.jsonl``), all against the optimizer steps done (a trace
captured in step ``s``, counted from 0, is shown at ``s + 1``). A population's
member ``m`` writes to ``tensorboard/member_<m>`` (TensorBoard overlays the members
as runs). A resumed run purges the events after its checkpoint (``purge_step``).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxdyn.checkpoint import to_jsonable


def ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


def summary_writer_class():
    """tensorboardX's ``SummaryWriter``, imported without torch.

    tensorboardX imports torch whenever it is installed (3 s) only to accept torch
    tensors; jaxdyn logs Python floats, so the import is made with torch masked
    (unless torch is already loaded).
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` fail inside tensorboardX
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


#: Row keys that are coordinates, not values (not written as TensorBoard scalars).
_COORDS = ("step", "epoch", "member", "seed", "finite")


class Writer:
    """Appends and rewrites the metric files under ``workdir/metrics``.

    Args:
      workdir: the run folder.
      tensorboard: also write TensorBoard event files under ``workdir/tensorboard``.
      purge_step: the checkpoint step a run resumes from (events at later steps,
        from the interrupted invocation, are discarded by TensorBoard); None for a
        run starting afresh (earlier event files are removed).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        tensorboard: bool = False,
        purge_step: int | None = None,
        enabled: bool = True,
    ):
        self.dir = workdir / "metrics"
        #: False on the other processes of a multi-process run (the first one writes)
        self.enabled = enabled
        if not enabled:
            tensorboard = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tb_dir = workdir / "tensorboard" if tensorboard else None
        # TensorBoard drops events at steps >= purge_step; rows at the checkpoint's own
        # step (its epoch row, the loss logged there) belong to the restored run
        self._purge = None if purge_step is None else purge_step + 1
        self._tb: dict = {}
        if self.tb_dir is not None and purge_step is None and self.tb_dir.exists():
            shutil.rmtree(self.tb_dir)

    def _board(self, member):
        if member not in self._tb:
            logdir = self.tb_dir if member is None else self.tb_dir / f"member_{member}"
            cls = summary_writer_class()
            self._tb[member] = cls(str(logdir), purge_step=self._purge, flush_secs=10)
        return self._tb[member]

    def tensorboard_row(self, prefix: str, row: dict, step: int) -> None:
        """Every finite numeric value of ``row`` as scalar ``prefix/<key>`` at ``step``."""
        if self.tb_dir is None:
            return
        board = self._board(row.get("member"))
        for key, value in row.items():
            if key in _COORDS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                board.add_scalar(f"{prefix}/{key}", float(value), global_step=int(step))

    def tensorboard_epochs(self, rows: Sequence[dict]) -> None:
        """Epoch rows (``epoch_row``) as ``epoch/<column>`` scalars; flushed at once."""
        for row in rows:
            self.tensorboard_row("epoch", {**row, "epoch_number": row["epoch"]}, row["step"])
        self.flush()

    def flush(self) -> None:
        for board in self._tb.values():
            board.flush()

    def close(self) -> None:
        for board in self._tb.values():
            board.close()
        self._tb.clear()

    def jsonl(self, name: str, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.dir / name, "a") as fh:
            fh.write(json.dumps(to_jsonable(row)) + "\n")
        if name == "steps.jsonl":
            self.tensorboard_row("train", row, row["step"])
        elif name == "traces.jsonl":
            # against the optimizer steps done after the captured one (as train/loss)
            self.tensorboard_row("trace", row, row["step"] + 1)

    def epochs_csv(self, history: Sequence[dict]) -> None:
        if not history or not self.enabled:
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
        if not self.enabled:
            return
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


def epoch_row(epoch, step, train_loss, val_loss, lr, seconds):
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": train_loss,
        "train_ppl": ppl(train_loss) if math.isfinite(train_loss) else float("nan"),
        "valid_loss": val_loss,
        "valid_ppl": ppl(val_loss),
        "lr": lr,
        "seconds": round(seconds, 3),
    }


def history_array(history: Sequence[dict], key: str) -> np.ndarray:
    """One column of the epoch history as a float array."""
    return np.asarray([r[key] for r in history], dtype=np.float64)
