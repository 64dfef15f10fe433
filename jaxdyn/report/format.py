"""Numbers and verdict words formatted for people: no ``None``, ``nan`` or raw reprs.

Every report string that shows a number goes through these helpers, so a missing
value reads as what it means ("never", "n/a (too few points)") instead of a
Python value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

#: What a missing number means where no more specific reason is given.
NA = "n/a"
#: A statistic that needs more points than there were (a correlation of < 3 values).
TOO_FEW = "n/a (too few points)"


def is_missing(x) -> bool:
    """True for None and non-finite floats (what must never be printed raw)."""
    if x is None:
        return True
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x, digits: int = 3, *, signed: bool = False, missing: str = NA) -> str:
    """``x`` with ``digits`` significant digits (``missing`` for None/NaN/inf)."""
    if is_missing(x):
        return missing
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:+d}" if signed else f"{x:,}" if abs(x) >= 10_000 else str(x)
    return f"{float(x):{'+' if signed else ''}.{digits}g}"


def fixed(x, decimals: int = 3, *, signed: bool = False, missing: str = NA) -> str:
    """``x`` with a fixed number of decimals (``missing`` for None/NaN/inf)."""
    if is_missing(x):
        return missing
    return f"{float(x):{'+' if signed else ''}.{decimals}f}"


def epoch(e, *, missing: str = "never") -> str:
    """An epoch number, or ``missing`` ("never") when the event did not happen."""
    return missing if e is None else str(int(e))


def pvalue(p) -> str:
    """A p-value: 3 significant digits, ``< 1e-300`` below float range, ``n/a`` if missing."""
    if is_missing(p):
        return TOO_FEW
    return "< 1e-300" if p == 0 else f"{float(p):.3g}"


def rho(r, p=None, n: int | None = None) -> str:
    """A correlation with its p-value and size: ``rho -0.123 (p 0.004, n 57)``.

    A correlation that could not be computed (constant input, < 3 points) reads
    ``n/a (too few points)`` (with the size when given) instead of ``nan``.
    """
    size = "" if n is None else f", n {n:,}"
    if is_missing(r):
        return f"rho {TOO_FEW}" + (f" (n {n:,})" if n is not None else "")
    ptxt = "" if p is None else f"p {pvalue(p)}"
    inner = ", ".join(s for s in (ptxt, size.lstrip(", ")) if s)
    return f"rho {float(r):+.3f}" + (f" ({inner})" if inner else "")


def interval(lo, hi, digits: int = 3, *, signed: bool = True) -> str:
    """``[lo, hi]``, or ``n/a`` when either end is missing."""
    if is_missing(lo) or is_missing(hi):
        return NA
    return f"[{num(lo, digits, signed=signed)}, {num(hi, digits, signed=signed)}]"


def mean_interval(
    m, lo=None, hi=None, *, digits: int = 3, signed: bool = True, single: str | None = None
) -> str:
    """``m [lo, hi]``; with no interval, ``m`` and ``single`` (e.g. "1 seed: no interval")."""
    if is_missing(m):
        return NA
    if is_missing(lo) or is_missing(hi):
        return num(m, digits, signed=signed) + (f" ({single})" if single else "")
    return f"{num(m, digits, signed=signed)} {interval(lo, hi, digits, signed=signed)}"


def cell(v) -> str:
    """A table cell: floats with 4 significant digits, missing values as ``n/a``."""
    if v is None:
        return NA
    if isinstance(v, float):
        return NA if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def ranges(values: Sequence[int]) -> str:
    """Integers as compact ranges: ``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    xs = sorted(set(int(v) for v in values))
    out, k = [], 0
    while k < len(xs):
        j = k
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[k]) if j == k else f"{xs[k]}-{xs[j]}")
        k = j + 1
    return ", ".join(out)


def per_part(d: Mapping[str, object], fmt=num) -> str:
    """``{"lstm_0": -0.1, ...}`` -> ``"lstm_0 -0.1, ..."`` with ``fmt`` per value."""
    return ", ".join(f"{k} {fmt(v)}" for k, v in d.items())


def jsonable(o):
    """``json.dumps(..., default=jsonable)``: verdicts (``as_dict``), NumPy scalars, else str."""
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
