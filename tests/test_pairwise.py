"""Tests for all-pairs similarity (factor once, chunked, sharded)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdyn.analysis.cka import linear_cka, rbf_cka
from jaxdyn.analysis.pairwise import pairwise
from jaxdyn.analysis.similarity import cca, google_cca_summary, pwcca, svcca


def _stack(layers=2, c=4, n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(layers, 1, n, d))
    drift = rng.normal(size=(layers, c, n, d)) * np.linspace(0.1, 1.5, c)[None, :, None, None]
    return (base + drift).astype(np.float32)


KERNELS = {
    "svcca": lambda a, b: svcca(a, b, 0.9),
    "pwcca": pwcca,
    "google": google_cca_summary,
    "linear_cka": linear_cka,
    "cca": cca,
}
OPTS = {"svcca": {"keep": 0.9}}


@pytest.mark.parametrize("metric", sorted(KERNELS))
def test_pairwise_equals_loop_with_layers(metric):
    xs = _stack()
    out = np.asarray(pairwise(metric, xs, chunk_size=3, **OPTS.get(metric, {})))
    loop = np.array([[[KERNELS[metric](a, b) for b in layer] for a in layer] for layer in xs])
    assert out.shape == loop.shape
    np.testing.assert_allclose(out, loop, atol=5e-5)


def test_pwcca_pairwise_is_ordered_and_ys_given():
    xs = _stack(layers=1)[0]
    ys = _stack(layers=1, d=4, seed=1)[0]
    out = np.asarray(pairwise("pwcca", xs, ys))
    assert out.shape == (4, 4)
    np.testing.assert_allclose(out, [[pwcca(a, b) for b in ys] for a in xs], atol=5e-5)
    rev = np.asarray(pairwise("pwcca", ys, xs))
    np.testing.assert_allclose(rev, [[pwcca(b, a) for a in xs] for b in ys], atol=5e-5)


def test_debiased_cka_rbf_weights_and_method():
    xs = _stack(layers=1)[0]
    mask = (np.arange(60) < 50).astype(np.float32)
    out = pairwise("linear_cka", xs, weights=mask, debiased=True, chunk_size=4)
    expect = [[linear_cka(a, b, True, weights=mask) for b in xs] for a in xs]
    np.testing.assert_allclose(out, expect, atol=5e-5)
    out = pairwise("rbf_cka", xs, sigma=0.5)
    np.testing.assert_allclose(out, [[rbf_cka(a, b, 0.5) for b in xs] for a in xs], atol=5e-5)
    g = pairwise("svcca", xs, method="gram")
    s = pairwise("svcca", xs, method="svd")
    np.testing.assert_allclose(g, s, atol=5e-5)
    custom = pairwise(lambda a, b: svcca(a, b), xs, symmetric=True)
    np.testing.assert_allclose(custom, s, atol=5e-5)


def test_chunk_sizes_agree_and_no_retrace():
    xs = _stack(layers=1, c=5)[0]
    a = np.asarray(pairwise("svcca", xs, chunk_size=1, gram_cols=0))
    b = np.asarray(pairwise("svcca", xs, chunk_size=4, gram_cols=0))  # 15 pairs: padded
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, a.T, atol=0)
    np.testing.assert_allclose(np.diag(a), 1.0, atol=1e-5)
    from jaxdyn.analysis.pairwise import _compiled

    fn = _compiled("svcca", (), "gram", xs.shape, None, 4, False)
    size = fn._cache_size()
    pairwise("svcca", xs + 1.0, chunk_size=4, gram_cols=0)
    assert fn._cache_size() == size == 1
    pairwise("svcca", xs)  # block cross products (default gram_cols)
    fn = _compiled("svcca", (), "gram", xs.shape, None, 16, False, 2048)
    size = fn._cache_size()
    pairwise("svcca", xs + 1.0)
    assert fn._cache_size() == size == 1


def test_bad_arguments():
    xs = _stack(layers=1)[0]
    with pytest.raises(ValueError, match="metric"):
        pairwise("nope", xs)
    with pytest.raises(ValueError, match="unknown options"):
        pairwise("svcca", xs, sigma=1.0)
    with pytest.raises(ValueError, match="xs must be"):
        pairwise("svcca", xs[0])
    # options and sizes the single-pair kernels reject used to give silent values
    for metric, kw in (("svcca", {"keep": 0.0}), ("svcca", {"keep": 1.5}), ("pwcca", {"keep": -1})):
        with pytest.raises(ValueError, match="keep"):
            pairwise(metric, xs, **kw)
    for kw in ({"epsilon": -1.0}, {"threshold": 0.0}, {"threshold": 1.5}):
        with pytest.raises(ValueError, match="epsilon >= 0"):
            pairwise("google", xs, **kw)
    for gram_cols in (0, 2048):
        with pytest.raises(ValueError, match="at least 4"):
            pairwise("linear_cka", xs[:, :3], debiased=True, gram_cols=gram_cols)
    with pytest.raises(ValueError, match="at least 2"):
        pairwise("svcca", xs[:, :1])
    with pytest.raises(ValueError, match="incompatible"):
        pairwise("svcca", xs, xs[0])


SHARD_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from jaxdyn.analysis.pairwise import pairwise
    assert jax.device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, 5, 40, 5)).astype(np.float32)
    xs[:, 1:] += xs[:, :1]
    for metric in ("svcca", "pwcca", "linear_cka"):
        a = np.asarray(pairwise(metric, xs, chunk_size=2, shard=True))
        b = np.asarray(pairwise(metric, xs, chunk_size=2))
        np.testing.assert_allclose(a, b, atol=1e-6)
    print("SHARD_OK")
    """
)


