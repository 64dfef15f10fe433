"""Verdicts across a population of seeds: intervals, a margin-over-baseline rule, report rows.

A finding is decided from one statistic measured per seed at the trained checkpoint
and at the same seed's untrained (initial) checkpoint. The per-seed effect is
``e_i = trained_i - untrained_i`` (paired: seed ``i``'s model against its own
initialisation). With ``o_i = direction * e_i`` (positive = the predicted way):

* **reproduced** when the ``level`` (95%) interval of the mean of ``o`` lies above
  ``margin``, or when mean(o) > margin, at least ``ceil(min_fraction * S)`` of the
  ``S`` given seeds have ``o_i > margin`` (failed seeds count as not meeting it) and
  the interval still lies above 0 (the seed-fraction clause accepts an effect whose
  size is uncertain, never one whose sign is: with 3 seeds, 2 beyond the margin and
  one the other way leave an interval across 0, and that is inconclusive);
* **contradicted** when the same holds with ``-o`` (the opposite direction);
* **inconclusive** otherwise, and whenever fewer than ``min_seeds`` seeds are finite.
  With ``require_sign`` the trained mean itself must also lie on the verdict's side
  of 0 (:func:`decide_correlation` sets it: "rho < 0", not only "below the baseline").

The interval is Student's t interval of the mean, ``mean +- t_{1-a/2, n-1} s / sqrt(n)``
over the ``n >= 2`` finite seeds. With one seed it is undefined (``None``, never NaN);
with ``min_seeds=1`` a single seed then decides by the seed-fraction clause alone
(1 of 1 >= 2/3: its effect beyond the margin; no interval to check), which is the old
single-run rule with a margin; the default ``min_seeds=2`` makes one seed inconclusive.

No bootstrap: with the 3-10 seeds a population holds, a percentile bootstrap of the
mean has far less than its nominal coverage (3 seeds give 10 distinct resampled
means, its interval is at most the range of the seeds), while the t interval is
exact for normal seed-to-seed variation and robust to moderate departures from it.

The margin keeps significance from passing for an effect: at 10^5 word pairs an
untrained model's rho of -0.025 has p ~ 1e-15, yet it is no learned effect.

References:
  Student (1908), The probable error of a mean (t interval); Fisher (1921), On the
  "probable error" of a coefficient of correlation (z = atanh r); Cumming (2014),
  The new statistics: why and how (decisions from intervals against an effect size);
  Abramowitz & Stegun (1964) 26.7.3-26.7.4 (t distribution for integer dof).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

LABELS = {True: "reproduced", False: "contradicted", None: "inconclusive"}


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ValueError(msg)


class Interval(NamedTuple):
    """Mean of ``n`` values and its two-sided interval (``lo``/``hi`` None when n < 2)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int


