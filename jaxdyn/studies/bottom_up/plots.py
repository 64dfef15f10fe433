"""Figures of the synthetic bottom-up study (standard of :mod:`jaxdyn.report.plots`).

Display names keep the two meanings of "familiar" apart: a *condition* trains with
conduits that are **exposed** outside brackets (``L8-familiar``) or **bracket-only**
(``L8-unfamiliar``); an *evaluation set* holds **bank** conduits (seen in training,
``familiar``) or **fresh** ones (never seen, ``fresh``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report.plots import (
    epoch_axis,
    figure_legend,
    legend,
    save_with_legend_space,
    seed_label,
    seed_series,
    share_y,
)
from jaxdyn.studies.bottom_up.config import EVAL_SETS
from jaxdyn.studies.bottom_up.findings import curve

#: Evaluation sets as the report names them.
SET_NAME = {"familiar": "bank-conduit set", "fresh": "fresh-conduit set"}
#: Measures as the report names them.
MEASURE_NAME = {
    "full_logp": "full model",
    "cd_open": "CD: open symbol only",
    "cd_conduit": "CD: conduit only",
    "cd_both": "CD: open symbol + conduit",
    "di_hidden": "DI(open, conduit), hidden",
    "di_logits": "DI(open, conduit), logits",
}


def condition_name(name: str, results) -> str:
    """``L8-familiar`` -> ``L8, exposed conduits``; ``L8-unfamiliar`` -> ``L8, bracket-only conduits``."""
    r = results[name]
    kind = "exposed" if r["familiar_repeats"] else "bracket-only"
    return f"L{r['rule_length']}, {kind} conduits"


def _per_seed(summaries) -> list:
    """``summaries``: one seed's :func:`summarise` rows, or a list of them (one per seed)."""
    return [summaries] if summaries and isinstance(summaries[0], dict) else list(summaries)


def _curves(summaries, name, s, key):
    """Epochs and the ``(seeds, epochs)`` curves of ``key`` for condition ``name``, set ``s``."""
    per = [curve(sm, name, s, key) for sm in summaries]
    for ep, _ in per[1:]:
        if not np.array_equal(ep, per[0][0]):
            raise ValueError(f"bottom-up plots: seeds of {name!r} have different epochs")
    return per[0][0], np.stack([v for _, v in per])


def plot_accuracy(path, results, summaries, config, *, last_epoch: int):
    """Accuracy per epoch, one panel per rule length; every (condition, set) its own series.

    ``summaries``: one :func:`summarise` list per seed (or one list: a single model); with
    several seeds each series is their mean with a 95% t-interval band.
    """
    summaries = _per_seed(summaries)
    n = len(config.rule_lengths)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.2), squeeze=False)
    k = 0
    for ax, L in zip(axes[0], config.rule_lengths):
        for name in (n_ for n_, r in results.items() if r["rule_length"] == L):
            for s in EVAL_SETS:
                ep, acc = _curves(summaries, name, s, "correct")
                label = f"{condition_name(name, results)}: {SET_NAME[s]}"
                seed_series(ax, ep, acc, i=k, label=label, clip=(0, 1))
                k += 1
        epoch_axis(ax)
        ax.set_ylabel("accuracy: p(')') > 1/2")
        ax.set_title(f"rule length {L}: accuracy, epochs 0-{last_epoch}", fontsize=9)
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7)
    share_y(axes)
    fig.suptitle(
        f"Closing-bracket accuracy over training ({seed_label(len(summaries))})", fontsize=10
    )
    return save_with_legend_space(fig, path, 0)


def plot_measures(path, results, summaries, keys, ylabel, what, *, last_epoch: int):
    """One panel per condition, one series per (measure, set), shared y-scale, one legend.

    ``summaries`` as in :func:`plot_accuracy` (several seeds: mean and 95% t-interval band).
    """
    summaries = _per_seed(summaries)
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        k = 0
        for key in keys:
            for s in EVAL_SETS:
                ep, v = _curves(summaries, name, s, key)
                label = f"{MEASURE_NAME.get(key, key)}, {SET_NAME[s]}"
                seed_series(ax, ep, v, i=k, label=label)
                k += 1
        ax.set_title(f"{condition_name(name, results)}", fontsize=9)
        epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    share_y(axes)  # panels are compared: one scale
    figure_legend(fig, axes, ncol=2)
    fig.suptitle(f"{what}, epochs 0-{last_epoch} (same y-scale in every panel)", fontsize=10)
    rows = -(-(len(keys) * len(EVAL_SETS) + (len(summaries) > 1)) // 2)
    return save_with_legend_space(fig, path, rows)
