"""Float64 NumPy references for jaxdyn.analysis.sparsity and per_type, written
directly from the equations (one vector at a time, plain loops).

References: Saphra & Lopez (2019) taxi-Euclidean ratio; Hurley & Rickard (2009)
Gini index S(c); Hoyer (2004) eq. 1; unbiased sample variance (divisor n - 1).
"""

from __future__ import annotations

import math

import numpy as np


def _vectors(x):
    x = np.asarray(x, np.float64)
    return x.reshape(-1, x.shape[-1]), x.shape[:-1]


def _per_vector(fn, x):
    flat, lead = _vectors(x)
    return np.array([fn(v) for v in flat], np.float64).reshape(lead)


def l1_ref(x):
    return _per_vector(lambda v: sum(abs(t) for t in v), x)


def l2_ref(x):
    return _per_vector(lambda v: math.sqrt(sum(t * t for t in v)), x)


def te_ref(x):
    def f(v):
        l2 = math.sqrt(sum(t * t for t in v))
        return 0.0 if l2 == 0 else sum(abs(t) for t in v) / l2

    return _per_vector(f, x)


def gini_ref(x):
    def f(v):
        d = len(v)
        c = sorted(abs(t) for t in v)
        l1 = sum(c)
        if l1 == 0:
            return 0.0
        return 1.0 - 2.0 * sum((c[k - 1] / l1) * ((d - k + 0.5) / d) for k in range(1, d + 1))

    return _per_vector(f, x)


def hoyer_ref(x):
    def f(v):
        d = len(v)
        l2 = math.sqrt(sum(t * t for t in v))
        if l2 == 0:
            return 0.0
        if d == 1:
            return 1.0
        te = sum(abs(t) for t in v) / l2
        return (math.sqrt(d) - te) / (math.sqrt(d) - 1.0)

    return _per_vector(f, x)


def zero_fraction_ref(x, threshold=0.0, relative=False):
    def f(v):
        if len(v) == 0:
            return 0.0
        thr = threshold * max(abs(t) for t in v) if relative else threshold
        return sum(1 for t in v if abs(t) <= thr) / len(v)

    return _per_vector(f, x)


def dead_units_ref(x, threshold=0.0, relative=False, mask=None):
    """x (N, D) -> (D,) bool: |x[n, j]| <= thr for all masked-in n (False if none)."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    rows = [i for i in range(n) if mask is None or mask[i]]
    if not rows:
        return np.zeros(d, bool)
    thr = threshold * max(abs(x[i, j]) for i in rows for j in range(d)) if relative else threshold
    return np.array([all(abs(x[i, j]) <= thr for i in rows) for j in range(d)], bool)


def per_type_ref(keys, values, mask, num_types):
    """keys, values, mask: flat sequences. Returns count, mean, var (ddof=1; 0 if n<2)."""
    groups = {v: [] for v in range(num_types)}
    for k, x, m in zip(np.ravel(keys), np.ravel(values), np.ravel(mask)):
        if m and 0 <= k < num_types:
            groups[int(k)].append(float(x))
    count = np.array([len(groups[v]) for v in range(num_types)])
    mean = np.array([math.fsum(g) / len(g) if g else 0.0 for g in groups.values()])
    var = np.array(
        [
            math.fsum((t - mu) ** 2 for t in g) / (len(g) - 1) if len(g) > 1 else 0.0
            for g, mu in zip(groups.values(), mean)
        ]
    )
    return count, mean, var
