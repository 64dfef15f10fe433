"""Tests for jaxdyn.analysis.sparsity against float64 NumPy references."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxdyn.analysis.sparsity import (
    STATISTICS,
    dead_fraction,
    dead_units,
    gini,
    hoyer,
    l1_norm,
    l2_norm,
    te_norm,
    token_statistics,
    zero_fraction,
)
from tests.reference import sparsity_ref as ref

KERNELS = {
    "l1": (l1_norm, ref.l1_ref),
    "l2": (l2_norm, ref.l2_ref),
    "te": (te_norm, ref.te_ref),
    "gini": (gini, ref.gini_ref),
    "hoyer": (hoyer, ref.hoyer_ref),
    "zero_frac": (zero_fraction, ref.zero_fraction_ref),
}
SHAPES = [(7,), (2, 3, 64), (4, 1), (5, 2), (2, 200)]


def _rand(shape, seed=0, sparse=0.3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * rng.exponential(1.0, shape)
    x[rng.random(shape) < sparse] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_matches_reference(name, shape):
    fn, rfn = KERNELS[name]
    x = _rand(shape, seed=len(shape) * 10 + shape[-1])
    np.testing.assert_allclose(np.asarray(fn(x)), rfn(x), rtol=2e-6, atol=2e-6)
    with jax.enable_x64(True):
        got = fn(jnp.asarray(x, jnp.float64))
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), rfn(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(KERNELS))
def test_axis_argument(name):
    fn, rfn = KERNELS[name]
    x = _rand((6, 9, 4), seed=3)
    for axis in (0, 1, -2):
        want = rfn(np.moveaxis(x, axis, -1))
        np.testing.assert_allclose(np.asarray(fn(x, axis=axis)), want, rtol=2e-6, atol=2e-6)


def test_threshold_variants_match_reference():
    x = _rand((5, 30), seed=4)
    for thr, rel in [(0.1, False), (0.5, False), (0.05, True), (0.5, True)]:
        got = zero_fraction(x, thr, relative=rel)
        np.testing.assert_allclose(np.asarray(got), ref.zero_fraction_ref(x, thr, rel), atol=1e-7)
        mask = np.arange(5) % 2 == 0
        for m in (None, mask):
            want = ref.dead_units_ref(x, thr, rel, m)
            np.testing.assert_array_equal(
                np.asarray(dead_units(x, thr, relative=rel, mask=m)), want
            )
            np.testing.assert_allclose(
                float(dead_fraction(x, thr, relative=rel, mask=m)), want.mean(), atol=1e-7
            )


@pytest.mark.parametrize("d", [1, 2, 10, 200, 1000])
def test_extremes_one_hot_and_constant_magnitude(d):
    rng = np.random.default_rng(d)
    onehot = np.zeros((3, d), np.float32)
    onehot[np.arange(3), rng.integers(0, d, 3)] = rng.standard_normal(3) * 5
    signs = rng.choice([-1.0, 1.0], (3, d)).astype(np.float32)
    const = signs * np.float32(2.5)
    np.testing.assert_allclose(np.asarray(te_norm(onehot)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(te_norm(const)), math.sqrt(d), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(gini(onehot)), 1 - 1 / d, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gini(const)), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hoyer(onehot)), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(hoyer(const)), 0.0 if d > 1 else 1.0, atol=1e-6)


def test_ranges_on_random_vectors():
    for d in (2, 3, 50, 200):
        x = _rand((100, d), seed=d)
        x[0] = 1.0  # ensure at least one non-degenerate row
        stats = token_statistics(x, ("te", "gini", "hoyer"))
        nz = np.abs(x).max(-1) > 0
        te = np.asarray(stats["te"])[nz]
        assert np.all(te >= 1.0) and np.all(te <= math.sqrt(d))
        assert np.all((np.asarray(stats["hoyer"]) >= 0) & (np.asarray(stats["hoyer"]) <= 1))
        assert np.all((np.asarray(stats["gini"]) >= 0) & (np.asarray(stats["gini"]) <= 1 - 1 / d))


@pytest.mark.parametrize("shape", [(4,), (2, 0), (0,), (0, 3)])
def test_zero_and_empty_defined_and_gradients_finite(shape):
    x = jnp.zeros(shape, jnp.float32)
    for name, (fn, _) in KERNELS.items():
        val = np.asarray(fn(x))
        assert val.shape == shape[:-1]
        want = 1.0 if (name == "zero_frac" and shape[-1] > 0) else 0.0
        np.testing.assert_array_equal(val, want)
        g = jax.grad(lambda v, fn=fn: jnp.sum(fn(v)))(x)
        assert g.shape == shape and np.all(np.isfinite(np.asarray(g)))
        np.testing.assert_array_equal(np.asarray(g), 0.0)
    assert float(dead_fraction(jnp.zeros((0, 3)))) == 0.0
    assert float(dead_fraction(jnp.zeros((3, 0)))) == 0.0
    assert not np.any(np.asarray(dead_units(jnp.ones((2, 3)), mask=np.zeros(2, bool))))


def test_gradients_match_finite_differences():
    x = _rand((3, 12), seed=7, sparse=0.0)
    with jax.enable_x64(True):
        xd = jnp.asarray(x, jnp.float64)
        for fn in (l1_norm, l2_norm, te_norm, gini, hoyer):
            check_grads(fn, (xd,), order=1, modes=("rev",), eps=1e-6)
    # Gradient with exact zeros present stays finite (max-abs scale is not differentiated).
    xz = _rand((3, 12), seed=8, sparse=0.5)
    for fn in (l1_norm, l2_norm, te_norm, gini, hoyer):
        g = jax.grad(lambda v, fn=fn: jnp.sum(fn(v)))(jnp.asarray(xz))
        assert np.all(np.isfinite(np.asarray(g)))


def test_te_gradient_analytic():
    # d TE / dx = sign(x)/l2 - l1 x / l2^3
    x = _rand((16,), seed=9, sparse=0.0).astype(np.float64)
    l1, l2 = np.abs(x).sum(), np.sqrt((x * x).sum())
    want = np.sign(x) / l2 - l1 * x / l2**3
    with jax.enable_x64(True):
        got = jax.grad(te_norm)(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_extreme_scales_float32(scale):
    x = _rand((4, 200), seed=11, sparse=0.2)
    xs = (x.astype(np.float64) * scale).astype(np.float32)
    np.testing.assert_allclose(np.asarray(l2_norm(xs)), ref.l2_ref(xs), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(l1_norm(xs)), ref.l1_ref(xs), rtol=1e-5)
    for fn in (te_norm, gini, hoyer):
        np.testing.assert_allclose(np.asarray(fn(xs)), np.asarray(fn(x)), rtol=1e-5, atol=1e-6)
        assert np.all(np.isfinite(np.asarray(jax.grad(lambda v, fn=fn: jnp.sum(fn(v)))(xs))))
    mixed = np.stack([x[0], xs[1], x[2]])  # one extreme row forces the rescaled path
    np.testing.assert_allclose(np.asarray(te_norm(mixed)), np.asarray(te_norm(x[:3])), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(l2_norm(mixed)), ref.l2_ref(mixed), rtol=1e-5)
    # gradients in the rescaled path: l2 is 1-homogeneous (same gradient), te is
    # 0-homogeneous (gradient scales by 1/scale)
    g2 = [np.asarray(jax.grad(lambda v: jnp.sum(l2_norm(v)))(a)) for a in (x, xs)]
    np.testing.assert_allclose(g2[1], g2[0], rtol=1e-4, atol=1e-6)
    gt = [np.asarray(jax.grad(lambda v: jnp.sum(te_norm(v)))(a), np.float64) for a in (x, xs)]
    np.testing.assert_allclose(gt[1] * scale, gt[0], rtol=1e-4, atol=1e-6)


def test_gini_near_float32_max():
    # 1 / max|x| would be subnormal (flushed to 0 on CPU); the rows are rescaled exactly
    y = np.array([[3e38, 3e38, 3e38, 0.0], [3e38, 1e38, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(np.asarray(gini(y)), ref.gini_ref(y), rtol=1e-5, atol=1e-6)


def test_relative_thresholds_scale_invariant():
    x = _rand((50, 40), seed=12, sparse=0.1)
    base_z = np.asarray(zero_fraction(x, 0.1, relative=True))
    base_d = np.asarray(dead_units(x, 0.3, relative=True))
    base_f = float(dead_fraction(x, 0.3, relative=True))
    assert 0 < base_z.mean() < 1 and 0 < base_d.mean() < 1  # non-trivial cases
    for s in (1e-6, 1e6):
        xs = (x * np.float32(s)).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(zero_fraction(xs, 0.1, relative=True)), base_z)
        np.testing.assert_array_equal(np.asarray(dead_units(xs, 0.3, relative=True)), base_d)
        assert float(dead_fraction(xs, 0.3, relative=True)) == base_f
    # an absolute threshold is not scale invariant
    assert not np.array_equal(np.asarray(zero_fraction(x * 1e-6, 0.1)), base_z)


def test_nan_propagates_in_norms():
    x = np.ones((2, 5), np.float32)
    x[0, 2] = np.nan
    for fn in (l1_norm, l2_norm, te_norm, gini, hoyer):
        out = np.asarray(fn(x))
        assert np.isnan(out[0]) and np.isfinite(out[1])


def test_relative_thresholds_ignore_nan_entries():
    # a NaN entry is never "small", and it must not poison the max of the others
    x = np.array([[np.nan, 0.0, 1.0, 0.05], [0.0, 0.0, 1.0, 2.0]], np.float32)
    np.testing.assert_allclose(np.asarray(zero_fraction(x, 0.1, relative=True)), [0.5, 0.5])
    # unit 1 is 0 everywhere: dead whatever the scale; unit 0 is NaN once (alive)
    got = np.asarray(dead_units(x, 0.1, relative=True))
    np.testing.assert_array_equal(got, [False, True, False, False])


def test_token_statistics_equals_kernels_and_registry():
    x = _rand((3, 4, 33), seed=13)
    names = tuple(STATISTICS)
    assert names == ("l1", "l2", "te", "gini", "hoyer", "zero_frac")
    got = token_statistics(x, names)
    assert set(got) == set(names)
    for n in names:
        np.testing.assert_allclose(
            np.asarray(got[n]), np.asarray(STATISTICS[n](x, axis=-1)), rtol=1e-6
        )
        assert got[n].shape == (3, 4)
    assert set(token_statistics(x)) == {"l1", "l2", "te", "gini", "hoyer"}
    with pytest.raises(ValueError, match="unknown statistics"):
        token_statistics(x, ["te", "entropy"])


def test_jit_equals_eager_and_vmap_equals_loop():
    x = _rand((5, 3, 20), seed=14)
    for n, (fn, _) in KERNELS.items():
        jitted = np.asarray(fn(x))
        with jax.disable_jit():
            eager = np.asarray(fn(x))
        np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7, err_msg=n)
        vm = np.asarray(jax.vmap(fn)(x))
        loop = np.stack([np.asarray(fn(x[i])) for i in range(x.shape[0])])
        np.testing.assert_allclose(vm, loop, rtol=1e-6, atol=1e-7, err_msg=n)
    vm = jax.vmap(lambda a: dead_fraction(a, 0.5))(x)
    loop = [float(dead_fraction(x[i], 0.5)) for i in range(5)]
    np.testing.assert_allclose(np.asarray(vm), loop)


def test_no_retrace_on_second_call():
    from jaxdyn.analysis import sparsity

    x1, x2 = _rand((4, 17), seed=15), _rand((4, 17), seed=16)
    fns = [(te_norm, lambda a: te_norm(a))]
    fns.append((sparsity._token_statistics, lambda a: token_statistics(a, ("te", "gini"))))
    fns.append((sparsity._zero_fraction, lambda a: zero_fraction(a, 0.2, relative=True)))
    fns.append((sparsity._dead_fraction, lambda a: dead_fraction(a, 0.3)))
    for jitted, call in fns:
        call(x1)
        n = jitted._cache_size()
        call(x2)
        assert jitted._cache_size() == n


def test_threshold_as_traced_value_no_retrace():
    from jaxdyn.analysis import sparsity

    x = _rand((4, 17), seed=17)
    zero_fraction(x, 0.1)
    n = sparsity._zero_fraction._cache_size()
    zero_fraction(x, 0.2)
    assert sparsity._zero_fraction._cache_size() == n


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="real"):
        te_norm(jnp.ones(3, jnp.complex64))
    with pytest.raises(ValueError, match="threshold"):
        zero_fraction(np.ones((2, 3)), -0.1)
    with pytest.raises(ValueError, match="samples-first"):
        dead_units(np.ones(3))
    with pytest.raises(ValueError, match="mask shape"):
        dead_fraction(np.ones((4, 3)), mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="scalar"):
        te_norm(1.0)
    # integer input is accepted and promoted to float
    np.testing.assert_allclose(float(te_norm(np.array([3, 4]))), 7 / 5, rtol=1e-6)
