"""Shared linear-algebra helpers for the representation-similarity kernels.

Everything here works on one activation matrix ``x: (N, D)`` (samples first) with
fixed shapes: per-sample weights replace boolean cropping, and rank or variance
thresholds produce column masks instead of cropped matrices. Thresholds are
relative to the largest singular value / eigenvalue, so they are scale-free.

References: Golub & Van Loan, Matrix Computations (4th ed.), Sec. 6.4 (CCA via
orthonormal bases: Bjoerck & Golub 1973) and 8.6 (SVD).
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


def prepare_live(x, w) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Weighted-centred, row-weighted, rescaled view ``z: (N, D)``, unit means, live units.

    ``z = c * diag(sqrt(w)) (x - 1 w^T x)`` with ``c > 0`` chosen so ``max|z| <= 1``
    (``= 1`` for uniform weights, up to rounding); hence ``z^T z`` is the weighted
    covariance up to a positive factor. ``c`` comes from the column ranges over the
    rows where ``w > 0`` (``max_j max(hi_j - mu_j, mu_j - lo_j)``, ``mu = w^T x``),
    so inputs of magnitude 1e-6 or 1e6 land in float32 range, and the view is read
    three times and written once (column max, min and mean, then one fused pass).
    Exactly-constant units (``hi == lo``; also padding rows, whatever they hold) are
    exactly zero, since centring them would leave rounding noise that a scale-free
    method amplifies. The means ``m = c w^T x`` are in the units of ``z`` (uncentred
    unit j is ``z_j + m_j sqrt(w)``, ``sqrt(w)`` of unit norm and orthogonal to every
    ``z_j``); constant units keep their mean.

    Args:
      x: (N, D) activations.
      w: (N,) normalised sample weights.

    Returns:
      ``(z (N, D), m (D,), live (D,) bool)``; ``live``: the non-constant units (the
      others' columns of ``z`` are exactly zero).

    References: Hotelling 1936 (sample covariance of centred data).
    """
    valid = w > 0
    v = valid[:, None]
    x = jnp.where(v, x.astype(w.dtype), 0)  # padding rows: any value (inf, NaN) -> 0
    hi = jnp.max(jnp.where(v, x, -jnp.inf), axis=0)
    lo = jnp.min(jnp.where(v, x, jnp.inf), axis=0)
    live = hi > lo
    mu = w @ x
    spread = jnp.max(jnp.where(live, jnp.maximum(hi - mu, mu - lo), 0))
    absmax = jnp.max(jnp.abs(x))
    wmax = jnp.max(w)
    scale = jnp.where(spread > 0, spread, jnp.maximum(absmax, 1e-30))
    scale = scale * jnp.sqrt(jnp.where(wmax > 0, wmax, 1))
    z = jnp.where(v & live, (x - mu) * (jnp.sqrt(w) / scale)[:, None], 0)  # max|z| <= 1
    return z, mu / scale, live