def _t_coverage(t: float, dof: int) -> float:
    """P(|T| <= t) for Student's t with integer ``dof`` (A&S 26.7.3-26.7.4, exact sums)."""
    th, odd = math.atan(t / math.sqrt(dof)), dof % 2
    term = acc = 1.0
    for k in range(1, dof // 2):
        term *= math.cos(th) ** 2 * (2 * k - 1 + odd) / (2 * k + odd)
        acc += term
    if odd:
        return 2.0 / math.pi * (th + (math.sin(th) * math.cos(th) * acc if dof > 1 else 0.0))
    return math.sin(th) * acc


def t_critical(level: float, dof: int) -> float:
    """Two-sided critical value ``t`` with ``P(|T| <= t) = level`` for integer ``dof >= 1``.

    Bisection to one ulp on the exact coverage sums (float64: ~1e-15 relative at
    level 0.95, ~1e-13 at 0.999, where ``1 - level`` loses digits).

    References:
      Student (1908); Abramowitz & Stegun (1964) 26.7.3-26.7.4.
    """
    _check(0.0 < level < 1.0, f"t_critical: level must be in (0, 1), got {level}")
    _check(int(dof) == dof and dof >= 1, f"t_critical: dof must be an integer >= 1, got {dof}")
    lo, hi = 0.0, 1.0
    while _t_coverage(hi, int(dof)) < level:
        lo, hi = hi, 2.0 * hi
    while lo < (mid := 0.5 * (lo + hi)) < hi:
        lo, hi = (mid, hi) if _t_coverage(mid, int(dof)) < level else (lo, mid)
    return hi


def t_interval(x, level: float = 0.95) -> Interval:
    """Mean of ``x`` ``(n,)`` and Student's t interval of the mean at ``level``.

    ``mean +- t_crit(level, n - 1) * std(x, ddof=1) / sqrt(n)``; for ``n = 1`` the
    interval is undefined and ``lo = hi = None``. Non-finite values raise (filter
    failed seeds first, as :func:`decide` does).

    References:
      Student (1908), The probable error of a mean.
    """
    x = np.asarray(x, np.float64)
    _check(x.ndim == 1 and x.size > 0, f"t_interval: x must have shape (n,), n >= 1, got {x.shape}")
    _check(bool(np.all(np.isfinite(x))), f"t_interval: x has non-finite values: {x.tolist()}")
    n, m = x.size, float(x.mean())
    if n < 2:
        return Interval(m, None, None, 1)
    half = t_critical(level, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(m, m - half, m + half, n)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One finding decided across seeds (JSON-able via :meth:`as_dict`; no NaNs).

    ``verdict`` is True / False / None as ``jaxdyn.report.verdict`` expects (False =
    contradicted); ``label`` spells it. ``mean, lo, hi``: trained statistic over the
    used seeds and its interval; ``baseline``: untrained mean; ``effect, effect_lo,
    effect_hi``: trained - untrained and its interval (what the rule reads);
    ``effects`` aligned with ``seeds_used``; ``n_predicted`` / ``n_opposite``: seeds
    beyond the margin each way. Undefined numbers are None.
    """

    verdict: bool | None
    label: str
    mean: float | None
    lo: float | None
    hi: float | None
    baseline: float | None
    effect: float | None
    effect_lo: float | None
    effect_hi: float | None
    effects: tuple[float, ...]
    n: int
    seeds_used: tuple
    failed: tuple
    n_predicted: int
    n_opposite: int
    rule: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _num(x: float) -> str:
    return f"{x:+g}" if x else "0"


def _join(xs) -> str:
    return ", ".join(map(str, xs))


def decide(
    trained,
    untrained,
    *,
    direction: int,
    margin: float,
    min_fraction: float = 2 / 3,
    level: float = 0.95,
    min_seeds: int = 2,
    require_sign: bool = False,
    seeds: Sequence | None = None,
    quantity: str = "trained - untrained",
) -> Verdict:
    """Decide a finding from per-seed values at the trained and untrained checkpoints.

    Args:
      trained: ``(S,)`` the statistic per seed at the trained checkpoint.
      untrained: ``(S,)`` the same per seed at its untrained checkpoint, or one value
        (a shared baseline) used for every seed.
      direction: +1 or -1, the predicted sign of ``trained - untrained``.
      margin: ``>= 0``, the effect size the trained effect must exceed.
      min_fraction: in (0, 1]; the seed-fraction clause needs
        ``ceil(min_fraction * S)`` of all ``S`` seeds (failed ones included) beyond
        the margin.
      level: interval coverage.
      min_seeds: fewest finite seeds for any verdict other than inconclusive.
      require_sign: also require the trained mean itself on the predicted side of 0
        (on the opposite side for contradicted), else inconclusive.
      seeds: ``(S,)`` labels for the report (default ``0..S-1``).
      quantity: how the rule string names the effect.

    A seed is failed when its trained or untrained value is non-finite; failed seeds
    are listed and excluded from every mean and interval. The rule (module
    docstring) is stated with its numbers in ``Verdict.rule``.

    References:
      Student (1908); Cumming (2014), The new statistics: why and how.
    """
    tr = np.asarray(trained, np.float64)
    un = np.asarray(untrained, np.float64)
    _check(tr.ndim == 1 and tr.size > 0, f"decide: trained must have shape (S,), got {tr.shape}")
    S = tr.size
    un = np.full(S, float(un)) if un.ndim == 0 else un
    _check(
        un.shape == tr.shape, f"decide: untrained must be one value or {tr.shape}, got {un.shape}"
    )
    _check(
        direction in (1, -1) and not isinstance(direction, bool),
        f"decide: direction must be +1 or -1, got {direction!r}",
    )
    _check(math.isfinite(margin) and margin >= 0, f"decide: margin must be >= 0, got {margin}")
    _check(0 < min_fraction <= 1, f"decide: min_fraction must be in (0, 1], got {min_fraction}")
    _check(0 < level < 1, f"decide: level must be in (0, 1), got {level}")
    _check(int(min_seeds) == min_seeds >= 1, f"decide: min_seeds must be >= 1, got {min_seeds}")
    labels = tuple(range(S)) if seeds is None else tuple(seeds)
    _check(len(labels) == S, f"decide: seeds must have {S} labels, got {len(labels)}")

    ok = np.isfinite(tr) & np.isfinite(un)
    used = tuple(s for s, k in zip(labels, ok) if k)
    failed = tuple(s for s, k in zip(labels, ok) if not k)
    need = max(1, math.ceil(min_fraction * S - 1e-9))
    lt, gt = ("<", ">") if direction < 0 else (">", "<")
    rule = (
        f"reproduced if {quantity} {lt} {_num(direction * margin)} in its {100 * level:g}% "
        f"t-interval across {len(used)} seeds, or in its mean and in >= {need} of {S} seeds"
        f" with the interval {lt} 0"
        + (f", with trained mean {lt} 0" if require_sign else "")
        + f"; contradicted if {gt} {_num(-direction * margin)} likewise"
        + (f" (trained mean {gt} 0)" if require_sign else "")
        + "; else inconclusive"
    )
    if failed:
        rule += f" (failed seeds: {_join(failed)})"
    if len(used) < min_seeds:
        rule += f"; only {len(used)} finite seed(s), needs {min_seeds}"
    elif len(used) == 1:
        rule += "; 1 seed: no interval, the seed decides"
    if not used:
        return Verdict(None, LABELS[None], *[None] * 7, (), 0, used, failed, 0, 0, rule)

    e = tr[ok] - un[ok]
    o = direction * e  # > 0: the predicted way
    ti, ei = t_interval(tr[ok], level), t_interval(e, level)
    verdict: bool | None = None
    for sgn, outcome in ((1, True), (-1, False)) if len(used) >= min_seeds else ():
        q = sgn * o
        q_lo = None if ei.lo is None else min(sgn * direction * ei.lo, sgn * direction * ei.hi)
        beyond = (q_lo is not None and q_lo > margin) or (
            q.mean() > margin and (q > margin).sum() >= need and (q_lo is None or q_lo > 0)
        )
        if beyond and (not require_sign or sgn * direction * ti.mean > 0):
            verdict = outcome
    return Verdict(
        verdict=verdict,
        label=LABELS[verdict],
        mean=ti.mean,
        lo=ti.lo,
        hi=ti.hi,
        baseline=float(un[ok].mean()),
        effect=ei.mean,
        effect_lo=ei.lo,
        effect_hi=ei.hi,
        effects=tuple(float(v) for v in e),
        n=len(used),
        seeds_used=used,
        failed=failed,
        n_predicted=int((o > margin).sum()),
        n_opposite=int((-o > margin).sum()),
        rule=rule,
    )


def decide_correlation(
    trained_rho,
    untrained_rho,
    *,
    margin: float,
    direction: int = -1,
    fisher_z: bool = False,
    require_sign: bool = True,
    **kwargs,
) -> Verdict:
    """Rho of the predicted sign, beyond the untrained baseline by ``margin``.

    :func:`decide` on correlations ``(S,)`` (untrained ``(S,)`` or one value;
    ``kwargs`` go to it), with ``require_sign`` by default: "rho < 0" is part of the
    thesis's claims, not only "lower than at initialisation".

    ``fisher_z=False`` (default) decides on rho itself: the interval is across
    seeds, so its width is seed-to-seed variation, not the within-seed sampling
    variance ~1/(n-3) that Fisher's z stabilises (at n = 10^5 pairs that is a
    standard error of 0.003, negligible), and for |rho| < 0.5 z and rho differ by
    < 10%, so the margin stays in readable rho units. ``fisher_z=True`` decides on
    ``atanh(rho)`` (margin in z units), for large |rho| where a symmetric interval
    of rho could leave [-1, 1]; the trained ``mean/lo/hi`` and ``baseline`` are then
    mapped back with ``tanh`` (a z-averaged rho), the effects stay in z. A rho of
    exactly +-1 has no z and its seed is failed.

    References:
      Spearman (1904); Fisher (1921), On the "probable error" of a coefficient of
      correlation; Cumming (2014).
    """
    tr = np.asarray(trained_rho, np.float64)
    un = np.asarray(untrained_rho, np.float64)
    for name, r in (("trained_rho", tr), ("untrained_rho", un)):
        if np.any(np.abs(r[np.isfinite(r)]) > 1):
            raise ValueError(f"decide_correlation: {name} outside [-1, 1]: {r.tolist()}")
    q = "rho(trained) - rho(untrained)"
    if fisher_z:
        with np.errstate(divide="ignore"):
            tr, un = np.arctanh(tr), np.arctanh(un)
        q = "z(rho trained) - z(rho untrained)"
    kwargs.update(direction=direction, margin=margin, require_sign=require_sign, quantity=q)
    v = decide(tr, un, **kwargs)
    if not fisher_z:
        return v
    keys = ("mean", "lo", "hi", "baseline")
    return dataclasses.replace(
        v, **{k: math.tanh(x) for k in keys if (x := getattr(v, k)) is not None}
    )


#: Header of the verdict table (:func:`markdown_row` gives its rows).
TABLE_HEADER = (
    "| finding | verdict | mean | interval | untrained | effect [interval] | seeds | rule |\n"
    "|---|---|---|---|---|---|---|---|"
)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3g}"


def _ci(lo: float | None, hi: float | None) -> str:
    return "n/a" if lo is None else f"[{_f(lo)}, {_f(hi)}]"


def describe(v: Verdict) -> str:
    """A text fragment: trained mean [interval], untrained baseline, effect, seeds."""
    if v.mean is None:
        return f"no finite seed (failed: {_join(v.failed)})"
    failed = f", failed: {_join(v.failed)}" if v.failed else ""
    return (
        f"{_f(v.mean)} {_ci(v.lo, v.hi)}, untrained {_f(v.baseline)}, effect "
        f"{_f(v.effect)} {_ci(v.effect_lo, v.effect_hi)} ({v.n} seeds{failed})"
    )


def markdown_row(finding: str, v: Verdict) -> str:
    """One row of :data:`TABLE_HEADER`'s table for ``v`` (``|`` in text escaped)."""
    seeds = str(v.n) + (f" ({len(v.failed)} failed: {_join(v.failed)})" if v.failed else "")
    cells = [
        finding,
        f"**{v.label}**",
        _f(v.mean),
        _ci(v.lo, v.hi),
        _f(v.baseline),
        f"{_f(v.effect)} {_ci(v.effect_lo, v.effect_hi)}" if v.effect is not None else "n/a",
        seeds,
        v.rule,
    ]
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