def test_sharded_equals_unsharded_on_4_host_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, "-c", SHARD_SCRIPT],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "SHARD_OK" in res.stdout


def test_single_device_shard_flag_works():
    xs = _stack(layers=1, c=3)[0]
    np.testing.assert_allclose(pairwise("svcca", xs, shard=True), pairwise("svcca", xs), atol=1e-6)
    assert jax.device_count() >= 1


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("gram_cols", [12, 18, 4096])
def test_linear_cka_block_gram_equals_kernel_loop(debiased, gram_cols):
    # block sizes 2 (padded: 7 checkpoints), 3 and one block; weights, a constant view
    xs = _stack(c=7, d=6)
    xs[0, 3] = 2.5  # constant view: CKA 0 against everything, never NaN
    mask = (np.arange(60) < 50).astype(np.float32)
    for w in (None, mask):
        out = np.asarray(
            pairwise("linear_cka", xs, weights=w, debiased=debiased, gram_cols=gram_cols)
        )
        loop = [[[linear_cka(a, b, debiased, weights=w) for b in lay] for a in lay] for lay in xs]
        assert out.shape == (2, 7, 7) and not np.isnan(out).any()
        np.testing.assert_allclose(out, np.array(loop), atol=5e-6)
        np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))
        assert np.all(out[0, 3] == 0)
        old = np.asarray(pairwise("linear_cka", xs, weights=w, debiased=debiased, gram_cols=0))
        np.testing.assert_allclose(out, old, atol=5e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_block_gram_with_ys_and_leading_axes(debiased):
    xs = _stack(layers=2, c=5, d=6).reshape(1, 2, 5, 60, 6)
    ys = _stack(layers=2, c=3, d=4, seed=1).reshape(1, 2, 3, 60, 4)
    out = np.asarray(pairwise("linear_cka", xs, ys, debiased=debiased, gram_cols=10))
    loop = [[[linear_cka(a, b, debiased) for b in ly] for a in lx] for lx, ly in zip(xs[0], ys[0])]
    assert out.shape == (1, 2, 5, 3)
    np.testing.assert_allclose(out[0], np.array(loop), atol=5e-6)


def test_linear_cka_block_gram_no_retrace_and_bad_gram_cols():
    from jaxdyn.analysis.pairwise import _compiled

    xs = _stack(c=3)
    pairwise("linear_cka", xs, gram_cols=12)
    fn = _compiled("linear_cka", (), "gram", xs.shape, None, 16, False, 12)
    size = fn._cache_size()
    pairwise("linear_cka", xs + 1, gram_cols=12)
    assert fn._cache_size() == size == 1
    with pytest.raises(ValueError, match="gram_cols"):
        pairwise("linear_cka", xs, gram_cols=-1)
    with pytest.raises(ValueError, match="unknown options"):
        pairwise("linear_cka", xs, sigma=1.0)


# ----------------------------------------------------------------- explicit pair lists

PAIRED = np.load(Path(__file__).parent / "data" / "paired_reference.npz")
PAIRED_METRICS = {
    "svcca": ("svcca", {"keep": 0.99}),
    "pwcca": ("pwcca", {}),
    "cka": ("linear_cka", {}),
}


@pytest.mark.parametrize("method", ["svd", "gram"])
@pytest.mark.parametrize("name", sorted(PAIRED_METRICS))
def test_listed_pairs_equal_recorded_paired_similarity(name, method):
    # the study's former paired_similarity(mats, left, right, metric, keep, method, chunk),
    # recorded by tests/data/make_paired_reference.py, is this call
    metric, opts = PAIRED_METRICS[name]
    mats, pairs = PAIRED["mats"], PAIRED["pairs"]
    got = np.asarray(pairwise(metric, mats, pairs=pairs, method=method, chunk_size=4, **opts))
    assert got.shape == (pairs.shape[0],)
    np.testing.assert_allclose(got, PAIRED[f"{name}_{method}"], atol=5e-5)


def test_listed_pairs_with_layers_ys_and_google():
    xs = _stack(layers=2, c=4)
    ys = _stack(layers=2, c=3, d=4, seed=1)
    pairs = np.array([[0, 2], [3, 0], [1, 1], [0, 2], [2, 1]])
    for metric, kern in (("pwcca", pwcca), ("svcca", lambda a, b: svcca(a, b, 0.99))):
        out = np.asarray(pairwise(metric, xs, ys, pairs=pairs, chunk_size=2))
        loop = [[kern(lx[i], ly[j]) for i, j in pairs] for lx, ly in zip(xs, ys)]
        assert out.shape == (2, 5)
        np.testing.assert_allclose(out, loop, atol=5e-5)
    out = np.asarray(pairwise("pwcca", xs, pairs=pairs[:, ::-1], convention="google"))
    loop = [[pwcca(lx[i], lx[j], convention="google") for i, j in pairs[:, ::-1]] for lx in xs]
    np.testing.assert_allclose(out, loop, atol=5e-5)
    full = np.asarray(pairwise("pwcca", xs, convention="google"))
    np.testing.assert_allclose(full[:, 2, 0], out[:, 0], atol=1e-6)
    rho = np.asarray(pairwise("cca", xs, pairs=pairs[:2]))
    assert rho.shape == (2, 2, 6)
    empty = pairwise("cca", xs, pairs=np.zeros((0, 2), int))
    assert empty.shape == (2, 0, 6)


def test_listed_pairs_no_retrace_and_errors():
    from jaxdyn.analysis.pairwise import _compiled

    xs = _stack(layers=1, c=5)[0]
    a = pairwise("svcca", xs, pairs=np.array([[0, 1], [2, 3], [4, 4]]), chunk_size=2)
    fn = _compiled("svcca", (), "gram", xs.shape, None, 2, False, n_listed=3)
    size = fn._cache_size()
    b = pairwise("svcca", xs + 1.0, pairs=np.array([[1, 0], [3, 2], [0, 0]]), chunk_size=2)
    assert fn._cache_size() == size == 1
    np.testing.assert_allclose(a[:2], b[:2], atol=1e-6)  # symmetric, shift-invariant
    for bad in (np.array([[0, 5]]), np.array([[-1, 0]]), np.array([0, 1]), np.ones((2, 2))):
        with pytest.raises(ValueError, match="pairs"):
            pairwise("svcca", xs, pairs=bad)


# ----------------------------------------------------------------- callable metrics


def test_callable_metric_honours_weights():
    xs = _stack(layers=1, c=3)[0]
    mask = (np.arange(60) < 40).astype(np.float32)
    xp = xs.copy()
    xp[:, 40:] = 1e3  # padded rows: only the weights keep them out
    got = pairwise(lambda a, b, weights=None: svcca(a, b, weights=weights), xp, weights=mask)
    expect = [[svcca(a, b, weights=mask) for b in xp] for a in xp]
    np.testing.assert_allclose(got, expect, atol=5e-5)
    np.testing.assert_allclose(got, pairwise("svcca", xs[:, :40], method="svd"), atol=5e-5)
    # a kernel that cannot take the weights is an error, not a silent unweighted value
    with pytest.raises(ValueError, match="takes no `weights`"):
        pairwise(lambda a, b: svcca(a, b), xp, weights=mask)
    got = pairwise(svcca, xp, weights=mask, symmetric=True)  # a jitted kernel with weights=
    np.testing.assert_allclose(got, expect, atol=5e-5)


@pytest.mark.parametrize("metric", ["svcca", "pwcca", "cca"])
@pytest.mark.parametrize("gram_cols", [12, 2048])
def test_cca_block_cross_products_equal_per_pair_path(metric, gram_cols):
    # blocks of 2 views (7 checkpoints: padded) and of 4; with ys; a constant view
    xs = _stack(c=7, d=6)
    xs[1, 2] = 3.0
    ys = _stack(layers=2, c=3, d=4, seed=1)
    opts = OPTS.get(metric, {})
    for other in (None, ys):
        out = np.asarray(pairwise(metric, xs, other, gram_cols=gram_cols, **opts))
        old = np.asarray(pairwise(metric, xs, other, gram_cols=0, **opts))
        assert out.shape == old.shape and not np.isnan(out).any()
        np.testing.assert_allclose(out, old, atol=2e-6)
    loop = [[[KERNELS[metric](a, b) for b in lay] for a in lay] for lay in xs]
    np.testing.assert_allclose(pairwise(metric, xs, gram_cols=gram_cols, **opts), loop, atol=5e-5)
