"""Tests for linear/RBF CKA (biased and debiased) and minibatch CKA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.cka import (
    linear_cka,
    minibatch_cka_finalize,
    minibatch_cka_init,
    minibatch_cka_update,
    rbf_cka,
)
from tests.reference import similarity_ref as ref


def _pair(n=120, dx=10, dy=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) + 2.0
    y = np.tanh(x[:, :dy]) @ rng.normal(size=(dy, dy)) + 0.8 * rng.normal(size=(n, dy))
    return x, y


def _x64(fn, x, y, *args, **kw):
    with jax.enable_x64(True):
        out = fn(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), *args, **kw)
        assert out.dtype == jnp.float64
        return float(out)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("form", ["feature", "gram"])
def test_linear_cka_matches_reference(debiased, form):
    x, y = _pair()
    expect = ref.linear_cka(x, y, debiased)
    np.testing.assert_allclose(_x64(linear_cka, x, y, debiased, form=form), expect, atol=1e-10)
    np.testing.assert_allclose(linear_cka(x, y, debiased, form=form), expect, atol=2e-5)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka_matches_reference(debiased):
    x, y = _pair(n=60)
    expect = ref.rbf_cka(x, y, 0.8, debiased)
    np.testing.assert_allclose(_x64(rbf_cka, x, y, 0.8, debiased), expect, atol=1e-10)
    np.testing.assert_allclose(rbf_cka(x, y, 0.8, debiased), expect, atol=2e-5)


@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_and_invariances(debiased):
    x, y = _pair()
    q = np.linalg.qr(np.random.default_rng(4).normal(size=(10, 10)))[0]
    base = float(linear_cka(x, y, debiased))
    np.testing.assert_allclose(linear_cka(x, x, debiased), 1.0, atol=1e-6)
    np.testing.assert_allclose(rbf_cka(x, x, debiased=debiased), 1.0, atol=1e-5)
    for xt in (x @ q, 3.7 * x, x + 11.0):
        np.testing.assert_allclose(linear_cka(xt, y, debiased), base, atol=2e-5)
    rb = float(rbf_cka(x, y, debiased=debiased))
    for xt in (x @ q, 3.7 * x, x + 11.0):
        np.testing.assert_allclose(rbf_cka(xt, y, debiased=debiased), rb, atol=2e-5)
    np.testing.assert_allclose(linear_cka(y, x, debiased), base, atol=1e-6)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
@pytest.mark.parametrize("debiased", [False, True])
def test_extreme_scales_finite_and_equal(scale, debiased):
    x, y = (a.astype(np.float32) for a in _pair(n=2000, dx=50, dy=40))
    base = float(linear_cka(x, y, debiased))
    got = float(linear_cka(x * np.float32(scale), y * np.float32(scale), debiased))
    np.testing.assert_allclose(got, base, atol=2e-5)
    np.testing.assert_allclose(
        rbf_cka(x[:200] * scale, y[:200]), rbf_cka(x[:200], y[:200]), atol=2e-5
    )
    s = minibatch_cka_update(minibatch_cka_init(), x * np.float32(scale), y * np.float32(scale))
    np.testing.assert_allclose(minibatch_cka_finalize(s), float(linear_cka(x, y, True)), atol=2e-5)


@pytest.mark.parametrize("debiased", [False, True])
def test_small_batches_and_n_le_d_finite(debiased):
    for n in (4, 8):
        x, y = _pair(n=n, dx=30, dy=20, seed=n)
        for fn in (linear_cka, rbf_cka):
            assert np.isfinite(float(fn(x, y, debiased=debiased)))
        np.testing.assert_allclose(
            linear_cka(x, y, debiased), ref.linear_cka(x, y, debiased), atol=1e-4
        )
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(np.ones((3, 2)), np.ones((3, 2)), True)
    with pytest.raises(ValueError, match="at least 2"):
        linear_cka(np.ones((1, 2)), np.ones((1, 2)))


@pytest.mark.parametrize("n", [4, 9])
def test_zero_debiased_self_hsic_gives_zero_not_nan(n):
    # one point apart from n-1 identical ones: the debiased self-HSIC is exactly 0,
    # so rounding can make it negative (NaN under a square root in other packages)
    x = np.zeros((n, 1))
    x[-1] = 1.0
    y = np.random.default_rng(0).normal(size=(n, 3))
    k = (x - x.mean(0)) @ (x - x.mean(0)).T
    assert abs(ref.hsic_unbiased(k, k)) < 1e-12
    for form in ("feature", "gram"):
        assert float(linear_cka(x, y, True, form=form)) == 0.0
    s = minibatch_cka_update(minibatch_cka_init(), x, y)
    assert float(minibatch_cka_finalize(s)) == 0.0


@pytest.mark.parametrize("fn", [linear_cka, rbf_cka])
def test_constant_and_dead_units(fn):
    x, y = _pair()
    assert float(fn(x, np.full((120, 3), 5.0))) == 0.0
    x_dead = np.concatenate([x, np.zeros((120, 2)), np.full((120, 1), 3.0)], axis=1)
    np.testing.assert_allclose(fn(x_dead, y), fn(x, y), atol=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_mask_equals_cropping(debiased):
    x, y = _pair()
    mask = (np.arange(120) < 90).astype(np.float32)
    xp = x.copy()
    xp[90:] = 50.0
    for fn in (linear_cka, rbf_cka):
        got = fn(xp, y, debiased=debiased, weights=mask)
        np.testing.assert_allclose(got, fn(x[:90], y[:90], debiased=debiased), atol=2e-5)


@pytest.mark.parametrize("pad", [-1e9, np.nan])
def test_padded_rows_with_sentinels_are_ignored(pad):
    # -1e9 padding used to set minibatch CKA's fixed scale (inf in float32);
    # NaN/inf padding poisoned every kernel through 0 * inf in the masked means
    x, y = (a.astype(np.float32) for a in _pair())
    mask = (np.arange(120) < 90).astype(np.float32)
    xp, yp = x.copy(), y.copy()
    xp[90:], yp[90:] = pad, pad
    for debiased in (False, True):
        for fn in (linear_cka, rbf_cka):
            got = fn(xp, yp, debiased=debiased, weights=mask)
            np.testing.assert_allclose(got, fn(x[:90], y[:90], debiased=debiased), atol=2e-5)
        got = linear_cka(xp, yp, debiased, weights=mask, form="gram")
        np.testing.assert_allclose(got, linear_cka(x[:90], y[:90], debiased), atol=2e-5)
    s = minibatch_cka_update(minibatch_cka_init(), xp, yp, mask)
    np.testing.assert_allclose(
        minibatch_cka_finalize(s), linear_cka(x[:90], y[:90], True), atol=2e-5
    )


def test_minibatch_single_batch_and_reference():
    x, y = _pair(n=200)
    s = minibatch_cka_update(minibatch_cka_init(), x, y)
    np.testing.assert_allclose(minibatch_cka_finalize(s), linear_cka(x, y, True), atol=1e-6)
    with jax.enable_x64(True):
        s = minibatch_cka_init(jnp.float64)
        batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50)]
        for a, b in batches:
            s = minibatch_cka_update(s, jnp.asarray(a), jnp.asarray(b))
        np.testing.assert_allclose(
            minibatch_cka_finalize(s), ref.minibatch_cka(batches), atol=1e-10
        )


def test_minibatch_self_similarity_exactly_one_and_mask():
    x, y = _pair(n=200)
    s = minibatch_cka_init()
    for i in range(0, 200, 40):
        s = minibatch_cka_update(s, x[i : i + 40], x[i : i + 40])
    assert float(minibatch_cka_finalize(s)) == 1.0
    mask = np.ones(60)
    mask[50:] = 0
    xp, yp = np.concatenate([x[:50], np.ones((10, 10))]), np.concatenate([y[:50], np.ones((10, 7))])
    a = minibatch_cka_update(minibatch_cka_init(), xp, yp, mask)
    b = minibatch_cka_update(minibatch_cka_init(), x[:50], y[:50])
    np.testing.assert_allclose(minibatch_cka_finalize(a), minibatch_cka_finalize(b), atol=1e-6)


def test_jit_eager_vmap_loop_and_no_retrace():
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(3, 40, 5)).astype(np.float32)
    ys = (np.tanh(xs[..., :4]) + rng.normal(size=(3, 40, 4))).astype(np.float32)
    for fn in (linear_cka, rbf_cka):
        for debiased in (False, True):
            jit_v = [float(fn(a, b, debiased=debiased)) for a, b in zip(xs, ys)]
            with jax.disable_jit():
                eager = float(fn(xs[0], ys[0], debiased=debiased))
            np.testing.assert_allclose(jit_v[0], eager, atol=1e-5)
            vm = jax.vmap(lambda a, b, f=fn, d=debiased: f(a, b, debiased=d))(xs, ys)
            np.testing.assert_allclose(vm, jit_v, atol=1e-5)
        size = fn._cache_size()
        fn(xs[0] + 1, ys[0], debiased=True)
        assert fn._cache_size() == size
