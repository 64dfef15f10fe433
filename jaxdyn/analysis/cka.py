"""Centred kernel alignment (CKA): linear and RBF, biased and debiased, and minibatch CKA.

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``. The biased HSIC is
``tr(K H L H)``; the debiased one is the unbiased estimator of Song et al. 2012.
Linear CKA is computed in feature form (``||X^T Y||_F^2``, O(N Dx Dy)) when
``N`` is large and in Gram form (N x N, O(N^2 (Dx + Dy))) when ``N`` is small.

Conventions (documented, never a silent NaN): a view with zero variance, or a
debiased self-HSIC estimate ``<= 0`` (possible for tiny N), gives CKA 0. Debiased
estimators need at least 4 samples (error otherwise); weights are read as a 0/1
mask there and in RBF CKA.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxdyn.analysis._linalg import (
    check_pair,
    float_dtype,
    prepare,
    sample_weights,
    zero_constant_columns,
)


def _significant(h, mag, n):
    """``h > 0`` beyond rounding: ``mag`` is the sum of the magnitudes of h's terms."""
    eps = jnp.finfo(h.dtype).eps
    return h > 8 * jnp.sqrt(jnp.maximum(n, 1)) * eps * mag


def _ratio(hxy, hxx, hyy, okx=True, oky=True):
    ok = (hxx > 0) & (hyy > 0) & okx & oky
    return jnp.where(ok, hxy / jnp.sqrt(jnp.where(ok, hxx * hyy, 1)), 0)


def _unbiased_terms(tr, sk, sl, kl, n, trabs=None):
    """Unbiased HSIC from ``tr = tr(K~L~)``, ``sk = 1^T K~ 1``, ``sl``, ``kl = 1^T K~ L~ 1``.

    Returns ``(hsic, magnitude)``, magnitude being the sum of the terms' absolute
    values (for a scale-free "is it zero up to rounding" test); 0 when ``n < 4``.
    """
    nn = jnp.maximum(n, 4.0)
    a, b, c = tr, sk * sl / ((nn - 1) * (nn - 2)), 2 * kl / (nn - 2)
    h = (a + b - c) / (nn * (nn - 3))
    mag = (jnp.abs(a if trabs is None else trabs) + jnp.abs(b) + jnp.abs(c)) / (nn * (nn - 3))
    return jnp.where(n >= 4, h, 0), mag


class CKAFactor(NamedTuple):
    """Per-view statistics for feature-form linear CKA.

    Attributes:
      z: (N, D) centred, row-weighted view, scaled so that ``HSIC(z, z) = 1``
        (biased) or the debiased self-HSIC is 1 (debiased); zero if degenerate.
      kd: (N,) row squared norms (diagonal of ``K = z z^T``).
      k1: (N,) ``K~ 1`` (Gram row sums without the diagonal).
      n: () number of valid samples.
    """

    z: jnp.ndarray
    kd: jnp.ndarray
    k1: jnp.ndarray
    n: jnp.ndarray


def _feat_stats(z):
    kd = jnp.sum(z * z, axis=1)
    return kd, z @ jnp.sum(z, axis=0) - kd


def _hsic_feat(fx: CKAFactor, fy: CKAFactor, debiased: bool):
    cross = fx.z.T @ fy.z
    frob = jnp.sum(cross * cross)
    if not debiased:
        return frob, frob
    kdl = jnp.sum(fx.kd * fy.kd)
    return _unbiased_terms(
        frob - kdl, jnp.sum(fx.k1), jnp.sum(fy.k1), jnp.sum(fx.k1 * fy.k1), fx.n, frob + kdl
    )


def linear_cka_factor(x, weights, debiased: bool = False) -> CKAFactor:
    """Per-view factor for linear CKA, normalised so ``HSIC(x, x) = 1``.

    Args:
      x: (N, D); weights: (N,) raw weights or None; debiased: unbiased HSIC.

    Returns:
      CKAFactor; the pair similarity is ``_hsic_feat(fx, fy)`` with no division.

    References: Kornblith et al. 2019, Eq. (3)-(4); Song et al. 2012, Eq. (5).
    """
    dt = float_dtype(x)
    n_all = x.shape[0]
    if debiased and weights is not None:
        weights = (jnp.asarray(weights) > 0).astype(dt)
    w = sample_weights(n_all, weights, dt)
    n = jnp.sum(w > 0).astype(dt)
    z = prepare(x, w)
    kd, k1 = _feat_stats(z)
    f = CKAFactor(z, kd, k1, n)
    h, mag = _hsic_feat(f, f, debiased)
    ok = (h > 0) & _significant(h, mag, n)
    scale = jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, h, 1)), 0)
    z = z * jnp.sqrt(scale)
    return CKAFactor(z, kd * scale, k1 * scale, n)


def linear_cka_pair(fx: CKAFactor, fy: CKAFactor, debiased: bool = False):
    """Linear CKA from two normalised factors (0 if either view is degenerate)."""
    return _hsic_feat(fx, fy, debiased)[0]


