"""CCA-family representation similarity: CCA, SVCCA, PWCCA and google/svcca's summary.

All kernels take one pair ``x: (N, Dx)``, ``y: (N, Dy)`` (samples first), an optional
per-sample ``weights: (N,)`` (a 0/1 vector is a mask for padded token sets), and are
jitted with static configuration. Each kernel is ``pair(factor(x), factor(y))``: the
per-view factor (an orthonormal basis of the centred view, or a whitened view)
is what :func:`jaxdyn.analysis.pairwise.pairwise` computes once per matrix and reuses
across all pairs. Canonical correlations are the singular values of ``Qx^T Qy``
(Bjoerck & Golub 1973), never an explicit covariance inverse, except in
:func:`google_cca_summary`, which reproduces google/svcca on purpose.

Streaming: :func:`cca_accumulate_init` / ``_update`` / ``_finalize`` accumulate
means and co-moments (Chan et al. 1979 pairwise update) so that the activations of
a trajectory never need to sit in memory at once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.analysis._linalg import (
    Basis,
    check_pair,
    float_dtype,
    make_basis,
    prepare,
    psd_inv_sqrt,
    rank_tol,
    sample_weights,
    singular_values,
)

# ----------------------------------------------------------------------------- factors


def cca_factor(x, w, keep: float | None = None, method: str = "svd") -> Basis:
    """Per-view factor for CCA/SVCCA/PWCCA: orthonormal basis of the centred view.

    Args:
      x: (N, D) activations.
      w: (N,) normalised sample weights (see ``_linalg.sample_weights``).
      keep: variance fraction for the SVD step (None: all numerically non-zero).
      method: "svd" (thin SVD, O(N D min(N,D)), most accurate) or "gram"
        (D x D eigendecomposition + CholeskyQR2, for N >> D).

    Returns:
      Basis with q: (N, K), s: (K,), load: (K, D), mask: (K,).

    References: Raghu et al. 2017, SVCCA, Sec. 2 step 1.
    """
    return make_basis(prepare(x, w), keep, method)


def _correlations(fx: Basis, fy: Basis):
    m = fx.q.T @ fy.q
    kmax = min(m.shape)
    rho = singular_values(m, kmax)
    count = jnp.minimum(jnp.sum(fx.mask), jnp.sum(fy.mask))
    return rho, jnp.arange(kmax) < count, count


def cca_pair(fx: Basis, fy: Basis):
    """Canonical correlations ``(min(Dx, Dy),)`` from two factors; 0 beyond the rank."""
    rho, valid, _ = _correlations(fx, fy)
    k = min(fx.load.shape[1], fy.load.shape[1])
    rho = jnp.where(valid, rho, 0)
    if rho.shape[0] >= k:
        return rho[:k]
    return jnp.concatenate([rho, jnp.zeros((k - rho.shape[0],), rho.dtype)])


def svcca_pair(fx: Basis, fy: Basis):
    """Mean of the ``min(kx, ky)`` canonical correlations of the kept subspaces (0 if none)."""
    rho, valid, count = _correlations(fx, fy)
    return jnp.sum(jnp.where(valid, rho, 0)) / jnp.maximum(count, 1)


def pwcca_pair(fx: Basis, fy: Basis):
    """Projection-weighted mean correlation, weights from the FIRST view ``fx``.

    ``alpha_i = sum_j |<h_i, x_j>|`` with ``h_i = Qx u_i`` the unit-norm canonical
    variates of x and ``x_j`` its centred units (``Qx^T x_j`` = column j of
    ``fx.load``), normalised over the ``min(kx, ky)`` valid pairs.
    """
    m = fx.q.T @ fy.q
    u, s, _ = jnp.linalg.svd(m, full_matrices=False)
    rho = jnp.clip(s, 0, 1)
    count = jnp.minimum(jnp.sum(fx.mask), jnp.sum(fy.mask))
    valid = jnp.arange(rho.shape[0]) < count
    alpha = jnp.where(valid, jnp.sum(jnp.abs(u.T @ fx.load), axis=1), 0)
    total = jnp.sum(alpha)
    return jnp.sum(alpha * rho) / jnp.where(total > 0, total, 1)


class GoogleFactor(NamedTuple):
    """Whitened view ``W = z Sxx_reg^{-1/2} / sqrt(max|Sxx|)`` of google/svcca's CCA.

    Attributes:
      w: (N, D); ``Wx^T Wy`` is google's ``invsqrt_xx sigma_xy invsqrt_yy``.
    """

    w: jnp.ndarray


def google_factor(x, w, epsilon: float = 0.0) -> GoogleFactor:
    """Per-view factor reproducing google/svcca ``get_cca_similarity`` (without cropping).

    Covariance ``S = z^T z`` is divided by ``max|S|``; units with rescaled variance
    ``< epsilon`` are masked out (google crops them); ``epsilon`` is added to the
    kept diagonal; the inverse square root clips negative eigenvalues to 0.

    Args:
      x: (N, D); w: (N,) normalised weights; epsilon: google's ``epsilon``.

    Returns:
      GoogleFactor with w: (N, D).

    References: Raghu et al. 2017 (google/svcca cca_core.get_cca_similarity).
    """
    z = prepare(x, w)
    s = z.T @ z
    smax = jnp.max(jnp.abs(s))
    a = s / jnp.where(smax > 0, smax, 1)
    keep = jnp.diagonal(a) >= epsilon
    keep = keep & (jnp.diagonal(a) > 0) if epsilon == 0 else keep
    km = keep.astype(a.dtype)
    a = a * km[:, None] * km[None, :] + jnp.diag(epsilon * km)
    inv = psd_inv_sqrt(a, rank_tol(a.shape[0], a.dtype))
    return GoogleFactor((z @ inv) / jnp.sqrt(jnp.where(smax > 0, smax, 1)))


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
    rho = singular_values(fx.w.T @ fy.w, min(fx.w.shape[1], fy.w.shape[1]))
    return google_summary_from_rho(rho, threshold)


# ----------------------------------------------------------------------------- kernels


def _check_keep(keep, name):
    if keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"{name}: keep must be in (0, 1], got {keep}")


def _check_google(epsilon, threshold, name):
    if not epsilon >= 0 or not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"{name}: need epsilon >= 0 and 0 < threshold <= 1, got {epsilon}, {threshold}"
        )


@functools.partial(jax.jit, static_argnames=("method",))
def cca(x, y, *, weights=None, method: str = "svd"):
    """All canonical correlations of a pair, descending.

    Centres each view (weighted), takes an orthonormal basis of each column space
    (directions below a scale-free rank tolerance dropped), and returns the
    singular values of ``Qx^T Qy``. Correlations beyond the numerical rank are 0.

    Args:
      x: (N, Dx); y: (N, Dy); weights: optional (N,) sample weights / 0-1 mask.
      method: "svd" or "gram" (see :func:`cca_factor`).

    Returns:
      (min(Dx, Dy),) canonical correlations in [0, 1].

    References: Hotelling 1936; Bjoerck & Golub 1973, Sec. 3 (Eq. 3.5, SVD of Qx^T Qy).
    """
    check_pair(x, y, "cca")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return cca_pair(cca_factor(x, w, None, method), cca_factor(y, w, None, method))


@functools.partial(jax.jit, static_argnames=("keep", "method"))
def svcca(x, y, keep: float = 0.99, *, weights=None, method: str = "svd"):
    """SVCCA similarity (symmetric).

    SVD of each centred view, keeping the smallest number of directions explaining
    ``keep`` of its variance, then CCA of the reduced views, then the mean of the
    ``min(kx, ky)`` canonical correlations.

    Args:
      x: (N, Dx); y: (N, Dy); keep: variance fraction in (0, 1];
      weights: optional (N,); method: "svd" or "gram".

    Returns:
      () scalar in [0, 1].

    References: Raghu et al. 2017, SVCCA, Sec. 2 (steps 1-3).
    """
    check_pair(x, y, "svcca")
    _check_keep(keep, "svcca")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return svcca_pair(cca_factor(x, w, keep, method), cca_factor(y, w, keep, method))


@functools.partial(jax.jit, static_argnames=("keep", "method"))
def pwcca(x, y, keep: float | None = None, *, weights=None, method: str = "svd"):
    """Projection-weighted CCA (PWCCA). Asymmetric: ``pwcca(x, y) != pwcca(y, x)``.

    Weights are computed on the FIRST argument, as in Morcos et al. (the layer
    whose representation is being explained): ``alpha_i = sum_j |<h_i, x_j>|`` over
    the canonical variates ``h_i`` of x and units ``x_j``, normalised; the
    similarity is ``sum_i alpha_i rho_i``.

    Args:
      x: (N, Dx); y: (N, Dy); keep: optional SVD variance fraction (None: CCA on
      the full numerical rank, as in the paper); weights: optional (N,); method.

    Returns:
      () scalar in [0, 1].

    References: Morcos, Raghu & Bengio 2018, Sec. 2.2 (Eq. 1, projection weighting).
    """
    check_pair(x, y, "pwcca")
    _check_keep(keep, "pwcca")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return pwcca_pair(cca_factor(x, w, keep, method), cca_factor(y, w, keep, method))


@functools.partial(jax.jit, static_argnames=("epsilon", "threshold"))
def google_cca_summary(x, y, *, epsilon: float = 0.0, threshold: float = 0.98, weights=None):
    """google/svcca ``get_cca_similarity(...)["mean"][0]`` on samples-first inputs.

    Reproduces its algorithm (covariance divided by its largest magnitude,
    ``epsilon`` added to the diagonal, inverse square roots, SVD, then the mean of
    the correlations up to ``threshold`` of their cumulative sum) without its bugs:
    near-zero units are masked rather than cropped, negative eigenvalues clipped
    (no NaN), no ``neurons < datapoints`` assertion, and no-signal inputs give 0.

    Args:
      x: (N, Dx); y: (N, Dy) (google's inputs transposed); epsilon >= 0;
      threshold in (0, 1]; weights: optional (N,).

    Returns:
      () scalar.

    References: Raghu et al. 2017; google/svcca ``cca_core.py`` (summary "mean").
    """
    check_pair(x, y, "google_cca_summary")
    _check_google(epsilon, threshold, "google_cca_summary")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return google_pair(google_factor(x, w, epsilon), google_factor(y, w, epsilon), threshold)


# ----------------------------------------------------------------------------- streaming


class CCAState(NamedTuple):
    """Running weighted means and co-moments of a pair (Chan et al. update).

    Attributes:
      count: () total weight; mean_x: (Dx,); mean_y: (Dy,);
      cxx: (Dx, Dx); cyy: (Dy, Dy); cxy: (Dx, Dy) co-moments about the mean.
    """

    count: jnp.ndarray
    mean_x: jnp.ndarray
    mean_y: jnp.ndarray
    cxx: jnp.ndarray
    cyy: jnp.ndarray
    cxy: jnp.ndarray


def cca_accumulate_init(dx: int, dy: int, dtype=jnp.float32) -> CCAState:
    """Empty accumulator for views of widths ``dx`` and ``dy``."""
    z = functools.partial(jnp.zeros, dtype=dtype)
    return CCAState(z(()), z((dx,)), z((dy,)), z((dx, dx)), z((dy, dy)), z((dx, dy)))


@jax.jit
def cca_accumulate_update(state: CCAState, x, y, weights=None) -> CCAState:
    """Merge a batch ``x: (B, Dx)``, ``y: (B, Dy)`` (optional ``weights: (B,)``, e.g. a mask).

    References: Chan, Golub & LeVeque 1979 (pairwise update of co-moments).
    """
    check_pair(x, y, "cca_accumulate_update", min_n=1)
    dt = state.cxx.dtype
    x, y = x.astype(dt), y.astype(dt)
    wb = jnp.ones(x.shape[0], dt) if weights is None else jnp.maximum(weights.astype(dt), 0)
    # rows of weight 0 are padding: any value there (inf, NaN) must not leak (0 * inf)
    x, y = jnp.where((wb > 0)[:, None], x, 0), jnp.where((wb > 0)[:, None], y, 0)
    nb = jnp.sum(wb)
    safe = jnp.where(nb > 0, nb, 1)
    mx, my = wb @ x / safe, wb @ y / safe
    ex, ey = x - mx, y - my
    n = state.count + nb
    f = jnp.where(n > 0, nb / jnp.where(n > 0, n, 1), 0)
    dx, dy = mx - state.mean_x, my - state.mean_y
    g = state.count * f  # na * nb / n
    return CCAState(
        n,
        state.mean_x + f * dx,
        state.mean_y + f * dy,
        state.cxx + (ex * wb[:, None]).T @ ex + g * jnp.outer(dx, dx),
        state.cyy + (ey * wb[:, None]).T @ ey + g * jnp.outer(dy, dy),
        state.cxy + (ex * wb[:, None]).T @ ey + g * jnp.outer(dx, dy),
    )


def _whitener(c, keep):
    d = c.shape[0]
    lam, v = jnp.linalg.eigh(c)
    lam, v = jnp.maximum(lam[::-1], 0), v[:, ::-1]
    mask = lam > lam[0] * rank_tol(d, c.dtype)
    if keep is not None and keep < 1.0:
        before = jnp.cumsum(lam) - lam
        mask = mask & ((before < keep * jnp.sum(lam)) | (jnp.arange(d) == 0))
    return v * jnp.where(mask, 1 / jnp.sqrt(jnp.where(mask, lam, 1)), 0), mask


@functools.partial(jax.jit, static_argnames=("keep", "summary", "epsilon", "threshold"))
def cca_accumulate_finalize(
    state: CCAState,
    *,
    keep: float | None = None,
    summary: str | None = None,
    epsilon: float = 0.0,
    threshold: float = 0.98,
):
    """Canonical correlations (or a summary) from an accumulated covariance.

    Covariance route: eigendecompose each (max-abs rescaled) covariance, whiten the
    kept directions (scale-free tolerance ``D * eps``; use float64 accumulators under
    ``jax.enable_x64(True)`` for ill-conditioned views), SVD of the whitened cross-covariance.

    Args:
      state: accumulated CCAState.
      keep: SVD variance fraction (SVCCA) or None for all directions.
      summary: None -> ``(rho, valid)`` with rho (min(Dx, Dy),) and bool mask;
        "mean" -> mean of the valid correlations (SVCCA when ``keep`` is set);
        "google" -> :func:`google_cca_summary` with ``epsilon``, ``threshold``.

    Returns:
      ``(rho, valid)`` or a () scalar.

    References: Raghu et al. 2017, Sec. 2; Hotelling 1936.
    """
    _check_keep(keep, "cca_accumulate_finalize")
    _check_google(epsilon, threshold, "cca_accumulate_finalize")
    sx = jnp.max(jnp.abs(state.cxx))
    sy = jnp.max(jnp.abs(state.cyy))
    sx, sy = jnp.where(sx > 0, sx, 1), jnp.where(sy > 0, sy, 1)
    cxy = state.cxy / jnp.sqrt(sx) / jnp.sqrt(sy)
    k = min(cxy.shape)
    if summary == "google":
        out = []
        for c, s in ((state.cxx, sx), (state.cyy, sy)):
            a = c / s
            m = (jnp.diagonal(a) >= epsilon) & ((jnp.diagonal(a) > 0) | (epsilon > 0))
            m = m.astype(a.dtype)
            a = a * m[:, None] * m[None, :] + jnp.diag(epsilon * m)
            out.append(psd_inv_sqrt(a, rank_tol(a.shape[0], a.dtype)))
        rho = singular_values(out[0] @ cxy @ out[1], k)
        return google_summary_from_rho(rho, threshold)
    if summary not in (None, "mean"):
        raise ValueError(f"summary must be None, 'mean' or 'google', got {summary!r}")
    wx, mx = _whitener(state.cxx / sx, keep)
    wy, my = _whitener(state.cyy / sy, keep)
    rho = singular_values(wx.T @ cxy @ wy, k)
    count = jnp.minimum(jnp.sum(mx), jnp.sum(my))
    valid = jnp.arange(k) < count
    rho = jnp.where(valid, rho, 0)
    if summary == "mean":
        return jnp.sum(rho) / jnp.maximum(count, 1)
    return rho, valid
