"""From the tidy table to the HMM's input, and the checks the report states.

- :func:`metric_matrix`: the ``(S, T, D)`` array of the chosen families' metrics
  at the checkpoints every seed has, dropping (and naming) metrics missing anywhere;
- :func:`coincidence`: whether each detected transition falls on a checkpoint where
  the sparsity (token-mean TE) or the representations (1 - CKA with the previous
  checkpoint) change strongly, judged against the run's own distribution of changes.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class MetricMatrix:
    """``values`` (S, T, D): seeds x checkpoint steps x metric names."""

    values: np.ndarray
    seeds: list[int]
    steps: list[int]
    names: list[str]
    missing: list[str]


def metric_matrix(rows: Sequence[dict], families: Sequence[str]) -> MetricMatrix:
    """Pivot tidy rows into the HMM's input (families ``families`` only).

    Raises:
      ValueError: no rows of these families, or no metric present at every checkpoint.
    """
    rows = [r for r in rows if r["family"] in families]
    if not rows:
        raise ValueError(f"phases: no metrics of families {list(families)} in the table")
    seeds = sorted({r["seed"] for r in rows})
    by_seed = {s: {} for s in seeds}
    for r in rows:
        by_seed[r["seed"]].setdefault(r["step"], {})[f"{r['family']}/{r['metric']}"] = r["value"]
    steps = sorted(set.intersection(*(set(d) for d in by_seed.values())))
    if len(steps) < 2:
        raise ValueError(f"phases: the seeds share {len(steps)} checkpoint steps (need >= 2)")
    names = sorted({n for d in by_seed.values() for s in steps for n in d[s]})
    complete = [n for n in names if all(n in by_seed[sd][st] for sd in seeds for st in steps)]
    if not complete:
        raise ValueError("phases: no metric is present at every checkpoint of every seed")
    values = np.array(
        [[[by_seed[sd][st][n] for n in complete] for st in steps] for sd in seeds], np.float64
    )
    missing = [n for n in names if n not in complete]
    return MetricMatrix(values, seeds, steps, complete, missing)


def family_change(rows: Sequence[dict], family: str, metric_suffix: str = "") -> dict:
    """``{(seed, step): change}`` at every checkpoint after the first, per seed.

    For ``te``: the mean over modules/directions of |TE(step) - TE(previous)| divided
    by the metric's standard deviation over the run (so modules weigh equally); for
    ``sim``: the mean over layers of ``1 - value`` of the ``metric_suffix`` metric
    (e.g. ``cka_prev``), which already compares with the previous checkpoint.
    """
    rows = [r for r in rows if r["family"] == family and r["metric"].endswith(metric_suffix)]
    out: dict[tuple[int, int], float] = {}
    if not rows:
        return out
    series: dict[tuple[int, str], dict[int, float]] = {}
    for r in rows:
        series.setdefault((r["seed"], r["metric"]), {})[r["step"]] = r["value"]
    per: dict[tuple[int, int], list[float]] = {}
    if family == "sim":
        for (seed, _), s in series.items():
            for step, v in s.items():
                per.setdefault((seed, step), []).append(1.0 - v)
    else:
        scale = {}
        for (_, metric), s in series.items():
            scale.setdefault(metric, []).extend(s.values())
        scale = {m: float(np.std(v)) or 1.0 for m, v in scale.items()}
        for (seed, metric), s in series.items():
            st = sorted(s)
            for a, b in itertools.pairwise(st):
                per.setdefault((seed, b), []).append(abs(s[b] - s[a]) / scale[metric])
    return {k: float(np.mean(v)) for k, v in per.items()}


def coincidence(
    points: dict[int, list[tuple[int, int, int]]], change: dict, quantile: float
) -> list[dict]:
    """For each transition (per seed: ``(step, from, to)``), the change of a family there
    and its quantile among that seed's changes; ``coincides`` when it reaches ``quantile``.

    Returns rows ``{seed, step, from, to, change, rank, coincides}`` (``change`` None when
    the family has no value at that checkpoint).
    """
    out = []
    for seed, pts in points.items():
        values = np.array([v for (s, _), v in change.items() if s == seed])
        for step, i, j in pts:
            v = change.get((seed, step))
            rank = None if v is None or not len(values) else float(np.mean(values <= v))
            out.append(
                {
                    "seed": seed,
                    "step": step,
                    "from": i,
                    "to": j,
                    "change": v,
                    "rank": rank,
                    "coincides": None if rank is None else bool(rank >= quantile),
                }
            )
    return out
