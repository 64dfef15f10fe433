"""Shared linear-algebra helpers for the representation-similarity kernels.

Everything here works on one activation matrix ``x: (N, D)`` (samples first) with
fixed shapes: per-sample weights replace boolean cropping, and rank or variance
thresholds produce column masks instead of cropped matrices. Thresholds are
relative to the largest singular value / eigenvalue, so they are scale-free.

References: Golub & Van Loan, Matrix Computations (4th ed.), Sec. 6.4 (CCA via
orthonormal bases: Bjoerck & Golub 1973); Fukaya et al. 2014 (CholeskyQR2).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def float_dtype(*arrays) -> jnp.dtype:
    """Floating dtype for the computation: float32 unless an input is float64 (x64 on)."""
    dt = np.result_type(np.float32, *[np.dtype(a.dtype) for a in arrays])
    return jax.dtypes.canonicalize_dtype(dt)


def check_pair(x, y, name: str, min_n: int = 2) -> None:
    """Static shape checks for a pair ``x: (N, Dx)``, ``y: (N, Dy)``; raises ValueError."""
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"{name}: expected x (N, Dx) and y (N, Dy), got {x.shape}, {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name}: x and y need the same samples N, got {x.shape}, {y.shape}")
    if x.shape[0] < min_n:
        raise ValueError(f"{name}: needs at least {min_n} samples, got N={x.shape[0]}")
    if x.shape[1] < 1 or y.shape[1] < 1:
        raise ValueError(f"{name}: needs at least one unit per view, got {x.shape}, {y.shape}")


def sample_weights(n: int, weights, dtype) -> jnp.ndarray:
    """Normalised per-sample weights ``(N,)`` summing to 1 (uniform if ``weights`` is None).

    A 0/1 ``weights`` vector is a mask: results equal those on the cropped rows.
    Negative weights are clipped to 0; an all-zero vector gives all-zero weights.
    """
    if weights is None:
        return jnp.full((n,), 1.0 / n, dtype)
    weights = jnp.asarray(weights)
    if weights.shape != (n,):
        raise ValueError(f"weights/mask must have shape ({n},), got {weights.shape}")
    w = jnp.maximum(weights.astype(dtype), 0)
    total = jnp.sum(w)
    return w / jnp.where(total > 0, total, 1)


def _safe_div(a, b):
    return a / jnp.where(b > 0, b, 1)


def zero_constant_columns(x, valid) -> jnp.ndarray:
    """Set exactly-constant columns (over rows where ``valid``) and invalid rows to 0.

    Centring a constant column leaves rounding noise that a scale-free method would
    amplify; detecting ``max == min`` makes dead/constant units exactly zero. Rows
    outside ``valid`` are padding: whatever they hold (-1e9, inf, NaN) is zeroed so
    it can enter neither a rescaling nor a weighted mean (``0 * inf = NaN``).

    Args:
      x: (N, D); valid: (N,) bool.

    Returns:
      (N, D).
    """
    v = valid[:, None]
    hi = jnp.max(jnp.where(v, x, -jnp.inf), axis=0)
    lo = jnp.min(jnp.where(v, x, jnp.inf), axis=0)
    return jnp.where(v & (hi > lo), x, 0)


def prepare_parts(x, w) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Weighted-centred, row-weighted, rescaled view ``z: (N, D)`` and its unit means.

    ``z = c * diag(sqrt(w)) (x - 1 w^T x)`` with ``c > 0`` chosen so ``max|z| = 1``;
    hence ``z^T z`` is the weighted covariance up to a positive factor. Scaling
    first keeps inputs of magnitude 1e-6 or 1e6 inside float32 range. The means
    ``m = c w^T x`` are in the same units (uncentred unit j is ``z_j + m_j sqrt(w)``,
    ``sqrt(w)`` of unit norm and orthogonal to every ``z_j``); constant units keep
    their mean (their column of ``z`` is exactly zero).

    Args:
      x: (N, D) activations.
      w: (N,) normalised sample weights.

    Returns:
      ``(z (N, D), m (D,))``.

    References: Hotelling 1936 (sample covariance of centred data).
    """
    valid = w > 0
    x = jnp.where(valid[:, None], x.astype(w.dtype), 0)  # padding rows: any value
    xc = zero_constant_columns(x, valid)
    scale = jnp.max(jnp.abs(xc))
    scale = jnp.where(scale > 0, scale, jnp.maximum(jnp.max(jnp.abs(x)), 1e-30))
    xc = xc / scale
    z = (xc - w @ xc) * jnp.sqrt(w)[:, None]
    zmax = jnp.max(jnp.abs(z))
    zmax = jnp.where(zmax > 0, zmax, 1)
    return z / zmax, (w @ x) / scale / zmax


def prepare(x, w) -> jnp.ndarray:
    """The view ``z: (N, D)`` of :func:`prepare_parts` (weighted-centred and rescaled)."""
    return prepare_parts(x, w)[0]


