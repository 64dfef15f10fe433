"""Matplotlib figures for reports, held to one standard (Agg backend; files only).

The standard every report figure follows (and :func:`check_figure` tests):

* every axis labelled; every panel titled (or the figure has a title) saying what
  is shown and when (which epoch);
* series told apart by colour **and** marker (:func:`style`), never by line style
  alone; a legend whenever a panel has more than one series;
* integer epoch ticks (:func:`epoch_axis`); shared y-limits where panels are
  compared (:func:`share_y`); log axes with labelled minor ticks (:func:`log_axis`);
* heatmap cell labels with enough significant digits to tell the cells apart
  (:func:`cell_format`);
* error bars and bands name what they are in the legend or the axis label
  (e.g. "95% bootstrap interval", "95% t-interval across seeds").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogFormatter, LogLocator, MaxNLocator

#: Markers cycled with the colours: series ``i`` gets colour ``C{i % 10}`` and ``MARKERS[i]``.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p")


def style(i: int) -> dict:
    """Colour and marker of series ``i`` (distinct pairs for i < 120)."""
    return {"color": f"C{i % 10}", "marker": MARKERS[(i + i // 10) % len(MARKERS)], "ms": 4}


def save(fig, path: str | Path) -> Path:
    """Save and close a figure; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def epoch_axis(ax, label: str = "epoch (0 = initialisation)") -> None:
    """Integer epoch ticks and the epoch label on the x axis."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def log_axis(ax, axis: str = "y") -> None:
    """Log scale with ticks at 1, 2, 5 x 10^k, all labelled (readable on short ranges)."""
    a = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    a.set_major_formatter(LogFormatter(base=10, labelOnlyBase=False))


def share_y(axes) -> None:
    """One y range for every panel of ``axes`` (the union of their data limits)."""
    axes = [a for a in np.ravel(axes) if a.has_data()]
    if not axes:
        return
    lo = min(a.get_ylim()[0] for a in axes)
    hi = max(a.get_ylim()[1] for a in axes)
    for a in axes:
        a.set_ylim(lo, hi)


def cell_format(values) -> str:
    """A format spec showing ``values`` with 2 significant digits of their spread.

    Cells running 0.002-0.010 get ``.4f`` (not ``.2f``, which prints 0.00/0.01).
    """
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return ".3g"
    spread = float(v.max() - v.min()) or float(np.abs(v).max()) or 1.0
    scale = max(float(np.abs(v).max()), spread)
    if scale >= 1e4 or scale < 1e-4:
        return ".2e"
    decimals = max(0, 1 - math.floor(math.log10(spread)))
    return f".{min(decimals, 6)}f"


def legend(ax, **kw) -> None:
    """A legend when the panel has more than one labelled artist."""
    _, labels = ax.get_legend_handles_labels()
    if len([lb for lb in labels if not lb.startswith("_")]) > 1:
        ax.legend(fontsize=kw.pop("fontsize", 8), **kw)


def figure_legend(fig, axes, *, ncol: int = 4, fontsize: int = 8) -> None:
    """One legend for the whole figure (below the panels), every distinct series once."""
    seen = {}
    for ax in np.ravel(axes):
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if not lb.startswith("_") and lb not in seen:
                seen[lb] = h
    if seen:
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="lower center",
            ncol=min(ncol, len(seen)),
            fontsize=fontsize,
            bbox_to_anchor=(0.5, 0.0),
        )


def save_with_legend_space(fig, path, rows: int) -> Path:
    """:func:`save` leaving ``rows`` legend rows of room below the panels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, min(0.06 * rows + 0.02, 0.4), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def band(ax, x, mean, lo=None, hi=None, *, i: int, label: str, clip=None) -> None:
    """A series (colour and marker ``style(i)``) with a shaded interval when given.

    The band has no legend entry of its own: say what it is in the title (e.g.
    "band: 95% t-interval across seeds"). ``clip``: ``(lo, hi)`` range of the statistic
    (a correlation's band stays within [-1, 1]).
    """
    st = style(i)
    ax.plot(x, mean, label=label, **st)
    if lo is not None and hi is not None and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        if clip is not None:
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        ax.fill_between(x, lo, hi, color=st["color"], alpha=0.15, lw=0)