def prepare_parts(x, w) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The view ``z: (N, D)`` and unit means ``m: (D,)`` of :func:`prepare_live`."""
    z, m, _ = prepare_live(x, w)
    return z, m


def prepare(x, w) -> jnp.ndarray:
    """The view ``z: (N, D)`` of :func:`prepare_live` (weighted-centred and rescaled)."""
    return prepare_live(x, w)[0]


def rank_tol(size: int, dtype) -> float:
    """Relative singular-value tolerance ``size * eps`` (scale-free, dtype-aware)."""
    return float(size * jnp.finfo(dtype).eps)


def basis_tol(size: int, dtype) -> float:
    """Rank tolerance of a basis: ``min(size * eps, 5e-7)`` relative to ``s_0``.

    ``size * eps`` in float64; capped at 5e-7 so that float32 views of condition
    number up to 2e6 keep every direction (a larger tolerance drops real directions
    and moves PWCCA by 1e-2 at condition number 1e6).
    """
    return min(rank_tol(size, dtype), 5e-7)


# Tiers of the Gram method by the smallest kept eigenvalue ratio lam_k / lam_0 of the
# float32 Gram (measured against float64 references, errors in correlations):
#   > 1e-3 (condition number < 32): basis z V S^-1 never formed (error eps cond^2 < 1e-4)
#   > 1e-5 (< 316): that basis formed, one float32 Cholesky QR step (implicit R^-1;
#          error ~ eps cond from float32 centring, < 4e-5)
#   else: float64 Gram + CholeskyQR (error < 1e-6 up to condition number 1e6)
GRAM_TIERS = (1e-3, 1e-5)


class Basis(NamedTuple):
    """Orthonormal basis ``q = a @ w`` of a view's column space, padded to width K.

    The basis is kept as a product so that the Gram route never forms it: for
    ``method="gram"`` ``a`` is the view itself and ``w = V S^{-1}`` (so a pair's
    ``q_x^T q_y = w_x^T (a_x^T a_y) w_y``: one GEMM of the views plus D x D work);
    for ``method="svd"`` (and the Gram method's fallback) ``a = U`` and ``w = I``.

    Attributes:
      a: (N, A) left factor (the view or its singular vectors).
      w: (A, K) right factor; columns outside ``mask`` are exactly zero.
      s: (K,) singular values of the view in descending order (0 outside ``mask``).
      load: (K, D) coordinates of the units in the basis, ``q^T z``.
      mask: (K,) bool, the kept directions (a prefix).
    """

    a: jnp.ndarray
    w: jnp.ndarray
    s: jnp.ndarray
    load: jnp.ndarray
    mask: jnp.ndarray

    @property
    def q(self) -> jnp.ndarray:
        """(N, K) the orthonormal basis itself (formed on demand)."""
        return self.a @ self.w


def cross(fx: Basis, fy: Basis) -> jnp.ndarray:
    """``q_x^T q_y: (Kx, Ky)`` from two bases: one ``N``-long GEMM plus D x D products."""
    return fx.w.T @ (fx.a.T @ fy.a) @ fy.w


def _variance_mask(s, valid, keep: float | None):
    if keep is None or keep >= 1.0:
        return valid
    var = s * s
    total = jnp.sum(var)
    before = jnp.cumsum(var) - var
    first = jnp.arange(s.shape[0]) == 0
    return valid & ((before < keep * total) | first)


def in_float64(fn):
    """``fn`` traced under ``jax.enable_x64(True)``, also when batched by ``vmap``.

    For the few float64 steps of a float32 computation (the inputs are float32 data
    whose small directions float32 arithmetic cannot resolve). ``fn`` must return
    arrays of the caller's dtypes. A ``custom_vmap`` rule re-enters the x64 context
    when batching (plain batching would run float64 rules with x64 disabled).
    """

    @jax.custom_batching.custom_vmap
    def seg(*args):
        with jax.enable_x64(True):
            return fn(*args)

    @seg.def_vmap
    def _rule(axis_size, in_batched, *args):
        args = [
            a if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a)))
            for a, b in zip(args, in_batched)
        ]
        with jax.enable_x64(True):
            out = jax.vmap(fn)(*args)
        return out, jax.tree.map(lambda _: True, out)

    return seg


def _float64(x, w):
    """``x`` and ``w`` in float64 (call under ``jax.enable_x64``), ``w`` re-normalised:
    float32 weights sum to 1 only to ~1e-7, which would leave that fraction of the
    mean in every column (a rank-one error that swamps directions below ~1e-5)."""
    w = jnp.asarray(w).astype(jnp.float64)
    total = jnp.sum(w)
    return jnp.asarray(x).astype(jnp.float64), w / jnp.where(total > 0, total, 1)


def _cast(basis: Basis, dtype) -> Basis:
    return Basis(*(t if t.dtype == bool else t.astype(dtype) for t in basis))


def basis_svd(x, w, keep: float | None = None) -> Basis:
    """Basis by a thin SVD of the centred view, in float64; width ``K = min(N, D)``.

    The view is prepared (:func:`prepare`) and decomposed in float64 (a float32 SVD
    or even float32 centring perturbs a direction of relative singular value ``r`` by
    ~``eps / r``: 5e-3 in the correlations at condition number 1e6), then stored
    in the input's dtype. Directions with ``s_i <= s_0 * basis_tol`` are dropped
    (numerical rank), and with ``keep`` only the smallest prefix explaining ``keep``
    of the variance. O(N D min(N, D)) in float64.

    Args:
      x: (N, D) activations; w: (N,) normalised weights; keep: variance fraction.

    References: Raghu et al. 2017, SVCCA, Sec. 2 (SVD step); Golub & Van Loan 8.6.
    """
    n, d = x.shape
    dtype = w.dtype

    def run(x, w):
        z = prepare(*_float64(x, w))
        u, s, vt = jnp.linalg.svd(z, full_matrices=False)
        valid = s > s[0] * basis_tol(max(n, d), dtype)
        mask = _variance_mask(s, valid, keep)
        s = jnp.where(mask, s, 0)
        eye = jnp.eye(s.shape[0], dtype=z.dtype)
        return _cast(Basis(u, eye * mask, s, s[:, None] * vt, mask), dtype)

    return in_float64(run)(x, w)


def _basis_precise(x, w, keep: float | None) -> Basis:
    """The Gram method's fallback: float64 Gram, eigenvectors, one CholeskyQR pass.

    ``q1 = z V S^{-1}`` is orthonormal to ``eps64 * cond^2`` (1e-4 at 1e6); one
    Cholesky QR (``q = q1 R^{-1}``, ``R^T R = q1^T q1``, upper triangular so every
    prefix keeps its span) makes it orthonormal to working precision. O(N D^2) GEMMs
    in float64; the result is stored in the input's dtype.

    References: Fukaya et al. 2014 (CholeskyQR2, Alg. 2); Golub & Van Loan 8.6.
    """
    n, d = x.shape
    dtype = w.dtype

    def run(x, w):
        z = prepare(*_float64(x, w))
        lam, v = jnp.linalg.eigh(z.T @ z)
        lam, v = jnp.maximum(lam[::-1], 0), v[:, ::-1]
        s = jnp.sqrt(lam)
        # a float64 Gram resolves singular values down to ~sqrt(D eps64) s_0 (2e-7)
        tol = max(basis_tol(max(n, d), dtype), float(np.sqrt(d * np.finfo(np.float64).eps)))
        mask = _variance_mask(s, s > s[0] * tol, keep)
        mf = mask.astype(z.dtype)
        q1 = z @ (v * jnp.where(mask, 1 / jnp.where(mask, s, 1), 0))
        r = jnp.linalg.cholesky(q1.T @ q1 + jnp.diag(1 - mf)).T  # upper, R^T R
        # q = q1 R^-1 through the small inverse (R is near I, so as exact as a solve): a
        # GEMM, row-major like every other branch of basis_gram's switch (a transposed
        # solve made XLA lay all branches' bases out column-major: two 8 MB transposing
        # copies per factor even when this branch is not taken)
        rinv = jax.scipy.linalg.solve_triangular(r, jnp.eye(d, dtype=z.dtype), lower=False)
        q = q1 @ (rinv * mf)
        s = jnp.where(mask, s, 0)
        eye = jnp.eye(d, dtype=z.dtype)
        return _cast(Basis(q, eye * mask, s, q.T @ z, mask), dtype)

    return in_float64(run)(x, w)


def basis_gram(x, w, keep: float | None = None) -> Basis:
    """Basis from the ``D x D`` Gram ``z^T z``, as exact as the SVD, in three tiers.

    Eigendecompose the float32 ``G = z^T z = V diag(lam) V^T`` (O(N D^2) + O(D^3));
    by the smallest kept eigenvalue ratio (all non-dead directions for ``keep=None``,
    the variance prefix otherwise; see ``GRAM_TIERS``):

    1. ``> 1e-3``: the basis ``z V_k lam_k^{-1/2}`` is never formed (``a = z``,
       ``w = V_k lam_k^{-1/2}``; a pair costs one GEMM of the two views);
    2. ``> 1e-5``: it is formed (``a = z W``, orthonormal to ``eps cond^2``) and made
       orthonormal by one float32 Cholesky QR step kept implicit (``w = R^{-1}``);
    3. else :func:`_basis_precise` (float64 Gram; for float64 views :func:`basis_svd`).

    (``lax.switch``; under ``vmap`` all tiers run.) Values agree with the float64
    reference to ~1e-5 in every tier up to condition number 1e6, so "gram" and "svd"
    give the same values. For ``N < D`` it is :func:`basis_svd` (static choice).

    Args:
      x: (N, D) activations; w: (N,) normalised weights; keep: variance fraction.

    References: Golub & Van Loan 8.6 (SVD via the Gram); Fukaya et al. 2014
    (CholeskyQR2); Raghu et al. 2017, Sec. 2.
    """
    n, d = x.shape
    if n < d:
        return basis_svd(x, w, keep)
    z, _, live = prepare_live(x, w)
    g = z.T @ z
    lam, v = jnp.linalg.eigh(g)
    lam, v = jnp.maximum(lam[::-1], 0), v[:, ::-1]
    s = jnp.sqrt(lam)
    dead = d - jnp.sum(live)  # exactly zero columns: exact null directions
    mask = _variance_mask(s, jnp.arange(d) < d - dead, keep)
    ratio = lam[jnp.maximum(jnp.sum(mask), 1) - 1] / jnp.where(lam[0] > 0, lam[0], 1)
    tier = jnp.where(ratio > GRAM_TIERS[0], 0, jnp.where(ratio > GRAM_TIERS[1], 1, 2))
    sm = jnp.where(mask, s, 0)
    mf = mask.astype(z.dtype)
    wv = v * jnp.where(mask, 1 / jnp.where(mask, s, 1), 0)

    def implicit(_):
        return Basis(z, wv, sm, sm[:, None] * v.T, mask)

    def cholqr(_):
        q1 = z @ wv  # orthonormal to eps cond^2: one Cholesky QR step, kept implicit
        r = jnp.linalg.cholesky(q1.T @ q1 + jnp.diag(1 - mf)).T  # upper, R^T R
        rinv = jax.scipy.linalg.solve_triangular(r, jnp.eye(d, dtype=z.dtype), lower=False)
        load = rinv.T @ (wv.T @ g)  # q^T z = R^-T W^T G
        return Basis(q1, rinv * mf, sm, load * mf[:, None], mask)

    # float32 views fall back to a float64 Gram; float64 views (x64) to the float64 SVD
    precise = _basis_precise if w.dtype == jnp.float32 else basis_svd
    return jax.lax.switch(tier, [implicit, cholqr, lambda _: precise(x, w, keep)], None)


def make_basis(x, w, keep: float | None, method: str) -> Basis:
    """Dispatch on ``method`` in {"svd", "gram"}; see :func:`basis_svd`, :func:`basis_gram`."""
    if method == "svd":
        return basis_svd(x, w, keep)
    if method == "gram":
        return basis_gram(x, w, keep)
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