def rank_tol(size: int, dtype) -> float:
    """Relative singular-value tolerance ``size * eps`` (scale-free, dtype-aware)."""
    return float(size * jnp.finfo(dtype).eps)


class Basis(NamedTuple):
    """Orthonormal basis of a view's column space, padded to a fixed width K.

    Attributes:
      q: (N, K) orthonormal columns; columns outside ``mask`` are exactly zero.
      s: (K,) singular values of ``z`` in descending order (0 outside ``mask``).
      load: (K, D) coordinates of the units in the basis, ``q^T z``.
      mask: (K,) bool, the kept directions (a prefix).
    """

    q: jnp.ndarray
    s: jnp.ndarray
    load: jnp.ndarray
    mask: jnp.ndarray


def _variance_mask(s, valid, keep: float | None):
    if keep is None or keep >= 1.0:
        return valid
    var = s * s
    total = jnp.sum(var)
    before = jnp.cumsum(var) - var
    first = jnp.arange(s.shape[0]) == 0
    return valid & ((before < keep * total) | first)


def basis_svd(z, keep: float | None = None) -> Basis:
    """Basis by a thin SVD of ``z: (N, D)``, width ``K = min(N, D)``; O(N D min(N, D)).

    Directions with ``s_i <= s_0 * max(N, D) * eps`` are dropped (numerical rank),
    and with ``keep`` only the smallest prefix explaining ``keep`` of the variance.

    References: Raghu et al. 2017, SVCCA, Sec. 2 (SVD step); Golub & Van Loan 8.6.
    """
    n, d = z.shape
    u, s, vt = jnp.linalg.svd(z, full_matrices=False)
    valid = s > s[0] * rank_tol(max(n, d), z.dtype)
    mask = _variance_mask(s, valid, keep)
    s = jnp.where(mask, s, 0)
    return Basis(u * mask, s, s[:, None] * vt, mask)


def basis_gram(z, keep: float | None = None) -> Basis:
    """Basis from the ``D x D`` Gram ``z^T z`` (for N >> D), width ``K = D``.

    Eigendecompose ``G = z^T z = V diag(lam) V^T``, set ``q = z V_k lam_k^{-1/2}`` and
    re-orthonormalise once (CholeskyQR2), so ``q`` is orthonormal to working
    precision for the kept directions. Cost O(N D^2) GEMMs + O(D^3), instead of an
    N x D SVD. The eigenvalue tolerance ``lam_i > lam_0 * D * eps`` means that in
    float32 directions below ~``sqrt(D eps)`` of the top singular value are dropped
    (use float64 under ``jax.enable_x64(True)`` or ``basis_svd`` to keep them).

    References: Fukaya et al. 2014, CholeskyQR2, Alg. 2; Raghu et al. 2017, Sec. 2.
    """
    d = z.shape[1]
    lam, v = jnp.linalg.eigh(z.T @ z)
    lam, v = jnp.maximum(lam[::-1], 0), v[:, ::-1]
    valid = lam > lam[0] * rank_tol(d, z.dtype)
    s = jnp.sqrt(lam)
    mask = _variance_mask(s, valid, keep)
    q1 = (z @ v) * jnp.where(mask, 1 / jnp.where(mask, s, 1), 0)
    g2 = q1.T @ q1 + jnp.diag(jnp.where(mask, 0, 1).astype(z.dtype))
    r = jnp.linalg.cholesky(g2).T  # upper, g2 = r^T r
    q = jnp.linalg.solve(r.T, q1.T).T * mask  # q1 r^{-1}
    return Basis(q, jnp.where(mask, s, 0), q.T @ z, mask)


def make_basis(z, keep: float | None, method: str) -> Basis:
    """Dispatch on ``method`` in {"svd", "gram"}; see :func:`basis_svd`, :func:`basis_gram`."""
    if method == "svd":
        return basis_svd(z, keep)
    if method == "gram":
        return basis_gram(z, keep)
    raise ValueError(f"method must be 'svd' or 'gram', got {method!r}")


def psd_inv_sqrt(a, rtol: float) -> jnp.ndarray:
    """Pseudo-inverse square root of a symmetric PSD matrix ``a: (D, D)``.

    Eigenvalues are clipped at 0 and those ``<= rtol * max`` are treated as 0, so
    rounding never produces NaN (unlike ``sqrt(eigvals(pinv(a)))``).
    """
    lam, v = jnp.linalg.eigh(a)
    lam = jnp.maximum(lam, 0)
    ok = lam > jnp.max(lam) * rtol
    inv = jnp.where(ok, 1 / jnp.sqrt(jnp.where(ok, lam, 1)), 0)
    return (v * inv) @ v.T


def singular_values(m, k: int) -> jnp.ndarray:
    """First ``k`` singular values of ``m``, descending, clipped to [0, 1], zero-padded."""
    s = jnp.clip(jnp.linalg.svd(m, compute_uv=False), 0, 1)
    if s.shape[0] >= k:
        return s[:k]
    return jnp.concatenate([s, jnp.zeros((k - s.shape[0],), s.dtype)])
