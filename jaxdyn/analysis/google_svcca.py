"""google/svcca conventions: its CCA summary ("mean") and its PWCCA (``compute_pwcca``).

Nearly every published SVCCA/PWCCA number was computed with google/svcca's
``cca_core.get_cca_similarity`` and ``pwcca.compute_pwcca``. Their PWCCA differs from
the definition in Morcos et al. 2018 (jaxdyn's default, ``convention="paper"``):

============================  =====================================================
``convention="paper"``        ``convention="google"`` (``compute_pwcca(x.T, y.T)``)
============================  =====================================================
weights from the FIRST view   weights from the view with fewer (kept) units; the
                              first on a tie
directions: canonical         directions: ``d_i = Xc u_i + mu_i 1``, ``u_i`` the
variates ``h_i = Xc          singular vectors of ``Sxx^-1/2 Sxy Syy^-1/2``
Sxx^-1/2 u_i / ||.||``        (no whitening), ``mu_i`` the mean of the i-th kept
(orthogonal by construction)  unit added to the i-th direction; ``p_i`` = the
                              Gram-Schmidt (QR) basis of ``d_1, d_2, ...`` in order
``alpha_i = sum_j |<h_i,      ``alpha_i = sum_j |<p_i, x_j>|`` over the UNCENTRED
x~_j>|`` over centred units   units ``x_j``
value ``sum_i alpha_i rho_i / sum_i alpha_i`` in both, over ``min(kx, ky)`` pairs
============================  =====================================================

google's code crashes (IndexError) whenever the first argument has more kept units
than the second: its second branch indexes ``acts1`` with the second view's unit mask
(google/svcca PR #9). ``convention="google"`` follows the evident intent there (the
second view's activations and means). Where the first view has more kept units but
both views have the same width (``epsilon`` cropping), google's code runs on the
wrong view's activations; jaxdyn follows the intent there too (the one case where it
does not reproduce google's output). Values depend on the sign of each singular
vector (the mean is added to ``u_i``, not to ``-u_i``; flipping LAPACK's choice moves
the value by up to ~0.01). So jaxdyn takes that SVD exactly as google does: the
cropped ``Sxx^-1/2 Sxy Syy^-1/2`` in unit coordinates, in float64 by NumPy's
``np.linalg.svd`` on the host (:func:`numpy_svd_cropped`, a ``jax.pure_callback``;
XLA's float32 SVD picks other signs). Everything else runs in jax.

References: Raghu et al. 2017 (SVCCA); Morcos, Raghu & Bengio 2018, Sec. 2.2 (PWCCA,
Eq. 1); google/svcca ``cca_core.py``, ``pwcca.py`` (behaviour re-derived, not copied).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis._linalg import (
    in_float64,
    prepare_parts,
    psd_inv_sqrt,
    rank_tol,
    singular_values,
)


class GoogleFactor(NamedTuple):
    """google/svcca's whitening ``T = A^{-1/2} / sqrt(max|S|)`` of a view ``z``.

    ``A = S / max|S|`` (``S = z^T z``) with units of rescaled variance ``< epsilon``
    masked out and ``epsilon`` added to the kept diagonal, so ``Tx^T (zx^T zy) Ty`` is
    google's ``invsqrt_xx sigma_xy invsqrt_yy`` (the covariance route google takes;
    the whitened view ``z T`` is never formed). For PWCCA also:

    Attributes:
      z: (N, D) the centred, rescaled view (:func:`~jaxdyn.analysis._linalg.prepare`).
      t: (D, D) the whitening.
      l: (D, D) symmetric square root of ``S`` over the kept units (``l^T l = S``).
      mean: (D,) unit means in the units of ``z`` (constant units included).
      keep: (D,) bool, the units google keeps (``|A_jj| >= epsilon``).
    """

    z: jnp.ndarray
    t: jnp.ndarray
    l: jnp.ndarray
    mean: jnp.ndarray
    keep: jnp.ndarray

    @property
    def w(self) -> jnp.ndarray:
        """(N, D) the whitened view ``z T`` (formed on demand)."""
        return self.z @ self.t


def _whitened_cross(fx: GoogleFactor, fy: GoogleFactor) -> jnp.ndarray:
    return fx.t.T @ (fx.z.T @ fy.z) @ fy.t


def _psd_sqrt(a):
    lam, v = jnp.linalg.eigh(a)
    return (v * jnp.sqrt(jnp.maximum(lam, 0))) @ v.T


def _google_whitening(s, epsilon: float):
    """``(A^{-1/2} / sqrt(max|S|), keep, max|S|)`` for a co-moment ``s: (D, D)``."""
    smax = jnp.max(jnp.abs(s))
    smax = jnp.where(smax > 0, smax, 1)
    a = s / smax
    keep = jnp.diagonal(a) >= epsilon
    keep = keep & (jnp.diagonal(a) > 0) if epsilon == 0 else keep
    km = keep.astype(a.dtype)
    a = a * km[:, None] * km[None, :]
    inv = psd_inv_sqrt(a + jnp.diag(epsilon * km), rank_tol(a.shape[0], a.dtype))
    return inv / jnp.sqrt(smax), a, keep, smax


def google_factor(x, w, epsilon: float = 0.0) -> GoogleFactor:
    """Per-view factor reproducing google/svcca ``get_cca_similarity`` (without cropping).

    Covariance ``S = z^T z`` is divided by ``max|S|``; units with rescaled variance
    ``< epsilon`` are masked out (google crops them); ``epsilon`` is added to the
    kept diagonal; the inverse square root clips negative eigenvalues to 0.

    Args:
      x: (N, D); w: (N,) normalised weights; epsilon: google's ``epsilon``.

    Returns:
      GoogleFactor with z: (N, D), t: (D, D), l: (D, D), mean: (D,), keep: (D,).

    References: Raghu et al. 2017 (google/svcca cca_core.get_cca_similarity).
    """
    z, mean = prepare_parts(x, w)
    inv, a, keep, smax = _google_whitening(z.T @ z, epsilon)
    return GoogleFactor(z, inv, _psd_sqrt(a) * jnp.sqrt(smax), mean, keep)


def google_summary_from_rho(rho, threshold: float):
    """google/svcca's "mean": mean of ``rho[:i]``, i the first index whose preceding
    cumulative sum reaches ``threshold`` of the total (all if never); 0 if total is 0."""
    total = jnp.sum(rho)
    before = jnp.cumsum(rho) - rho
    take = before < threshold * total
    n = jnp.sum(take)
    return jnp.where(total > 0, jnp.sum(jnp.where(take, rho, 0)) / jnp.maximum(n, 1), 0)


def google_pair(fx: GoogleFactor, fy: GoogleFactor, threshold: float = 0.98):
    """google/svcca summary from two whitened factors."""
    rho = singular_values(_whitened_cross(fx, fy), min(fx.t.shape[1], fy.t.shape[1]))
    return google_summary_from_rho(rho, threshold)


def _google_weights(dirs, k, l, mean, keep):
    """google's projection weights ``alpha: (m,)`` of ``k`` directions (a prefix).

    ``dirs: (D, m)`` unit-space directions ``u_i``; the i-th gets the mean of the i-th
    kept unit. With ``l^T l = S`` (``z = Q l``, ``Q`` orthonormal, and the constant
    vector ``1`` orthogonal to ``Q``), ``d_i = Q l u_i + mu_i 1`` has coordinates
    ``[l u_i; mu_i]`` in the orthonormal ``[Q, 1]`` and the uncentred units
    ``x_j = Q l e_j + mean_j 1`` have ``[l e_j; mean_j]``: the Gram-Schmidt basis of
    the ``d_i`` (a small Householder QR) and its projections on the units are D x D.
    """
    d, m = dirs.shape
    km = keep.astype(dirs.dtype)
    order = jnp.argsort(~keep, stable=True)  # kept units first, in order
    mu = mean[order]
    mu = jnp.concatenate([mu, jnp.zeros((max(m - d, 0),), mu.dtype)])[:m]
    cm = (jnp.arange(m) < k).astype(dirs.dtype)
    coords = jnp.concatenate([l @ (dirs * km[:, None]), mu[None, :]], axis=0) * cm[None, :]
    qs, _ = jnp.linalg.qr(coords)  # (D + 1, m); directions are a prefix, so exact
    units = jnp.concatenate([l, mean[None, :]], axis=0) * km[None, :]
    alpha = jnp.sum(jnp.abs(qs.T @ units), axis=1) * cm
    total = jnp.sum(alpha)
    return alpha / jnp.where(total > 0, total, 1)


def _host_svd(arr, keep_x, keep_y):
    arr = np.asarray(arr)
    dx, dy = arr.shape[-2:]
    m = min(dx, dy)
    # float32 out whatever the x64 setting of the callback's thread (jax would
    # canonicalise float64 results there and then reject them)
    u = np.zeros((*arr.shape[:-2], dx, m), np.float32)
    s = np.zeros((*arr.shape[:-2], m), np.float32)
    vt = np.zeros((*arr.shape[:-2], m, dy), np.float32)
    for idx in np.ndindex(*arr.shape[:-2]):
        kx, ky = np.asarray(keep_x[idx], bool), np.asarray(keep_y[idx], bool)
        if not kx.any() or not ky.any() or (kx.all() and ky.all()):
            continue  # nothing cropped: the float64 SVD in jax is used (same signs)
        uc, sc, vc = np.linalg.svd(np.asarray(arr[idx], np.float64)[kx][:, ky])
        rx, ry = np.flatnonzero(kx), np.flatnonzero(ky)
        a, b = min(uc.shape[1], m), min(vc.shape[0], m)
        u[idx][rx[:, None], np.arange(a)[None, :]] = uc[:, :a]
        vt[idx][np.arange(b)[:, None], ry[None, :]] = vc[:b]
        s[idx][: sc.size] = sc
    return u, s, vt


def numpy_svd_cropped(arr, keep_x, keep_y):
    """SVD of ``arr[keep_x][:, keep_y]`` in float64 as google computes it, fixed shape.

    google/svcca's PWCCA depends on the signs LAPACK gives the singular vectors of
    exactly this cropped matrix. When no unit is cropped, jax's float64 ``gesdd``
    (which picks NumPy's signs) is used; otherwise NumPy on the host (a callback, which
    returns at once when nothing is cropped; under ``vmap`` it loops).

    Args:
      arr: (Dx, Dy); keep_x: (Dx,) bool; keep_y: (Dy,) bool.

    Returns:
      ``u (Dx, m)``, ``s (m,)``, ``vt (m, Dy)`` with ``m = min(Dx, Dy)``; zero rows /
      columns at cropped units and beyond the cropped sizes; float32 precision (the
      callback returns float32 whatever the x64 setting), cast to ``arr.dtype``.
    """
    dx, dy = arr.shape
    m = min(dx, dy)
    shapes = (
        jax.ShapeDtypeStruct((dx, m), np.float32),
        jax.ShapeDtypeStruct((m,), np.float32),
        jax.ShapeDtypeStruct((m, dy), np.float32),
    )
    out = jax.pure_callback(_host_svd, shapes, arr, keep_x, keep_y, vmap_method="expand_dims")
    full = jnp.all(keep_x) & jnp.all(keep_y)
    mine = in_float64(_svd_float64)(arr)
    return tuple(jnp.where(full, a, b.astype(arr.dtype)) for a, b in zip(mine, out))


def _svd_float64(arr):
    u, s, vt = jnp.linalg.svd(arr.astype(jnp.float64), full_matrices=False)
    return tuple(a.astype(arr.dtype) for a in (u, s, vt))


def google_pwcca_from_svd(u, s, vt, kx, ky, lx, ly, mean_x, mean_y, keep_x, keep_y):
    """google PWCCA from the SVD ``u s vt`` of ``Sxx^-1/2 Sxy Syy^-1/2`` in unit space.

    Args:
      u: (Dx, m); s: (m,); vt: (m, Dy) (``m = min(Dx, Dy)``); kx, ky: kept unit counts;
      lx: (Dx, Dx), ly: (Dy, Dy) square roots of the co-moments; mean_x, mean_y; keep_x,
      keep_y: (D,) bool.

    Returns:
      () scalar: ``sum_i alpha_i rho_i`` with weights from the view with fewer kept units.
    """
    rho = jnp.clip(s, 0, 1)
    ax = _google_weights(u, kx, lx, mean_x, keep_x)
    ay = _google_weights(vt.T, ky, ly, mean_y, keep_y)
    alpha = jnp.where(kx <= ky, ax, ay)
    return jnp.sum(alpha * rho)


def google_pwcca_pair(fx: GoogleFactor, fy: GoogleFactor):
    """google/svcca ``compute_pwcca`` from two factors (weights from the narrower view)."""
    u, s, vt = numpy_svd_cropped(_whitened_cross(fx, fy), fx.keep, fy.keep)
    kx, ky = jnp.sum(fx.keep), jnp.sum(fy.keep)
    return google_pwcca_from_svd(u, s, vt, kx, ky, fx.l, fy.l, fx.mean, fy.mean, fx.keep, fy.keep)


def google_moments_pwcca(cxx, cyy, cxy, mean_x, mean_y, count, epsilon: float):
    """google PWCCA from weighted co-moments about the mean (streaming finaliser).

    Args:
      cxx: (Dx, Dx); cyy: (Dy, Dy); cxy: (Dx, Dy) co-moments; mean_x: (Dx,);
      mean_y: (Dy,); count: () total weight; epsilon: google's ``epsilon``.

    Returns:
      () scalar.
    """
    tx, ax, keep_x, sx = _google_whitening(cxx, epsilon)
    ty, ay, keep_y, sy = _google_whitening(cyy, epsilon)
    u, s, vt = numpy_svd_cropped(tx.T @ cxy @ ty, keep_x, keep_y)
    # units of sqrt(co-moment): the constant vector has squared norm ``count``
    root = jnp.sqrt(jnp.maximum(count, 0))
    lx, ly = _psd_sqrt(ax) * jnp.sqrt(sx), _psd_sqrt(ay) * jnp.sqrt(sy)
    kx, ky = jnp.sum(keep_x), jnp.sum(keep_y)
    return google_pwcca_from_svd(
        u, s, vt, kx, ky, lx, ly, mean_x * root, mean_y * root, keep_x, keep_y
    )
