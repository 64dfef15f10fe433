"""Metric files of a run (``metrics/*.jsonl``, ``epochs.csv``) and the epoch-row format."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxdyn.checkpoint import to_jsonable


def ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


class Writer:
    """Appends and rewrites the metric files under ``workdir/metrics``."""

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
