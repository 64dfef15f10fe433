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
  (e.g. "95% bootstrap interval", "95% t-interval across seeds");
* a trajectory of a population is drawn by :func:`seed_series`: the mean over seeds
  with its 95% Student-t band (every n >= 2; the verdicts' interval) and a legend key
  naming it; one seed: the plain curve, no band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection
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


def _band_key_last(handles, labels):
    """Legend entries with the seed-band key (:func:`seed_series`) moved to the end."""
    pairs = sorted(zip(handles, labels), key=lambda hl: hl[0].get_gid() == BAND_KEY)
    return [h for h, _ in pairs], [lb for _, lb in pairs]


def legend(ax, **kw) -> None:
    """A legend when the panel has more than one labelled artist (the band key last)."""
    handles, labels = ax.get_legend_handles_labels()
    if len([lb for lb in labels if not lb.startswith("_")]) > 1:
        ax.legend(*_band_key_last(handles, labels), fontsize=kw.pop("fontsize", 8), **kw)


def figure_legend(fig, axes, *, ncol: int = 4, fontsize: int = 8) -> None:
    """One legend for the whole figure (below the panels), every distinct series once."""
    seen = {}
    for ax in np.ravel(axes):
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if not lb.startswith("_") and lb not in seen:
                seen[lb] = h
    if seen:
        handles, labels = _band_key_last(list(seen.values()), list(seen))
        fig.legend(
            handles,
            labels,
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


#: What the shaded band around a mean over seeds is, in every population trajectory plot
#: (one rule for every n >= 2: the interval the verdicts use, not the min-max range).
SEED_BAND = "95% t-interval across seeds"
#: ``gid`` of the legend key naming the band (an empty artist: no data, no y-range).
BAND_KEY = "seed-band-key"


def seed_band(curves):
    """Mean over seeds of ``curves`` ``(S, X)`` per x, and its 95% Student-t interval.

    Returns ``(mean, lo, hi)``, each ``(X,)``; ``lo``/``hi`` are None when ``S == 1``
    (no interval: no band). An x where any seed is non-finite (a failed member) gets
    NaN in all three (the point is not drawn), never a mean of the remaining seeds.
    """
    from jaxdyn.studies.verdicts import t_interval

    c = np.asarray(curves, np.float64)
    if c.ndim != 2 or c.shape[0] < 1:
        raise ValueError(f"seed_band: curves must have shape (seeds, x), got {c.shape}")
    ok = np.all(np.isfinite(c), axis=0)
    mean = np.where(ok, np.mean(np.where(ok, c, 0.0), axis=0), np.nan)
    if c.shape[0] < 2:
        return mean, None, None
    iv = [t_interval(c[:, k]) if ok[k] else None for k in range(c.shape[1])]
    lo = np.array([np.nan if v is None else v.lo for v in iv])
    hi = np.array([np.nan if v is None else v.hi for v in iv])
    return mean, lo, hi


def seed_label(n: int) -> str:
    """Title phrase for ``n`` seeds: ``"mean of 3 seeds, band: 95% t-interval across seeds"``."""
    return f"mean of {n} seeds, band: {SEED_BAND}" if n > 1 else "1 seed"


def seed_series(ax, x, curves, *, i: int, label: str, clip=None, f=None, st=None) -> None:
    """Series ``i`` of a population: the mean over seeds of ``curves`` ``(S, X)`` (or one
    curve ``(X,)``) with its :func:`seed_band` band when ``S >= 2``, and one legend key per
    panel naming the band ("shaded: 95% t-interval across seeds (3 seeds)").

    ``f`` maps the statistic before drawing (e.g. ``np.exp`` for perplexity from loss:
    applied to the mean and the interval ends); ``clip``: ``(lo, hi)`` range of the
    statistic the band is clipped to (a correlation's stays in [-1, 1]); ``st``: the
    line's style (default ``style(i)``).
    """
    c = np.asarray(curves, np.float64)
    mean, lo, hi = seed_band(c[None] if c.ndim == 1 else c)
    x = np.asarray(x)
    if f is not None:
        mean = f(mean)
        lo, hi = (None, None) if lo is None else (f(lo), f(hi))
    ok = np.isfinite(mean)
    st = style(i) if st is None else st
    ax.plot(x[ok], mean[ok], label=label, **st)
    if lo is None:
        return
    if clip is not None:
        lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
    okb = ok & np.isfinite(lo) & np.isfinite(hi)
    ax.fill_between(x[okb], lo[okb], hi[okb], color=st["color"], alpha=0.15, lw=0)
    if not any(a.get_gid() == BAND_KEY for a in ax.collections):
        ax.fill_between([], [], [], color="0.5", alpha=0.3, lw=0, gid=BAND_KEY,
                        label=f"shaded: {SEED_BAND} ({c.shape[0]} seeds)")  # fmt: skip


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


def _seed_curves(rows, key):
    """Epochs and ``(members, epochs)`` values of ``key`` from history rows (``member`` key
    per row in a population; NaN where a member has no row for an epoch)."""
    epochs = sorted({r["epoch"] for r in rows})
    members = sorted({r.get("member", 0) for r in rows})
    c = np.full((len(members), len(epochs)), np.nan)
    for r in rows:
        c[members.index(r.get("member", 0)), epochs.index(r["epoch"])] = float(r[key])
    return np.array(epochs), c


def training_curves(
    path: str | Path, history: Sequence[Mapping[str, float]], *, what: str = ""
) -> Path:
    """Loss and perplexity per epoch (epoch 0 is the initialisation; no train value there).

    ``history`` rows with a ``member`` key (a population) are averaged over members,
    with a band: the 95% t-interval across seeds.
    """
    members = {r.get("member", 0) for r in history}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    curves = {k: _seed_curves(history, k) for k in ("train_loss", "valid_loss")}
    names = {
        "train_loss": "train (running mean over the epoch)",
        "valid_loss": "validation (end of epoch)",
    }
    for ax, f, ylabel in ((a, None, "cross-entropy (nats/token)"), (b, np.exp, "perplexity")):
        for i, (k, (ep, c)) in enumerate(curves.items()):
            seed_series(ax, ep, c, i=i, label=names[k], f=f)
        epoch_axis(ax)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        legend(ax)
    log_axis(b)
    last = max((int(r["epoch"]) for r in history), default=0)
    who = f"\n({seed_label(len(members))})" if len(members) > 1 else ""
    a.set_title(f"Loss, epochs 0-{last}{what}{who}", fontsize=10)
    b.set_title(f"Perplexity (log scale), epochs 0-{last}{what}{who}", fontsize=10)
    return save(fig, path)


def check_figure(fig) -> list[str]:
    """What a figure lacks under the standard (empty when it meets it).

    Checks every panel with data: x and y labels, a title (the panel's or the
    figure's), a legend when it has more than one labelled line, legend entries
    distinct in (colour, marker) and not relying on line style, integer ticks on
    axes labelled "epoch", every shaded band (``fill_between``) named in a legend entry,
    title or axis label ("interval", "band", "range" or "shaded").
    """
    problems = []
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    for k, ax in enumerate(fig.axes):
        if not ax.has_data() or ax.get_label() == "<colorbar>" or not ax.axison:
            continue  # an axis turned off (a drawn graph) has no axes to label
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
        bands = [
            c
            for c in ax.collections
            if isinstance(c, PolyCollection) and c.get_paths() and c.get_gid() != BAND_KEY
        ]
        legend_texts = [t.get_text() for lg in [ax.get_legend(), *fig.legends] if lg
                        for t in lg.get_texts()]  # fmt: skip
        named = " ".join([ax.get_title(), suptitle, ax.get_ylabel(), *legend_texts]).lower()
        if bands and not any(w in named for w in ("interval", "band", "range", "shaded")):
            problems.append(f"{name}: a shaded band that no legend entry, title or label names")
        if "epoch" in ax.get_xlabel():
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            if any(abs(t - round(t)) > 1e-9 for t in ticks):
                problems.append(f"{name}: fractional epoch ticks {ticks}")
    return problems
