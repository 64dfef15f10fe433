"""Host-side statistics for reports: rank correlation, bootstrap intervals, POS classes.

These run on small summary tables (one value per word type), in float64 NumPy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

#: Closed-class Penn Treebank tags: their words count as function words.
FUNCTION_TAGS = frozenset(
    {
        "DT",
        "PDT",
        "WDT",
        "IN",
        "CC",
        "PRP",
        "PRP$",
        "WP",
        "WP$",
        "WRB",
        "MD",
        "TO",
        "EX",
        "RP",
        "POS",
    }
)
#: Open-class Penn Treebank tags: their words count as content words.
CONTENT_TAGS = frozenset(
    {
        "NN",
        "NNS",
        "NNP",
        "NNPS",
        "VB",
        "VBD",
        "VBG",
        "VBN",
        "VBP",
        "VBZ",
        "JJ",
        "JJR",
        "JJS",
        "RB",
        "RBR",
        "RBS",
    }
)


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and a two-sided p-value (t approximation, n > 3).

    Pairs with a non-finite entry are dropped. Returns ``(nan, nan)`` when fewer
    than 4 points are left or an input is constant.

    References:
      Spearman (1904); p-value via t = rho sqrt((n-2)/(1-rho^2)) with n-2 dof.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(
            f"spearman: x and y must have the same length, got {x.shape} and {y.shape}"
        )
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 4:
        return float("nan"), float("nan")
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan"), float("nan")
    rho = float(np.corrcoef(rx, ry)[0, 1])
    t = rho * np.sqrt((n - 2) / max(1e-300, 1 - rho * rho))
    return rho, _t_two_sided(t, n - 2)


def _t_two_sided(t: float, dof: int) -> float:
    """Two-sided p of Student's t via the regularised incomplete beta (continued fraction)."""
    x = dof / (dof + t * t)
    return float(_betainc(dof / 2.0, 0.5, x))


def _betainc(a: float, b: float, x: float) -> float:
    from math import exp, lgamma, log

    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    # Lentz's continued fraction (Numerical Recipes 6.4)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        for coef in (aa, -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return exp(lbeta) * h / a


def matched_difference(
    value: np.ndarray,
    log_freq: np.ndarray,
    group: np.ndarray,
    *,
    bins: int = 8,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean of ``value`` for group A minus group B at matched frequency, with a bootstrap CI.

    Types are binned by ``log_freq`` into ``bins`` quantile bins of the A
    group's range; within each bin holding both groups the difference of
    means is taken, and bins are averaged with weights = number of A types.
    The 95% interval resamples types within each bin and group.

    Args:
      value: ``(N,)`` per-type values.
      log_freq: ``(N,)`` log frequencies.
      group: ``(N,)`` with 1 for group A, 0 for group B, -1 to ignore.
        Types with a non-finite value or log frequency are ignored too.
      bins: number of quantile bins (fewer when A's frequencies tie; one bin when
        all A types share one frequency).
      n_boot: bootstrap resamples; 0: the difference alone (``lo``/``hi`` NaN).
      seed: seed of the bootstrap (same seed, same interval).
    """
    value, log_freq = np.asarray(value, np.float64), np.asarray(log_freq, np.float64)
    group = np.asarray(group)
    if not value.shape == log_freq.shape == group.shape:
        raise ValueError(
            "matched_difference: value, log_freq and group must have the same length, got "
            f"{value.shape}, {log_freq.shape}, {group.shape}"
        )
    group = np.where(np.isfinite(value) & np.isfinite(log_freq), group, -1)
    a_freq = log_freq[group == 1]
    if len(a_freq) < 2 or (group == 0).sum() < 2:
        return {
            "diff": float("nan"),
            "lo": float("nan"),
            "hi": float("nan"),
            "bins": 0,
            "n_a": len(a_freq),
            "n_b": int((group == 0).sum()),
        }
    edges = np.unique(np.quantile(a_freq, np.linspace(0, 1, bins + 1)))
    n_bins = max(len(edges) - 1, 1)  # all A types at one frequency: one bin [f, f]
    idx = np.clip(np.searchsorted(edges, log_freq, side="right") - 1, 0, n_bins - 1)
    inside = (log_freq >= edges[0]) & (log_freq <= edges[-1])
    cells = []
    for k in range(n_bins):
        a = value[(idx == k) & inside & (group == 1)]
        b = value[(idx == k) & inside & (group == 0)]
        if len(a) and len(b):
            cells.append((a, b))
    if not cells:
        return {
            "diff": float("nan"),
            "lo": float("nan"),
            "hi": float("nan"),
            "bins": 0,
            "n_a": len(a_freq),
            "n_b": int((group == 0).sum()),
        }

    def stat(cs):
        w = np.array([len(a) for a, _ in cs], np.float64)
        d = np.array([a.mean() - b.mean() for a, b in cs])
        return float((w * d).sum() / w.sum())

    rng = np.random.default_rng(seed)
    boots = [
        stat([(rng.choice(a, len(a)), rng.choice(b, len(b))) for a, b in cells])
        for _ in range(n_boot)
    ]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return {
        "diff": stat(cells),
        "lo": float(lo),
        "hi": float(hi),
        "bins": len(cells),
        "n_a": int(sum(len(a) for a, _ in cells)),
        "n_b": int(sum(len(b) for _, b in cells)),
    }


def word_classes(tagged: Iterable[tuple[Sequence[str], Sequence[str]]]) -> dict[str, str]:
    """Word -> ``"function"`` / ``"content"`` by its most frequent gold XPOS tag.

    Args:
      tagged: ``(words, tags)`` sentence pairs (e.g. EWT XPOS).
    """
    counts: dict[str, Counter] = {}
    for words, tags in tagged:
        for w, t in zip(words, tags, strict=True):
            counts.setdefault(w, Counter())[t] += 1
    out = {}
    for w, c in counts.items():
        tag = c.most_common(1)[0][0]
        if tag in FUNCTION_TAGS:
            out[w] = "function"
        elif tag in CONTENT_TAGS:
            out[w] = "content"
    return out
