"""Figures of the similarity study."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from jaxdyn.report import save
from jaxdyn.studies.similarity.findings import _layers

_STYLE = {"shared": "-", "own": "--", "-": "-"}


def _color(tasks, task):
    return "k" if task == "lm" else f"C{sorted(t for t in tasks if t != 'lm').index(task) % 10}"


def plot_series(path, idx, corpus, comparison, metrics, title):
    keys = [k for k in idx if k[0] == corpus and k[1] == comparison]
    layers = _layers({k: 0 for k in keys})
    tasks = sorted({k[2] for k in keys})
    fig, axes = plt.subplots(
        len(metrics), len(layers), figsize=(3.4 * len(layers), 2.8 * len(metrics)), squeeze=False
    )
    for i, metric in enumerate(metrics):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            for k in sorted(keys):
                if k[5] != layer or k[6] != metric:
                    continue
                s = idx[k]
                label = (
                    f"{k[2]} ({k[3]})"
                    if comparison != "tagger-vs-tagger"
                    else f"{k[2]} vs {k[4]} ({k[3]})"
                )
                ax.plot(
                    sorted(s),
                    [s[e] for e in sorted(s)],
                    _STYLE.get(k[3], "-"),
                    marker="o",
                    ms=3,
                    color=_color(tasks, k[2]),
                    label=label,
                )
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{layer}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.set_ylabel(metric, fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=6, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_probes(path, probes, corpus):
    rows = [r for r in probes if r["corpus"] == corpus]
    tasks = sorted({r["task"] for r in rows})
    layers = sorted(
        {r["layer"] for r in rows}, key=lambda n: -1 if n == "embedding" else int(n.split("_")[-1])
    )
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for j, layer in enumerate(layers):
            rr = sorted(
                (r for r in rows if r["task"] == task and r["layer"] == layer),
                key=lambda r: r["epoch"],
            )
            ax.plot(
                [r["epoch"] for r in rr],
                [r["test_acc"] for r in rr],
                marker="o",
                ms=3,
                color=f"C{j}",
                label=layer,
            )
        maj = next(r["majority"] for r in rows if r["task"] == task)
        ax.axhline(maj, color="gray", ls=":", label="majority")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"probe: {task}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("held-out accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{corpus}: MLP probes on the language model's frozen activations", fontsize=10)
    return save(fig, path)