def _hsic_gram(k, l, n, debiased: bool):
    """HSIC of (N, N) Grams whose invalid rows/cols are zero; biased form expects centred K."""
    if not debiased:
        t = jnp.sum(k * l)
        return t, jnp.sqrt(jnp.sum(k * k) * jnp.sum(l * l))
    k = k - jnp.diag(jnp.diagonal(k))
    l = l - jnp.diag(jnp.diagonal(l))
    k1, l1 = jnp.sum(k, axis=1), jnp.sum(l, axis=1)
    t = jnp.sum(k * l)
    return _unbiased_terms(
        t, jnp.sum(k1), jnp.sum(l1), jnp.sum(k1 * l1), n, jnp.sum(jnp.abs(k * l))
    )


def _cka_gram(k, l, n, debiased):
    hxy, _ = _hsic_gram(k, l, n, debiased)
    hxx, mx = _hsic_gram(k, k, n, debiased)
    hyy, my = _hsic_gram(l, l, n, debiased)
    return _ratio(hxy, hxx, hyy, _significant(hxx, mx, n), _significant(hyy, my, n))


def _check_debiased(x, y, debiased, name):
    check_pair(x, y, name, min_n=4 if debiased else 2)


@functools.partial(jax.jit, static_argnames=("debiased", "form"))
def linear_cka(x, y, debiased: bool = False, *, weights=None, form: str = "auto"):
    """Linear CKA of a pair (symmetric; invariant to orthogonal maps, isotropic scaling,
    translation).

    Args:
      x: (N, Dx); y: (N, Dy); debiased: use the unbiased HSIC estimator;
      weights: optional (N,) sample weights (a 0/1 mask when ``debiased``);
      form: "feature" (O(N Dx Dy)), "gram" (O(N^2 (Dx + Dy))) or "auto" (cheaper).

    Returns:
      () scalar; in [0, 1] when biased.

    References: Kornblith et al. 2019, Eq. (5) (linear CKA); Song et al. 2012, Eq. (5)
    (unbiased HSIC).
    """
    _check_debiased(x, y, debiased, "linear_cka")
    n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
    if form == "auto":
        form = "gram" if n * (dx + dy) < dx * dy + dx * dx + dy * dy else "feature"
    if form == "feature":
        fx = linear_cka_factor(x, weights, debiased)
        return linear_cka_pair(fx, linear_cka_factor(y, weights, debiased), debiased)
    if form != "gram":
        raise ValueError(f"form must be 'auto', 'feature' or 'gram', got {form!r}")
    dt = float_dtype(x, y)
    if debiased and weights is not None:
        weights = (jnp.asarray(weights) > 0).astype(dt)
    w = sample_weights(n, weights, dt)
    zx, zy = prepare(x, w), prepare(y, w)
    return _cka_gram(zx @ zx.T, zy @ zy.T, jnp.sum(w > 0).astype(dt), debiased)


