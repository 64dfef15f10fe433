"""Streaming CCA: accumulate means and co-moments batch by batch, finalise once.

:func:`cca_accumulate_init` / ``_update`` / ``_finalize`` keep the weighted means and
co-moments of a pair (Chan et al. 1979 pairwise update), so the activations of a
trajectory never need to sit in memory at once. The finaliser gives the canonical
correlations, their mean (SVCCA with ``keep``), google/svcca's summary, or PWCCA in
either convention (see :mod:`jaxdyn.analysis.google_svcca`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.analysis import google_svcca as _google
from jaxdyn.analysis._linalg import check_pair, psd_inv_sqrt, rank_tol, singular_values
from jaxdyn.analysis._sim_checks import check_convention, check_google, check_keep


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


def _google_summary(state, sx, sy, cxy, k, epsilon, threshold):
    out = []
    for c, s in ((state.cxx, sx), (state.cyy, sy)):
        a = c / s
        m = (jnp.diagonal(a) >= epsilon) & ((jnp.diagonal(a) > 0) | (epsilon > 0))
        m = m.astype(a.dtype)
        a = a * m[:, None] * m[None, :] + jnp.diag(epsilon * m)
        out.append(psd_inv_sqrt(a, rank_tol(a.shape[0], a.dtype)))
    rho = singular_values(out[0] @ cxy @ out[1], k)
    return _google.google_summary_from_rho(rho, threshold)


SUMMARIES = (None, "mean", "google", "pwcca")


@functools.partial(
    jax.jit, static_argnames=("keep", "summary", "epsilon", "threshold", "convention")
)
def cca_accumulate_finalize(
    state: CCAState,
    *,
    keep: float | None = None,
    summary: str | None = None,
    epsilon: float = 0.0,
    threshold: float = 0.98,
    convention: str = "paper",
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
        "google" -> :func:`google_cca_summary` with ``epsilon``, ``threshold``;
        "pwcca" -> PWCCA of x given y in ``convention`` "paper" (Morcos et al.,
        weights from x; ``keep`` allowed) or "google" (google/svcca's
        ``compute_pwcca(x.T, y.T, epsilon)``; ``keep`` must be None).

    Returns:
      ``(rho, valid)`` or a () scalar.

    References: Raghu et al. 2017, Sec. 2; Hotelling 1936; Morcos et al. 2018, Eq. 1.
    """
    check_keep(keep, "cca_accumulate_finalize")
    check_google(epsilon, threshold, "cca_accumulate_finalize")
    if summary == "pwcca":
        check_convention(convention, keep, "cca_accumulate_finalize")
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {SUMMARIES}, got {summary!r}")
    sx = jnp.max(jnp.abs(state.cxx))
    sy = jnp.max(jnp.abs(state.cyy))
    sx, sy = jnp.where(sx > 0, sx, 1), jnp.where(sy > 0, sy, 1)
    cxy = state.cxy / jnp.sqrt(sx) / jnp.sqrt(sy)
    k = min(cxy.shape)
    if summary == "google":
        return _google_summary(state, sx, sy, cxy, k, epsilon, threshold)
    if summary == "pwcca" and convention == "google":
        return _google.google_moments_pwcca(
            state.cxx, state.cyy, state.cxy, state.mean_x, state.mean_y, state.count, epsilon
        )
    cx = state.cxx / sx
    wx, mx = _whitener(cx, keep)
    wy, my = _whitener(state.cyy / sy, keep)
    count = jnp.minimum(jnp.sum(mx), jnp.sum(my))
    valid = jnp.arange(k) < count
    if summary == "pwcca":
        u, s, _ = jnp.linalg.svd(wx.T @ cxy @ wy, full_matrices=False)
        # canonical variates h_i = Xc wx u_i (unit norm); <h_i, x_j> = (u_i^T wx^T cx)_j
        alpha = jnp.where(valid, jnp.sum(jnp.abs(u.T @ (wx.T @ cx)), axis=1), 0)
        total = jnp.sum(alpha)
        return jnp.sum(alpha * jnp.clip(s, 0, 1)) / jnp.where(total > 0, total, 1)
    rho = singular_values(wx.T @ cxy @ wy, k)
    rho = jnp.where(valid, rho, 0)
    if summary == "mean":
        return jnp.sum(rho) / jnp.maximum(count, 1)
    return rho, valid
