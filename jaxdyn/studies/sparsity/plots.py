"""Figures of the sparsity study (standard of :mod:`jaxdyn.report.plots`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report.plots import (
    epoch_axis,
    legend,
    save,
    seed_label,
    seed_series,
    style,
)
from jaxdyn.studies.sparsity.compute import DIRECTIONS, modules_of, series

DIR_NAME = {"act": "activation", "act_grad": "gradient"}


def plot_te_vs_frequency(path, traj, vocab, epoch, *, who: str, stat="te", min_count=3):
    """Per-type TE against log frequency at ``epoch`` (one member, named by ``who``)."""
    logf = np.log(np.maximum(np.asarray(vocab.counts, np.float64), 1.0))
    mods = modules_of(traj)
    fig, axes = plt.subplots(2, len(mods), figsize=(3.2 * len(mods), 6), squeeze=False)
    for j, m in enumerate(mods):
        for i, d in enumerate(DIRECTIONS):
            ax = axes[i, j]
            for k, kg in enumerate(("input", "target")):
                ids, mean, _ = series(traj, epoch, kg, m, d, stat, min_count)
                if len(ids) < 2:
                    continue
                x = logf[ids]
                edges = np.quantile(x, np.linspace(0, 1, 11))
                b = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 9)
                xs = [x[b == q].mean() for q in range(10) if (b == q).any()]
                ys = [mean[b == q].mean() for q in range(10) if (b == q).any()]
                st = style(k)
                ax.scatter(x, mean, s=2, alpha=0.15, color=st["color"])
                ax.plot(xs, ys, label=f"{kg}-keyed (decile means)", **st)
            ax.set_title(f"{m} {DIR_NAME[d]}, epoch {epoch}", fontsize=9)
            ax.set_xlabel("log training frequency", fontsize=8)
            ax.set_ylabel(f"{stat.upper()} of {DIR_NAME[d]} (L1/L2)", fontsize=8)
            ax.tick_params(labelsize=7)
            legend(ax, fontsize=7)
    fig.suptitle(
        f"Concentration vs frequency per word type, epoch {epoch}, {who} "
        "(lower = more concentrated)",
        fontsize=10,
    )
    return save(fig, path)


def plot_over_epochs(path, members_te, members_rho, epochs, mods, *, n_seeds: int):
    """Mean TE (relative to epoch 0) and Spearman rho per epoch, seed mean with a band.

    Args:
      members_te: ``{direction: {module: (S, E) mean TE}}``.
      members_rho: ``{module: (S, E) rho}`` (input-keyed activations).
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    who = seed_label(n_seeds)
    for d, ax in zip(DIRECTIONS, axes[:2]):
        for i, m in enumerate(mods):
            c = np.asarray(members_te[d][m], np.float64)
            seed_series(ax, epochs, c / c[:, :1], i=i, label=m)
        ax.set_title(f"mean TE of {DIR_NAME[d]}s, epochs {epochs[0]}-{epochs[-1]}", fontsize=9)
        ax.set_ylabel(f"TE / TE at epoch {epochs[0]}")
        epoch_axis(ax)
        legend(ax, fontsize=7)
        ax.grid(alpha=0.3)
    ax = axes[2]
    for i, m in enumerate(mods):
        seed_series(ax, epochs, members_rho[m], i=i, label=m, clip=(-1, 1))
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("Spearman(TE of activation, log freq), input-keyed", fontsize=9)
    ax.set_ylabel("Spearman rho")
    epoch_axis(ax)
    legend(ax, fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(f"Sparsity over training ({who})", fontsize=10)
    return save(fig, path)


def plot_function_content(path, labels, diffs, lo, hi, *, epoch: int, interval: str):
    """Function-minus-content TE per module and direction, with labelled error bars."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    diffs = np.asarray(diffs, np.float64)
    ok = np.isfinite(diffs) & np.isfinite(lo) & np.isfinite(hi)
    err = np.where(ok, [diffs - lo, hi - diffs], 0.0)
    colors = [style(0 if "gradient" not in lb else 1)["color"] for lb in labels]
    ax.bar(range(len(diffs)), np.where(np.isfinite(diffs), diffs, 0.0), color=colors)
    ax.errorbar(
        range(len(diffs)),
        np.where(np.isfinite(diffs), diffs, 0.0),
        yerr=err,
        fmt="none",
        ecolor="k",
        capsize=3,
        label=interval,
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("module and direction (input-keyed)")
    ax.set_ylabel("TE function - content\n(matched frequency)", fontsize=8)
    ax.set_title(f"Function vs content words at matched frequency, epoch {epoch}", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)
