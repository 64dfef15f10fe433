"""Sparsity (concentration) measures of activation and gradient vectors.

Every kernel reduces one vector along ``axis`` (default: last) and accepts any
number of leading axes, so a ``(B, T, D)`` activation gives ``(B, T)`` per-token
values. All kernels are pure, ``jit``/``vmap``/``grad``-able and numerically safe:
the norms divide the entries by the vector's L1 norm before squaring (two
reductions, no data-dependent branch), so float32 inputs of size ``1e-30`` or
``1e30`` give the same ratios as size-1 inputs. Supported range: rows whose L1
norm stays below about ``1e38`` in float32 (``finfo.max / 3``); beyond it ``l1``
overflows and ``l2``/``te``/``hoyer`` are not defined (use float64 there).

Conventions for degenerate input (never NaN, gradients never NaN either):

* all-zero vector: ``l1 = l2 = te = gini = hoyer = 0``; ``zero_fraction = 1``.
* empty vector (``d = 0`` along ``axis``): every statistic is ``0``.
* ``d = 1``: ``te = 1``, ``gini = 0``, ``hoyer = 1`` for a nonzero entry (a
  nonzero 1-vector is one-hot; Hoyer's formula is 0/0 there).
* NaN entries propagate to NaN in the norms (they are not silently masked); in the
  threshold counts a NaN entry is never "<= threshold".

References: Saphra & Lopez (2019), "Sparsity emerges naturally in neural language
models" (taxi-Euclidean ratio ``||x||_1 / ||x||_2``); Hurley & Rickard (2009),
"Comparing measures of sparsity", Gini index (their eq. for ``S(c)``); Hoyer
(2004), "Non-negative matrix factorization with sparseness constraints", eq. 1.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp

Array = jax.Array

STAT_NAMES = ("l1", "l2", "te", "gini", "hoyer", "zero_frac")
DEFAULT_TOKEN_STATS = ("l1", "l2", "te", "gini", "hoyer")


def _as_float(x) -> Array:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"sparsity kernels take real arrays, got dtype {x.dtype}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _check_threshold(threshold) -> None:
    if isinstance(threshold, numbers.Real) and not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")


def _abs(x: Array) -> Array:
    """``|x|`` whose gradient at 0 is 0 (the minimal-norm subgradient; ``jnp.abs`` gives 1)."""
    return x * jnp.sign(x)


def _divide_rows(x: Array, r: Array) -> Array:
    """``x / r[..., None]`` for a per-row scale ``r > 0`` up to the float maximum.

    XLA divides by a broadcast scalar as a multiplication by ``1 / r``, which is
    subnormal (flushed to 0 on CPU) for ``r > ~1e38`` in float32; such rows are
    first brought down by an exact power of two.
    """
    big = r > 2.0**64
    r = jnp.where(big, r * 2.0**-64, r)[..., None]
    return jnp.where(big[..., None], x * 2.0**-64, x) / r


def _max_scaled(x: Array):
    """``(|x| / m, m)`` with ``m = max|x|`` per row (1 where the row is zero).

    The statistics are positively homogeneous in x (degree 1 for the norms, 0 for
    the ratios), so treating the scale m as a constant gives the exact gradient.
    """
    a = _abs(x)
    m = jax.lax.stop_gradient(jnp.max(a, axis=-1, initial=0.0))
    return _divide_rows(a, jnp.where(m != 0, m, 1.0)), m


def _nan_max(a: Array, axis=None) -> Array:
    """``max`` of ``a >= 0`` ignoring NaN entries (0 when none is left): the scale of a
    relative threshold, which one NaN entry must not turn into NaN."""
    return jnp.max(jnp.where(jnp.isnan(a), 0.0, a), axis=axis, initial=0.0)


def _norms(x: Array):
    """``(l1, l2, l1 / l2)`` over the last axis, 0 for zero rows.

    The squares are taken of ``x / ||x||_1`` (entries in [-1, 1], the largest at
    least 1/d), so they neither overflow nor underflow for inputs from 1e-30 to
    1e30 in float32, and no data-dependent branch is needed: XLA fuses the two
    reductions with whatever produced ``x`` (cheap inside a traced train step).
    Then ``l2 = l1 * sqrt(sum (x/l1)^2)`` and ``te = l1 / l2``.
    """
    l1 = jnp.sum(_abs(x), axis=-1)
    nz = l1 != 0  # NaN rows stay NaN below
    # l2(x) = r * ||x / r||_2 for any constant r > 0, so the scale r carries no
    # gradient (a gradient through 1/l1^2 would overflow for tiny inputs).
    r = jax.lax.stop_gradient(jnp.where(nz, l1, 1.0))
    ss = jnp.sum(jnp.square(x / r[..., None]), axis=-1)
    root = jnp.sqrt(jnp.where(nz, ss, 1.0))
    l2 = r * root
    zero = jnp.zeros_like(l1)
    te = (l1 / r) / root  # = l1 / l2, with every intermediate of order 1 (also in the gradient)
    return jnp.where(nz, l1, zero), jnp.where(nz, l2, zero), jnp.where(nz, te, zero)


def _last_axis_stats(x: Array, names: Sequence[str], threshold=0.0, relative=False):
    """All requested statistics over the last axis of ``x`` (shared passes and sort)."""
    d = x.shape[-1]
    sqrt_d = math.sqrt(d)
    l1, l2, te = _norms(x)
    nz = l2 != 0
    te = jnp.where(nz, jnp.clip(te, 1.0, max(sqrt_d, 1.0)), 0.0)
    out = {}
    for name in names:
        if name == "l1":
            out[name] = l1
        elif name == "l2":
            out[name] = l2
        elif name == "te":
            out[name] = te
        elif name == "hoyer":
            if d == 1:
                out[name] = jnp.where(nz, jnp.ones_like(te), 0.0)
            else:
                h = (sqrt_d - te) / (sqrt_d - 1.0)  # d = 0: nz is False anyway
                out[name] = jnp.where(nz, jnp.clip(h, 0.0, 1.0), 0.0)
        elif name == "gini":
            s, _ = _max_scaled(x)
            srt = jnp.sort(s, axis=-1)  # ascending: |x|_(1) <= ... <= |x|_(d)
            k = jnp.arange(1, d + 1, dtype=x.dtype)
            w = (d - k + 0.5) / max(d, 1)
            s1 = jnp.sum(s, axis=-1)
            g = 1.0 - 2.0 * jnp.sum(srt * w, axis=-1) / jnp.where(nz, s1, 1.0)
            out[name] = jnp.where(nz, jnp.clip(g, 0.0, 1.0), 0.0)
        elif name == "zero_frac":
            a = jnp.abs(x)
            thr = threshold * _nan_max(a, axis=-1) if relative else threshold
            small = (a <= jnp.asarray(thr, x.dtype)[..., None]).astype(x.dtype)
            out[name] = jnp.sum(small, axis=-1) / max(d, 1)
        else:
            raise ValueError(f"unknown statistic {name!r}; known: {STAT_NAMES}")
    return out


def _along(x, axis: int, name: str, **kw) -> Array:
    x = _as_float(x)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected at least a 1-D array, got a scalar")
    return _last_axis_stats(jnp.moveaxis(x, axis, -1), (name,), **kw)[name]


@partial(jax.jit, static_argnames=("axis",))
def l1_norm(x: Array, axis: int = -1) -> Array:
    """L1 norm ``sum_i |x_i|``.

    Args:
        x: ``(..., D, ...)`` real array.
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``; 0 for zero or empty vectors.

    References: Saphra & Lopez (2019), numerator of the taxi-Euclidean ratio.
    """
    return _along(x, axis, "l1")


@partial(jax.jit, static_argnames=("axis",))
def l2_norm(x: Array, axis: int = -1) -> Array:
    """Euclidean norm, computed as ``r * sqrt(sum((x / r)^2))`` with ``r = ||x||_1``.

    Scaling by the L1 norm (not the maximum) keeps every square in ``[0, 1]``, so
    float32 inputs from ``1e-30`` to ``1e30`` neither overflow nor underflow; ``r``
    is held constant in the gradient, which is exact as the norm is homogeneous.

    Args:
        x: ``(..., D, ...)`` real array.
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``; 0 (gradient 0) for zero or empty vectors.

    References: Saphra & Lopez (2019), denominator of the taxi-Euclidean ratio.
    """
    return _along(x, axis, "l2")


@partial(jax.jit, static_argnames=("axis",))
def te_norm(x: Array, axis: int = -1) -> Array:
    """Taxi-Euclidean ratio ``||x||_1 / ||x||_2`` (lower = more concentrated).

    ``1`` for a one-hot vector, ``sqrt(D)`` for constant magnitude; defined as 0
    for the all-zero or empty vector (so it never shadows a genuine value in [1, sqrt(D)]).

    Args:
        x: ``(..., D, ...)`` real array.
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``, values in ``{0} ∪ [1, sqrt(D)]``.

    References: Saphra & Lopez (2019), "Sparsity emerges naturally in neural
        language models", Sec. 2 (taxi-Euclidean norm).
    """
    return _along(x, axis, "te")


@partial(jax.jit, static_argnames=("axis",))
def gini(x: Array, axis: int = -1) -> Array:
    """Gini index of ``|x|``: ``1 - 2 sum_k (|x|_(k) / ||x||_1) (D - k + 1/2) / D``.

    ``|x|_(k)`` are the magnitudes sorted ascending, ``k = 1..D``. 0 for constant
    magnitude, ``1 - 1/D`` for one-hot, 0 for the zero or empty vector.

    Args:
        x: ``(..., D, ...)`` real array.
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``, values in ``[0, 1 - 1/D]``.

    References: Hurley & Rickard (2009), "Comparing measures of sparsity",
        IEEE Trans. Inf. Theory 55(10), Gini index S(c) (Sec. III).
    """
    return _along(x, axis, "gini")


@partial(jax.jit, static_argnames=("axis",))
def hoyer(x: Array, axis: int = -1) -> Array:
    """Hoyer sparseness ``(sqrt(D) - ||x||_1/||x||_2) / (sqrt(D) - 1)``.

    1 for one-hot, 0 for constant magnitude, 0 for the zero or empty vector; for
    ``D = 1`` it is 1 for a nonzero entry.

    Args:
        x: ``(..., D, ...)`` real array.
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``, values in ``[0, 1]``.

    References: Hoyer (2004), "Non-negative matrix factorization with sparseness
        constraints", JMLR 5, eq. 1.
    """
    return _along(x, axis, "hoyer")


@partial(jax.jit, static_argnames=("relative", "axis"))
def _zero_fraction(x, threshold, relative, axis):
    return _along(x, axis, "zero_frac", threshold=threshold, relative=relative)


def zero_fraction(
    x: Array, threshold: float | Array = 0.0, *, relative: bool = False, axis: int = -1
) -> Array:
    """Fraction of entries with ``|x_i| <= threshold``.

    Args:
        x: ``(..., D, ...)`` real array.
        threshold: absolute threshold (>= 0), or with ``relative=True`` a fraction
            of the vector's own ``max |x|`` (scale-free; NaN entries ignored).
        relative: interpret ``threshold`` relative to ``max |x|`` (static).
        axis: axis of the vector (static).

    Returns:
        ``x.shape`` without ``axis``; 1 for the zero vector, 0 for an empty one.

    References: Hurley & Rickard (2009), the ``l0`` / ``l0_eps`` measures (Sec. II).
    """
    _check_threshold(threshold)
    return _zero_fraction(x, threshold, relative=relative, axis=axis)


@partial(jax.jit, static_argnames=("relative",))
def _dead_units(x, threshold, mask, relative):
    keep = jnp.ones(x.shape[:-1], bool) if mask is None else mask.astype(bool)
    a = jnp.where(keep[..., None], jnp.abs(x), 0.0)
    thr = jnp.asarray(threshold, x.dtype)
    if relative:
        thr = thr * _nan_max(a)
    alive = jnp.any(~(a <= thr), axis=tuple(range(x.ndim - 1)))
    return ~alive & jnp.any(keep)


def _check_dead_args(x, threshold, mask):
    x = _as_float(x)
    if x.ndim < 2:
        raise ValueError(f"expected (N, D) samples-first input, got shape {x.shape}")
    _check_threshold(threshold)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != x.shape[:-1]:
            raise ValueError(f"mask shape {mask.shape} != x.shape[:-1] {x.shape[:-1]}")
    return x, mask


def dead_units(
    x: Array,
    threshold: float | Array = 0.0,
    *,
    relative: bool = False,
    mask: Array | None = None,
) -> Array:
    """Units (neurons) whose ``|activation| <= threshold`` on every masked-in sample.

    Args:
        x: ``(N, D)`` samples-first activations (any number of leading sample axes
            ``(..., D)`` is accepted and treated as samples).
        threshold: absolute threshold (>= 0); with ``relative=True`` a fraction of the
            global ``max |x|`` over masked-in samples (NaN entries ignored).
        relative: interpret ``threshold`` relative to the global max (static).
        mask: ``x.shape[:-1]`` bool, True = sample counts; None = all count.

    Returns:
        ``(D,)`` bool. With no (masked-in) samples no unit is declared dead (all
        False). NaN activations count as alive.

    References: Saphra (2021), thesis ch. "Sparsity emerges naturally" (dead units);
        Hurley & Rickard (2009), ``l0_eps`` (Sec. II).
    """
    x, mask = _check_dead_args(x, threshold, mask)
    return _dead_units(x, threshold, mask, relative=relative)


@partial(jax.jit, static_argnames=("relative",))
def _dead_fraction(x, threshold, mask, relative):
    dead = _dead_units(x, threshold, mask, relative=relative)
    return jnp.sum(dead.astype(x.dtype)) / max(dead.shape[0], 1)


def dead_fraction(
    x: Array,
    threshold: float | Array = 0.0,
    *,
    relative: bool = False,
    mask: Array | None = None,
) -> Array:
    """Fraction of dead units, ``mean(dead_units(x, threshold, ...))``.

    Args:
        x: ``(N, D)`` samples-first activations (or ``(..., D)``).
        threshold: see :func:`dead_units`.
        relative: see :func:`dead_units` (static).
        mask: ``x.shape[:-1]`` bool or None.

    Returns:
        scalar in [0, 1]; 0 when ``D = 0`` or there are no masked-in samples.

    References: Saphra (2021), thesis ch. "Sparsity emerges naturally".
    """
    x, mask = _check_dead_args(x, threshold, mask)
    return _dead_fraction(x, threshold, mask, relative=relative)


STATISTICS: dict[str, Callable[..., Array]] = {
    "l1": l1_norm,
    "l2": l2_norm,
    "te": te_norm,
    "gini": gini,
    "hoyer": hoyer,
    "zero_frac": zero_fraction,
}


@partial(jax.jit, static_argnames=("names",))
def _token_statistics(x, names):
    return _last_axis_stats(x, names)


def token_statistics(x: Array, names: Sequence[str] = DEFAULT_TOKEN_STATS) -> dict[str, Array]:
    """Several per-vector statistics at once over the last axis (shares |x|, max, sort).

    Args:
        x: ``(..., D)`` real array, e.g. ``(B, T, D)`` activations.
        names: keys of :data:`STATISTICS` (``zero_frac`` uses threshold 0).

    Returns:
        dict name -> ``x.shape[:-1]`` array, identical to the single kernels.

    References: see :func:`te_norm`, :func:`gini`, :func:`hoyer`.
    """
    names = tuple(names)
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}; known: {tuple(STATISTICS)}")
    x = _as_float(x)
    if x.ndim == 0:
        raise ValueError("token_statistics: expected at least a 1-D array, got a scalar")
    return _token_statistics(x, names)
