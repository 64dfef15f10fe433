"""Tests of jaxdyn.analysis.interactions (the DI ratio, model-agnostic)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.interactions import _norm_factor, di_ratio, di_ratio_linear


def _ref(bx, by, bxy):
    bx, by, bxy = (np.asarray(v, np.float64) for v in (bx, by, bxy))
    den = np.linalg.norm(bxy, axis=-1)
    num = np.linalg.norm(bxy - bx - by, axis=-1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _parts(rng, n, d):
    return [rng.normal(size=(n, d)) for _ in range(3)]


def test_di_ratio_matches_numpy_and_guards_zero():
    rng = np.random.default_rng(0)
    bx, by, bxy = _parts(rng, 50, 7)
    bxy[:5] = 0.0  # joint part zero: DI 0, not NaN
    with jax.enable_x64(True):
        got = np.asarray(di_ratio(bx, by, bxy))
    np.testing.assert_allclose(got, _ref(bx, by, bxy), rtol=1e-14, atol=0)
    assert np.all(got[:5] == 0.0) and np.all(np.isfinite(got))
    np.testing.assert_allclose(di_ratio(bx[0], by[0], bxy[0]), _ref(bx, by, bxy)[0], rtol=1e-5)
    # broadcasting a shared part, batch axes kept
    b3 = np.stack([bxy, bxy])
    assert di_ratio(bx, by, b3).shape == (2, 50)
    # additive parts: DI 0; x alone: DI(x, {}) = 0
    np.testing.assert_allclose(di_ratio(bx, by, bx + by), 0.0, atol=1e-6)
    np.testing.assert_array_equal(di_ratio(bx, np.zeros_like(bx), bx), 0.0)


def test_di_ratio_rejects_scalars():
    with pytest.raises(ValueError, match="vectors"):
        di_ratio(1.0, 2.0, 3.0)


def _matrix(rng, k, d, cond):
    r = min(k, d)
    u, _ = np.linalg.qr(rng.normal(size=(k, r)))
    v, _ = np.linalg.qr(rng.normal(size=(d, r)))
    return (u * np.logspace(0, -np.log10(cond), r)) @ v.T


@pytest.mark.parametrize(
    "k,d,n,cond",
    [
        (400, 8, 60, 10.0),  # factor path (k > d, 3n > 5d)
        (400, 8, 60, 1e3),
        (6, 8, 60, 10.0),  # k <= d: direct
        (400, 8, 4, 10.0),  # few vectors: direct
    ],
)
def test_di_ratio_linear_equals_images(k, d, n, cond):
    rng = np.random.default_rng(1)
    w = _matrix(rng, k, d, cond)
    bx, by, bxy = _parts(rng, n, d)
    bxy[0] = 0.0
    want = _ref(bx @ w.T, by @ w.T, bxy @ w.T)
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(di_ratio_linear)(bx, by, bxy, w))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=0)
    f32 = [jnp.asarray(v, jnp.float32) for v in (bx, by, bxy, w)]
    np.testing.assert_allclose(np.asarray(di_ratio_linear(*f32)), want, rtol=2e-5, atol=1e-7)
    assert got[0] == 0.0


def test_norm_factor_checks_itself():
    rng = np.random.default_rng(2)
    good = jnp.asarray(_matrix(rng, 300, 8, 100.0), jnp.float32)
    m, ok = _norm_factor(good)
    assert bool(ok)
    v = rng.normal(size=(20, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.linalg.norm(v @ np.asarray(m), axis=1),
        np.linalg.norm(v.astype(np.float64) @ np.asarray(good, np.float64).T, axis=1),
        rtol=1e-5,
    )
    # rank-deficient / badly conditioned: the check fails, di_ratio_linear falls back
    bad = np.asarray(good).copy()
    bad[:, -1] = bad[:, 0] * 1e-9
    assert not bool(_norm_factor(jnp.asarray(bad))[1])
    bx, by, bxy = (jnp.asarray(p, jnp.float32) for p in _parts(rng, 40, 8))
    want = _ref(bx @ bad.T, by @ bad.T, bxy @ bad.T)
    np.testing.assert_allclose(di_ratio_linear(bx, by, bxy, bad), want, rtol=2e-5, atol=1e-7)
