"""Figures of the similarity study (standard of :mod:`jaxdyn.report.plots`).

Series are told apart by colour (task) and marker (initialisation: circle =
shared with the language model, square = own seed); the legend names both. With
several seeds every curve is the mean over seeds with a shaded band, the 95%
t-interval across seeds (:data:`jaxdyn.report.plots.SEED_BAND`, the interval the
verdicts use), named by a legend key and the figure title.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from jaxdyn.report.plots import (
    MARKERS,
    epoch_axis,
    figure_legend,
    save_with_legend_space,
    seed_label,
    seed_series,
    style,
)
from jaxdyn.studies.similarity.findings import _layers, layer_key

_INIT = {"shared": "shared init", "own": "own init"}
_MARK = {"shared": "o", "own": "s"}


def _name(task: str) -> str:
    return "language model" if task == "lm" else f"{task} tagger"


def _label(k, comparison) -> str:
    task, init, other = k[2], k[3], k[4]
    if comparison == "tagger-vs-tagger":
        return f"{task} vs {other} taggers ({_INIT.get(init, init)})"
    if task == "lm" or init not in _INIT:
        return _name(task)
    return f"{_name(task)}, {_INIT[init]}"


def _band_title(n_seeds: int) -> str:
    return f" ({seed_label(n_seeds)})" if n_seeds > 1 else ""


def _draw(ax, series: list[dict], label: str, st: dict) -> int:
    """One curve: the mean over the seeds' ``{epoch: value}`` series (at the epochs all
    have) with its 95% t-interval band clipped to [0, 1]
    (:func:`jaxdyn.report.plots.seed_series`, with this study's colours and markers).
    Returns the curve's last epoch."""
    epochs = sorted(set.intersection(*(set(s) for s in series)))
    curves = [[s[e] for e in epochs] for s in series]
    seed_series(ax, epochs, curves, i=0, label=label, clip=(0.0, 1.0), st=st)
    return int(max(epochs, default=0))


def plot_series(path, idxs, corpus, comparison, metrics, title):
    """One panel per (metric, layer); one series per (task, initialisation).

    ``idxs``: one :func:`~jaxdyn.studies.similarity.findings.index` per seed (a single
    index is one seed); curves are means over the seeds with a 95% t-interval band.
    """
    idxs = [idxs] if isinstance(idxs, dict) else list(idxs)
    keys = sorted({k for idx in idxs for k in idx if k[0] == corpus and k[1] == comparison})
    layers = _layers({k: 0 for k in keys})
    tasks = sorted({k[2] for k in keys if k[2] != "lm"})
    fig, axes = plt.subplots(
        len(metrics), len(layers), figsize=(3.4 * len(layers), 2.8 * len(metrics) + 0.6),
        squeeze=False,
    )  # fmt: skip
    last = 0
    for i, metric in enumerate(metrics):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            for k in keys:
                if k[5] != layer or k[6] != metric:
                    continue
                st = style(tasks.index(k[2]) if k[2] in tasks else len(tasks))
                st["marker"] = _MARK.get(k[3], MARKERS[2])
                if k[2] == "lm":
                    st["color"] = "k"
                series = [idx[k] for idx in idxs if k in idx]
                last = max(last, _draw(ax, series, _label(k, comparison), st))
            epoch_axis(ax)
            ax.set_title(f"{metric.upper()}, {layer}", fontsize=9)
            ax.set_ylabel(metric.upper(), fontsize=8)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
    figure_legend(fig, axes, ncol=3, fontsize=7)
    fig.suptitle(f"{title}, epochs 0-{last}{_band_title(len(idxs))}", fontsize=10)
    n = len({lb for a in axes.ravel() for lb in a.get_legend_handles_labels()[1]})
    return save_with_legend_space(fig, path, -(-n // 3))


def plot_probes(path, probes, corpus):
    """Probe accuracy per epoch, one panel per task, one series per layer (mean over the
    rows' ``member`` s with a 95% t-interval band when there are several)."""
    rows = [r for r in probes if r["corpus"] == corpus]
    tasks = sorted({r["task"] for r in rows})
    layers = sorted({r["layer"] for r in rows}, key=layer_key)
    members = sorted({r.get("member", 0) for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False)
    last = 0
    for ax, task in zip(axes[0], tasks):
        for j, layer in enumerate(layers):
            series = [
                {
                    int(r["epoch"]): float(r["test_acc"])
                    for r in rows
                    if r["task"] == task and r["layer"] == layer and r.get("member", 0) == m
                }
                for m in members
            ]
            last = max(last, _draw(ax, [s for s in series if s], layer, style(j)))
        maj = next(r["majority"] for r in rows if r["task"] == task)
        ax.axhline(maj, color="gray", ls=":", label="majority-class baseline")
        epoch_axis(ax)
        ax.set_title(f"probe: {task}", fontsize=9)
        ax.set_ylabel("held-out accuracy", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{corpus}: MLP probes on the language model's frozen activations, epochs 0-{last}"
        + _band_title(len(members)),
        fontsize=10,
    )
    return save_with_legend_space(fig, path, 0)
