"""Matplotlib figures for reports (Agg backend; files only, no windows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def save(fig, path: str | Path) -> Path:
    """Save and close a figure; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def line_plot(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
) -> Path:
    """One line per series over a shared x axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def training_curves(path: str | Path, history: Sequence[Mapping[str, float]]) -> Path:
    """Loss and perplexity per epoch (epoch 0 is the initialisation)."""
    ep = np.array([r["epoch"] for r in history])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    tr = np.array([r["train_loss"] for r in history], dtype=float)
    va = np.array([r["valid_loss"] for r in history], dtype=float)
    a.plot(ep[1:], tr[1:], marker="o", label="train")
    a.plot(ep, va, marker="o", label="valid")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy (nats/token)")
    a.legend()
    a.grid(alpha=0.3)
    b.plot(ep[1:], np.exp(tr[1:]), marker="o", label="train")
    b.plot(ep, np.exp(va), marker="o", label="valid")
    b.set_yscale("log")
    b.set_xlabel("epoch")
    b.set_ylabel("perplexity")
    b.legend()
    b.grid(alpha=0.3)
    return save(fig, path)
