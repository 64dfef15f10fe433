"""CCA-family representation similarity: CCA, SVCCA, PWCCA and google/svcca's summary.

All kernels take one pair ``x: (N, Dx)``, ``y: (N, Dy)`` (samples first), an optional
per-sample ``weights: (N,)`` (a 0/1 vector is a mask for padded token sets), and are
jitted with static configuration. Each kernel is ``pair(factor(x), factor(y))``: the
per-view factor (an orthonormal basis of the centred view, or a whitened view)
is what :func:`jaxdyn.analysis.pairwise.pairwise` computes once per matrix and reuses
across all pairs. Canonical correlations are the singular values of ``Qx^T Qy``
(Bjoerck & Golub 1973), never an explicit covariance inverse, except in
:func:`google_cca_summary`, which reproduces google/svcca on purpose.

Streaming (:func:`cca_accumulate_init` / ``_update`` / ``_finalize``) lives in
:mod:`jaxdyn.analysis.cca_stream`, google/svcca's conventions in
:mod:`jaxdyn.analysis.google_svcca`; both are re-exported here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxdyn.analysis._linalg import (
    Basis,
    check_pair,
    cross,
    float_dtype,
    make_basis,
    sample_weights,
    singular_values,
)
from jaxdyn.analysis._sim_checks import check_convention, check_google, check_keep
from jaxdyn.analysis.cca_stream import (  # re-exported: streaming CCA lives there
    CCAState,
    cca_accumulate_finalize,
    cca_accumulate_init,
    cca_accumulate_update,
)
from jaxdyn.analysis.google_svcca import (  # re-exported: google/svcca conventions
    GoogleFactor,
    google_factor,
    google_pair,
    google_pwcca_pair,
    google_summary_from_rho,
)

__all__ = [
    "CCAState",
    "GoogleFactor",
    "cca",
    "cca_accumulate_finalize",
    "cca_accumulate_init",
    "cca_accumulate_update",
    "cca_factor",
    "cca_pair",
    "google_cca_summary",
    "google_factor",
    "google_pair",
    "google_pwcca_pair",
    "google_summary_from_rho",
    "pwcca",
    "pwcca_pair",
    "svcca",
    "svcca_pair",
]

# ----------------------------------------------------------------------------- factors


def cca_factor(x, w, keep: float | None = None, method: str = "gram") -> Basis:
    """Per-view factor for CCA/SVCCA/PWCCA: orthonormal basis of the centred view.

    Args:
      x: (N, D) activations.
      w: (N,) normalised sample weights (see ``_linalg.sample_weights``).
      keep: variance fraction for the SVD step (None: all numerically non-zero).
      method: "gram" (D x D Gram eigendecomposition, O(N D^2 + D^3); the basis is
        not formed when the kept directions' condition number is below ~32, and
        float32 CholeskyQR or a float64 fallback beyond, chosen by that computed
        number, so both methods give the same values: ``_linalg.basis_gram``) or
        "svd" (float64 thin SVD, O(N D min(N, D))).

    Returns:
      Basis (``q = a @ w``) with a: (N, A), w: (A, K), s: (K,), load: (K, D),
      mask: (K,).

    References: Raghu et al. 2017, SVCCA, Sec. 2 step 1.
    """
    return make_basis(x, w, keep, method)


def _correlations(fx: Basis, fy: Basis, m=None):
    m = cross(fx, fy) if m is None else m
    kmax = min(m.shape)
    rho = singular_values(m, kmax)
    count = jnp.minimum(jnp.sum(fx.mask), jnp.sum(fy.mask))
    return rho, jnp.arange(kmax) < count, count


def cca_pair(fx: Basis, fy: Basis, m=None):
    """Canonical correlations ``(min(Dx, Dy),)`` from two factors; 0 beyond the rank.

    ``m``: optional precomputed ``q_x^T q_y`` (as :func:`~jaxdyn.analysis._linalg.cross`),
    e.g. from a block of cross products; the same for every ``*_pair`` here.
    """
    rho, valid, _ = _correlations(fx, fy, m)
    k = min(fx.load.shape[1], fy.load.shape[1])
    rho = jnp.where(valid, rho, 0)
    if rho.shape[0] >= k:
        return rho[:k]
    return jnp.concatenate([rho, jnp.zeros((k - rho.shape[0],), rho.dtype)])


def svcca_pair(fx: Basis, fy: Basis, m=None):
    """Mean of the ``min(kx, ky)`` canonical correlations of the kept subspaces (0 if none)."""
    rho, valid, count = _correlations(fx, fy, m)
    return jnp.sum(jnp.where(valid, rho, 0)) / jnp.maximum(count, 1)


def pwcca_pair(fx: Basis, fy: Basis, m=None):
    """Projection-weighted mean correlation, weights from the FIRST view ``fx``.

    ``alpha_i = sum_j |<h_i, x_j>|`` with ``h_i = Qx u_i`` the unit-norm canonical
    variates of x and ``x_j`` its centred units (``Qx^T x_j`` = column j of
    ``fx.load``), normalised over the ``min(kx, ky)`` valid pairs.
    """
    m = cross(fx, fy) if m is None else m
    u, s, _ = jnp.linalg.svd(m, full_matrices=False)
    rho = jnp.clip(s, 0, 1)
    count = jnp.minimum(jnp.sum(fx.mask), jnp.sum(fy.mask))
    valid = jnp.arange(rho.shape[0]) < count
    alpha = jnp.where(valid, jnp.sum(jnp.abs(u.T @ fx.load), axis=1), 0)
    total = jnp.sum(alpha)
    return jnp.sum(alpha * rho) / jnp.where(total > 0, total, 1)


# ----------------------------------------------------------------------------- kernels


@functools.partial(jax.jit, static_argnames=("method",))
def cca(x, y, *, weights=None, method: str = "gram"):
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
def svcca(x, y, keep: float = 0.99, *, weights=None, method: str = "gram"):
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
    check_keep(keep, "svcca")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return svcca_pair(cca_factor(x, w, keep, method), cca_factor(y, w, keep, method))


@functools.partial(jax.jit, static_argnames=("keep", "method", "convention", "epsilon"))
def pwcca(
    x,
    y,
    keep: float | None = None,
    *,
    weights=None,
    method: str = "gram",
    convention: str = "paper",
    epsilon: float = 0.0,
):
    """Projection-weighted CCA (PWCCA) in the paper's or google/svcca's convention.

    ``convention="paper"`` (default; Morcos et al.): weights from the FIRST argument
    (the layer being explained), ``alpha_i = sum_j |<h_i, x~_j>|`` over the unit-norm
    canonical variates ``h_i`` of x and its centred units ``x~_j``; asymmetric.

    ``convention="google"``: google/svcca's ``compute_pwcca(x.T, y.T, epsilon)``, the
    code behind nearly all published PWCCA values: directions ``d_i = Xc u_i + mu_i 1``
    (no whitening, the i-th unit mean added), orthonormalised in order (QR),
    ``alpha_i = sum_j |<p_i, x_j>|`` over UNCENTRED units, weights from the view with
    fewer kept units (google's crashing branch follows its evident intent). The two
    conventions differ by ~0.01 on tanh activations and by much more when the views'
    widths differ (see :mod:`jaxdyn.analysis.google_svcca` for both formulas).

    Both give ``sum_i alpha_i rho_i`` with ``sum_i alpha_i = 1`` over ``min(kx, ky)``.

    Args:
      x: (N, Dx); y: (N, Dy); keep: optional SVD variance fraction (None: CCA on
      the full numerical rank, as in the paper; must be None for "google");
      weights: optional (N,); method: "svd" or "gram" (paper convention);
      convention: "paper" or "google"; epsilon: google's ``epsilon`` (>= 0).

    Returns:
      () scalar in [0, 1].

    References: Morcos, Raghu & Bengio 2018, Sec. 2.2 (Eq. 1, projection weighting);
    google/svcca ``pwcca.compute_pwcca``.
    """
    check_pair(x, y, "pwcca")
    check_keep(keep, "pwcca")
    check_convention(convention, keep, "pwcca", epsilon)
    check_google(epsilon, 1.0, "pwcca")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    if convention == "google":
        return google_pwcca_pair(google_factor(x, w, epsilon), google_factor(y, w, epsilon))
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
    check_google(epsilon, threshold, "google_cca_summary")
    w = sample_weights(x.shape[0], weights, float_dtype(x, y))
    return google_pair(google_factor(x, w, epsilon), google_factor(y, w, epsilon), threshold)