def _masked_median(v, valid):
    s = jnp.sort(jnp.where(valid, v, jnp.inf).ravel())
    m = jnp.sum(valid)
    lo = s[jnp.maximum((m - 1) // 2, 0)]
    hi = s[jnp.maximum(m // 2, 0)]
    return jnp.where(m > 0, (lo + hi) / 2, 0)


def rbf_gram(x, mask, sigma: float):
    """Masked RBF Gram ``exp(-d_ij^2 / (2 sigma^2 med))``, ``med`` the median squared
    distance over valid pairs (mean if the median is 0); zero outside ``mask``.

    Args:
      x: (N, D); mask: (N,) bool; sigma: bandwidth relative to the median distance.

    Returns:
      (N, N) Gram.

    References: Kornblith et al. 2019, Sec. 3 (RBF kernel, bandwidth = fraction of
    the median distance).
    """
    x = zero_constant_columns(x, mask)  # also zeroes padding rows
    x = x / jnp.where(jnp.max(jnp.abs(x)) > 0, jnp.max(jnp.abs(x)), 1)
    mf = mask.astype(x.dtype)
    x = (x - (mf @ x) / jnp.maximum(jnp.sum(mf), 1)) * mf[:, None]
    sq = jnp.sum(x * x, axis=1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    pair = mask[:, None] & mask[None, :]
    med = _masked_median(d2, pair)
    mean = jnp.sum(jnp.where(pair, d2, 0)) / jnp.maximum(jnp.sum(pair), 1)
    med = jnp.where(med > 0, med, mean)
    k = jnp.exp(-d2 / (2 * sigma**2 * jnp.where(med > 0, med, 1)))
    return jnp.where(pair, k, 0)


def _center_gram(k, mask):
    mf = mask.astype(k.dtype)
    n = jnp.maximum(jnp.sum(mf), 1)
    r = jnp.sum(k, axis=1) / n
    t = jnp.sum(r) / n
    return (k - r[:, None] - r[None, :] + t) * mf[:, None] * mf[None, :]


@functools.partial(jax.jit, static_argnames=("sigma", "debiased"))
def rbf_cka(x, y, sigma: float = 0.8, debiased: bool = False, *, weights=None):
    """RBF-kernel CKA of a pair (Gram form, O(N^2 (Dx + Dy)) time, O(N^2) memory).

    Args:
      x: (N, Dx); y: (N, Dy); sigma: bandwidth as a fraction of the median
      pairwise distance (per view); debiased: unbiased HSIC;
      weights: optional (N,), read as a mask (``> 0``).

    Returns:
      () scalar.

    References: Kornblith et al. 2019, Sec. 3 and Eq. (3); Song et al. 2012, Eq. (5).
    """
    _check_debiased(x, y, debiased, "rbf_cka")
    if not sigma > 0:
        raise ValueError(f"rbf_cka: sigma must be > 0, got {sigma}")
    dt = float_dtype(x, y)
    n_all = x.shape[0]
    mask = jnp.ones(n_all, bool) if weights is None else jnp.asarray(weights) > 0
    k, l = rbf_gram(x.astype(dt), mask, sigma), rbf_gram(y.astype(dt), mask, sigma)
    if not debiased:
        k, l = _center_gram(k, mask), _center_gram(l, mask)
    return _cka_gram(k, l, jnp.sum(mask).astype(dt), debiased)


# ----------------------------------------------------------------------------- minibatch


class MinibatchCKAState(NamedTuple):
    """Sums of per-batch unbiased HSIC values (Nguyen et al. 2021).

    Attributes:
      hxy, hxx, hyy: () running sums; mxx, myy: () sums of the self terms' magnitudes
      (rounding-level test); n: () total valid samples; batches: () batches with >= 4;
      sx, sy: () fixed input scales taken from the first batch (keeps float32 in range
      for inputs of magnitude 1e-6 or 1e6 without changing the ratio).
    """

    hxy: jnp.ndarray
    hxx: jnp.ndarray
    hyy: jnp.ndarray
    mxx: jnp.ndarray
    myy: jnp.ndarray
    n: jnp.ndarray
    batches: jnp.ndarray
    sx: jnp.ndarray
    sy: jnp.ndarray


def minibatch_cka_init(dtype=jnp.float32) -> MinibatchCKAState:
    """Empty minibatch-CKA accumulator."""
    z = jnp.zeros((), dtype)
    return MinibatchCKAState(z, z, z, z, z, z, z, z, z)


def _batch_factor(x, scale, mask):
    x = zero_constant_columns(x, mask) / jnp.where(scale > 0, scale, 1)
    mf = mask.astype(x.dtype)
    z = (x - (mf @ x) / jnp.maximum(jnp.sum(mf), 1)) * mf[:, None]
    kd, k1 = _feat_stats(z)
    return CKAFactor(z, kd, k1, jnp.sum(mf))


@jax.jit
def minibatch_cka_update(state: MinibatchCKAState, x, y, mask=None) -> MinibatchCKAState:
    """Add one minibatch ``x: (B, Dx)``, ``y: (B, Dy)`` (optional ``mask: (B,)``).

    Accumulates the unbiased linear HSIC of the batch (centred features); batches
    with fewer than 4 valid samples are skipped.

    References: Nguyen, Raghu & Kornblith 2021, Eq. (2)-(3); Song et al. 2012, Eq. (5).
    """
    check_pair(x, y, "minibatch_cka_update", min_n=4)
    dt = state.hxy.dtype
    x, y = x.astype(dt), y.astype(dt)
    m = jnp.ones(x.shape[0], bool) if mask is None else jnp.asarray(mask) > 0
    # padded rows (any value, e.g. -1e9 or NaN) must not set the scale nor leak in
    x, y = jnp.where(m[:, None], x, 0), jnp.where(m[:, None], y, 0)
    sx = jnp.where(state.sx > 0, state.sx, jnp.max(jnp.abs(x)))
    sy = jnp.where(state.sy > 0, state.sy, jnp.max(jnp.abs(y)))
    fx, fy = _batch_factor(x, sx, m), _batch_factor(y, sy, m)
    hxx, mxx = _hsic_feat(fx, fx, True)
    hyy, myy = _hsic_feat(fy, fy, True)
    return MinibatchCKAState(
        state.hxy + _hsic_feat(fx, fy, True)[0],
        state.hxx + hxx,
        state.hyy + hyy,
        state.mxx + mxx,
        state.myy + myy,
        state.n + fx.n,
        state.batches + (fx.n >= 4).astype(dt),
        sx,
        sy,
    )


@jax.jit
def minibatch_cka_finalize(state: MinibatchCKAState):
    """Minibatch CKA ``sum hxy / sqrt(sum hxx * sum hyy)`` (0 if a self-term is <= 0).

    Returns:
      () scalar; equals debiased :func:`linear_cka` for a single batch.

    References: Nguyen, Raghu & Kornblith 2021, Eq. (3).
    """
    okx = _significant(state.hxx, state.mxx, state.n)
    oky = _significant(state.hyy, state.myy, state.n)
    return _ratio(state.hxy, state.hxx, state.hyy, okx, oky)