def line_plot(
    path: str | Path,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
) -> Path:
    """One line per series over a shared x axis (colour and marker per series)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(x, ys, label=name, **style(i))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        log_axis(ax)
    ax.set_title(title)
    legend(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def _seed_mean(rows, key):
    """Per-epoch mean over members of ``key`` and its 95% t-interval (None with one member)."""
    from jaxdyn.studies.verdicts import t_interval

    epochs = sorted({r["epoch"] for r in rows})
    by = {e: [float(r[key]) for r in rows if r["epoch"] == e] for e in epochs}
    mean = np.array([np.mean(v) if np.all(np.isfinite(v)) else np.nan for v in by.values()])
    if min(len(v) for v in by.values()) < 2:
        return np.array(epochs), mean, None, None
    iv = [t_interval(v) if np.all(np.isfinite(v)) else None for v in by.values()]
    lo = np.array([np.nan if x is None else x.lo for x in iv])
    hi = np.array([np.nan if x is None else x.hi for x in iv])
    return np.array(epochs), mean, lo, hi


def training_curves(
    path: str | Path, history: Sequence[Mapping[str, float]], *, what: str = ""
) -> Path:
    """Loss and perplexity per epoch (epoch 0 is the initialisation; no train value there).

    ``history`` rows with a ``member`` key (a population) are averaged over members,
    with a band: the 95% t-interval across seeds.
    """
    members = {r.get("member", 0) for r in history}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    curves = {k: _seed_mean(history, k) for k in ("train_loss", "valid_loss")}
    names = {
        "train_loss": "train (running mean over the epoch)",
        "valid_loss": "validation (end of epoch)",
    }
    for ax, f, ylabel in (
        (a, lambda v: v, "cross-entropy (nats/token)"),
        (b, np.exp, "perplexity"),
    ):
        for i, (k, (ep, m, lo, hi)) in enumerate(curves.items()):
            ok = np.isfinite(m)
            ax.plot(ep[ok], f(m[ok]), label=names[k], **style(i))
            if lo is not None:
                okb = ok & np.isfinite(lo) & np.isfinite(hi)
                ax.fill_between(
                    ep[okb], f(lo[okb]), f(hi[okb]), color=style(i)["color"], alpha=0.15, lw=0
                )
        epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        legend(ax)
    log_axis(b)
    last = max((int(r["epoch"]) for r in history), default=0)
    who = f", mean of {len(members)} seeds (band: 95% t-interval)" if len(members) > 1 else ""
    a.set_title(f"Loss, epochs 0-{last}{who}{what}", fontsize=10)
    b.set_title(f"Perplexity (log scale), epochs 0-{last}{who}{what}", fontsize=10)
    return save(fig, path)


def check_figure(fig) -> list[str]:
    """What a figure lacks under the standard (empty when it meets it).

    Checks every panel with data: x and y labels, a title (the panel's or the
    figure's), a legend when it has more than one labelled line, legend entries
    distinct in (colour, marker) and not relying on line style, integer ticks on
    axes labelled "epoch".
    """
    problems = []
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    for k, ax in enumerate(fig.axes):
        if not ax.has_data() or ax.get_label() == "<colorbar>":
            continue
        name = ax.get_title() or f"panel {k}"
        if not ax.get_xlabel():
            problems.append(f"{name}: no x label")
        if not ax.get_ylabel():
            problems.append(f"{name}: no y label")
        if not (ax.get_title() or suptitle):
            problems.append(f"panel {k}: no title")
        lines = [
            ln
            for ln in ax.get_lines()
            if not ln.get_label().startswith("_") and ln.get_transform() == ax.transData
        ]  # reference lines (axhline) are exempt from the marker rule
        if len(lines) > 1 and ax.get_legend() is None and not fig.legends:
            problems.append(f"{name}: {len(lines)} series, no legend")
        seen = {}
        for ln in lines:
            key = (matplotlib.colors.to_hex(ln.get_color()), ln.get_marker())
            if key[1] in (None, "None", "", " "):
                problems.append(f"{name}: series {ln.get_label()!r} has no marker")
            if key in seen:
                problems.append(
                    f"{name}: {ln.get_label()!r} and {seen[key]!r} share colour and marker"
                )
            seen[key] = ln.get_label()
        if "epoch" in ax.get_xlabel():
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            if any(abs(t - round(t)) > 1e-9 for t in ticks):
                problems.append(f"{name}: fractional epoch ticks {ticks}")
    return problems
