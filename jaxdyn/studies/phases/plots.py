"""Figures of the training map: phases over the loss curve, transition graph, state means."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report import save


def _colour(k: int):
    return plt.get_cmap("tab10")(k % 10)


def phases_on_loss(
    path: str | Path,
    steps: Sequence[int],
    loss: np.ndarray,
    states: np.ndarray,
    seeds: Sequence[int],
) -> Path:
    """Per seed: held-out loss over steps, the background coloured by the Viterbi state,
    dashed lines at the change points (x axis symlog: dense early checkpoints)."""
    steps = np.asarray(steps)
    fig, axes = plt.subplots(len(seeds), 1, figsize=(8, 2.4 * len(seeds)), squeeze=False)
    edges = np.concatenate([[steps[0]], (steps[1:] + steps[:-1]) / 2, [steps[-1]]])
    for ax, seq, ys, seed in zip(axes[:, 0], states, loss, seeds, strict=True):
        for t, k in enumerate(seq):
            ax.axvspan(edges[t], edges[t + 1], color=_colour(int(k)), alpha=0.25, lw=0)
        for t in range(1, len(seq)):
            if seq[t] != seq[t - 1]:
                ax.axvline(steps[t], color="k", ls="--", lw=0.8)
        ax.plot(steps, ys, color="k", marker="o", ms=2)
        ax.set_xscale("symlog", linthresh=max(1, int(steps[1]) if len(steps) > 1 else 1))
        ax.set_xlabel("optimizer step (symlog)", fontsize=8)
        ax.set_ylabel("valid loss")
        ax.set_title(
            f"seed {seed}: held-out loss, steps {steps[0]}-{steps[-1]}, background = HMM state",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=_colour(k), alpha=0.4)
        for k in range(int(states.max()) + 1)
    ]
    axes[0, 0].legend(handles, [f"state {k}" for k in range(len(handles))], fontsize=7, ncol=6)
    fig.suptitle(
        f"Training phases of each of {len(seeds)} seed(s) (one HMM over all; dashed: change)",
        fontsize=10,
    )
    return save(fig, path)


def transition_graph(
    path: str | Path, transition_matrix: np.ndarray, counts: Mapping[tuple[int, int], int]
) -> Path:
    """States on a circle; an arrow i -> j for every observed transition, labelled with
    its count and the fitted probability."""
    k = transition_matrix.shape[0]
    angle = np.linspace(0, 2 * np.pi, k, endpoint=False) + np.pi / 2
    pos = np.stack([np.cos(angle), np.sin(angle)], 1) if k > 1 else np.zeros((1, 2))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    top = max(counts.values()) if counts else 1
    for (i, j), c in counts.items():
        ax.annotate(
            "",
            xy=pos[j],
            xytext=pos[i],
            arrowprops={
                "arrowstyle": "-|>",
                "lw": 0.8 + 3 * c / top,
                "connectionstyle": "arc3,rad=0.15",
                "shrinkA": 18,
                "shrinkB": 18,
            },
        )
        mid = (pos[i] + pos[j]) / 2 + 0.08 * np.array(
            [pos[j][1] - pos[i][1], pos[i][0] - pos[j][0]]
        )
        ax.text(*mid, f"{c}x, p={transition_matrix[i, j]:.2f}", fontsize=7, ha="center")
    for s in range(k):
        ax.add_patch(plt.Circle(pos[s], 0.14, color=_colour(s), alpha=0.6))
        ax.text(*pos[s], str(s), ha="center", va="center", fontsize=11)
        ax.text(
            pos[s][0],
            pos[s][1] - 0.22,
            f"stay {transition_matrix[s, s]:.2f}",
            fontsize=7,
            ha="center",
        )
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("transitions (observed count, fitted probability)", fontsize=9)
    return save(fig, path)


def state_means(
    path: str | Path, means: Mapping[int, np.ndarray], names: Sequence[str], top: int = 20
) -> Path:
    """Heatmap of the per-state mean of the standardised metrics that differ most between
    states (``top`` of them)."""
    ks = sorted(means)
    m = np.stack([means[k] for k in ks])
    order = np.argsort(-(m.max(0) - m.min(0)))[:top]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.5))
    im = ax.imshow(m[:, order].T, cmap="coolwarm", vmin=-2.5, vmax=2.5, aspect="auto")
    ax.set_xticks(range(len(ks)), [f"state {k}" for k in ks], fontsize=8)
    ax.set_yticks(range(len(order)), [names[i] for i in order], fontsize=6)
    ax.set_xlabel("HMM state")
    ax.set_ylabel(f"metric (the {len(order)} that differ most)", fontsize=8)
    ax.set_title("mean standardised metric per state, over every seed's checkpoints", fontsize=9)
    fig.colorbar(im, ax=ax, label="mean z-score")
    return save(fig, path)
