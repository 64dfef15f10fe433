"""Tests for CCA, SVCCA, PWCCA, google/svcca-compatible summary and streaming CCA."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.pairwise import pairwise
from jaxdyn.analysis.similarity import (
    cca,
    cca_accumulate_finalize,
    cca_accumulate_init,
    cca_accumulate_update,
    google_cca_summary,
    pwcca,
    svcca,
)
from tests.data.make_google_pwcca import cases as google_cases
from tests.reference import similarity_ref as ref


def enable_x64():
    return jax.enable_x64(True)


def _pair(n=300, dx=12, dy=9, seed=0, noise=0.7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx)) + 3.0
    y = x[:, :dy] @ rng.normal(size=(dy, dy)) + noise * rng.normal(size=(n, dy)) - 1.0
    return x, y


def _ortho(d, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))[0]


def _f64(fn, x, y, *args, **kw):
    with enable_x64():
        out = fn(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), *args, **kw)
        assert jnp.asarray(out).dtype == jnp.float64
        return np.asarray(out)


# ----------------------------------------------------------------- against references


@pytest.mark.parametrize("method", ["svd", "gram"])
def test_cca_matches_reference_f64(method):
    x, y = _pair()
    np.testing.assert_allclose(_f64(cca, x, y, method=method), ref.cca(x, y), atol=1e-9)


def test_cca_float32_close_and_sorted():
    x, y = _pair()
    r = np.asarray(cca(x.astype(np.float32), y.astype(np.float32)))
    assert r.dtype == np.float32 and r.shape == (9,)
    assert np.all(np.diff(r) <= 0)
    np.testing.assert_allclose(r, ref.cca(x, y), atol=2e-4)


@pytest.mark.parametrize("keep", [0.5, 0.99])
@pytest.mark.parametrize("method", ["svd", "gram"])
def test_svcca_matches_reference(keep, method):
    x, y = _pair()
    expect = ref.svcca(x, y, keep)
    np.testing.assert_allclose(_f64(svcca, x, y, keep, method=method), expect, atol=1e-9)
    np.testing.assert_allclose(svcca(x, y, keep, method=method), expect, atol=2e-4)


@pytest.mark.parametrize("order", ["xy", "yx"])
def test_pwcca_matches_reference_both_orders(order):
    x, y = _pair()
    a, b = (x, y) if order == "xy" else (y, x)
    np.testing.assert_allclose(_f64(pwcca, a, b), ref.pwcca(a, b), atol=1e-9)
    np.testing.assert_allclose(pwcca(a, b), ref.pwcca(a, b), atol=2e-4)


def test_pwcca_is_asymmetric():
    x, y = _pair(dx=15, dy=6)
    assert abs(float(pwcca(x, y)) - float(pwcca(y, x))) > 1e-3


@pytest.mark.parametrize(("epsilon", "threshold"), [(0.0, 0.98), (1e-6, 0.98), (1e-3, 0.5)])
def test_google_summary_matches_reimplementation(epsilon, threshold):
    x, y = _pair()
    expect = ref.google_summary(x, y, epsilon, threshold)
    got = _f64(google_cca_summary, x, y, epsilon=epsilon, threshold=threshold)
    np.testing.assert_allclose(got, expect, atol=1e-9)
    got32 = google_cca_summary(x, y, epsilon=epsilon, threshold=threshold)
    np.testing.assert_allclose(got32, expect, atol=2e-4)


def test_google_summary_differs_from_svcca_mean():
    x, y = _pair(dx=12, dy=4)
    y = np.concatenate([y, np.random.default_rng(1).normal(size=(300, 6))], axis=1)
    rho = ref.cca(x, y)
    got = float(google_cca_summary(x, y))
    assert abs(got - float(np.mean(rho))) > 1e-2  # trailing small correlations trimmed
    np.testing.assert_allclose(got, ref.google_summary(x, y), atol=2e-4)


# ----------------------------------------------------------------- identities, invariances


@pytest.mark.parametrize("fn", [svcca, pwcca, google_cca_summary])
def test_self_similarity_is_one(fn):
    x, _ = _pair()
    np.testing.assert_allclose(fn(x, x), 1.0, atol=1e-5)
    np.testing.assert_allclose(cca(x, x), 1.0, atol=1e-5)


def test_invariance_invertible_and_orthogonal():
    x, y = _pair()
    rng = np.random.default_rng(5)
    a = rng.normal(size=(12, 12)) + 3 * np.eye(12)
    q = _ortho(12, 6)
    base = ref.cca(x, y)
    for xt in (x @ a + 7.0, x @ q):
        np.testing.assert_allclose(cca(xt, y), base, atol=3e-4)
        np.testing.assert_allclose(svcca(xt, y, 1.0), np.mean(base), atol=3e-4)
    # with a variance threshold, SVCCA is invariant to orthogonal maps and scaling
    np.testing.assert_allclose(svcca(2.5 * x @ q, y), svcca(x, y), atol=3e-5)


def test_svcca_symmetric():
    x, y = _pair()
    np.testing.assert_allclose(svcca(x, y), svcca(y, x), atol=1e-6)


@pytest.mark.parametrize("scale", [1e-6, 1e6])
@pytest.mark.parametrize("fn", [svcca, pwcca, google_cca_summary])
def test_scale_free(fn, scale):
    x, y = _pair()
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    got = fn((x * scale).astype(np.float32), y32)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, fn(x32, y32), atol=1e-5)
    np.testing.assert_allclose(cca(x32 * scale, y32 * scale), cca(x32, y32), atol=1e-5)


# ----------------------------------------------------------------- pathological inputs


@pytest.mark.parametrize("fn", [cca, svcca, pwcca, google_cca_summary])
def test_n_le_d_is_finite(fn):
    x, y = _pair(n=8, dx=20, dy=15)
    out = np.asarray(fn(x, y))
    assert np.all(np.isfinite(out)) and np.all(out >= 0) and np.all(out <= 1 + 1e-6)


def test_dead_constant_duplicated_units_equal_cropping():
    x, y = _pair()
    dead = np.concatenate([x, np.zeros((300, 2)), np.full((300, 1), 4.0)], axis=1)
    dup = np.concatenate([dead, x[:, :2]], axis=1)
    with enable_x64():
        for fn in (svcca, google_cca_summary):
            np.testing.assert_allclose(fn(dead, y), fn(x, y), atol=1e-9)
            np.testing.assert_allclose(fn(y, dead), fn(y, x), atol=1e-9)
        # duplicates change the variance spectrum (SVCCA keep < 1) but not the span
        for fn in (functools.partial(svcca, keep=1.0), google_cca_summary, pwcca):
            np.testing.assert_allclose(fn(y, dup), fn(y, x), atol=1e-9)
        np.testing.assert_allclose(cca(dup, y), cca(x, y), atol=1e-9)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    for fn in (svcca, google_cca_summary, pwcca):
        np.testing.assert_allclose(fn(y32, dead.astype(np.float32)), fn(y32, x32), atol=1e-5)


def test_prepare_centres_scales_and_reports_live_units():
    # the one-pass view against the equations: z = c diag(sqrt(w)) (x - 1 w^T x) with
    # one c > 0 for all units, max|z| <= 1, constant units and padding rows exactly 0
    from jaxdyn.analysis._linalg import prepare_live

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)) * [1e-6, 1.0, 1e3, 1.0, 1.0] + 7.0
    x[:, 3] = -2.0  # constant unit
    w = rng.uniform(0.5, 1.5, size=40)
    w[30:] = 0.0  # padding rows, holding anything
    x[30:, 1] = np.inf
    w = w / w.sum()
    z, m, live = (np.asarray(t) for t in jax.jit(prepare_live)(x.astype(np.float32), w))
    np.testing.assert_array_equal(live, [True, True, True, False, True])
    xv = x[:30].astype(np.float64)
    mu = w[:30] @ xv
    ref = np.sqrt(w[:30])[:, None] * (xv - mu)
    ref[:, 3] = 0.0
    c = np.max(np.abs(z)) / np.max(np.abs(ref))
    np.testing.assert_allclose(z[:30], c * ref, atol=2e-6)
    assert np.all(z[30:] == 0) and np.all(z[:, 3] == 0)
    assert 0.5 < np.max(np.abs(z)) <= 1.0
    np.testing.assert_allclose(m, c * (w[:30] @ np.where(np.isinf(xv), 0, xv)), rtol=1e-5)


def test_pwcca_dead_units_in_second_input():
    x, y = _pair()
    y_bad = np.concatenate([np.zeros((300, 3)), y], axis=1)
    with enable_x64():
        np.testing.assert_allclose(pwcca(x, y_bad), ref.pwcca(x, y), atol=1e-9)
        np.testing.assert_allclose(pwcca(y_bad, x), ref.pwcca(y, x), atol=1e-9)


@pytest.mark.parametrize("fn", [svcca, pwcca, google_cca_summary])
def test_constant_view_gives_zero(fn):
    x, _ = _pair()
    out = fn(x, np.ones((300, 4)))
    assert float(out) == 0.0


def test_mask_equals_cropping():
    x, y = _pair()
    mask = np.zeros(300)
    mask[:200] = 1
    xp, yp = x.copy(), y.copy()
    xp[200:] = 1e3  # garbage in padded rows must not matter
    with enable_x64():
        np.testing.assert_allclose(cca(xp, yp, weights=mask), ref.cca(x[:200], y[:200]), atol=1e-9)
        np.testing.assert_allclose(
            svcca(xp, yp, weights=mask), ref.svcca(x[:200], y[:200]), atol=1e-9
        )
        np.testing.assert_allclose(
            google_cca_summary(xp, yp, weights=mask),
            ref.google_summary(x[:200], y[:200]),
            atol=1e-9,
        )


@pytest.mark.parametrize("pad", [3e38, np.inf, np.nan])
def test_mask_ignores_any_value_in_padded_rows(pad):
    # padded rows may hold sentinels or non-finite values; a 0 weight must ignore them
    x, y = (a.astype(np.float32) for a in _pair())
    mask = (np.arange(300) < 200).astype(np.float32)
    xp, yp = x.copy(), y.copy()
    xp[200:], yp[200:] = pad, pad
    for fn in (svcca, pwcca, google_cca_summary):
        np.testing.assert_allclose(fn(xp, yp, weights=mask), fn(x[:200], y[:200]), atol=1e-5)
    np.testing.assert_allclose(cca(xp, yp, weights=mask), cca(x[:200], y[:200]), atol=1e-5)
    rho, _ = cca_accumulate_finalize(_stream(xp, yp, 64, mask))
    np.testing.assert_allclose(rho, ref.cca(x[:200], y[:200]), atol=1e-3)


def test_bad_input_raises():
    x, y = _pair()
    with pytest.raises(ValueError, match="same samples"):
        svcca(x, y[:10])
    with pytest.raises(ValueError, match="keep"):
        svcca(x, y, 1.5)
    with pytest.raises(ValueError, match="method"):
        cca(x, y, method="qr")
    with pytest.raises(ValueError, match="weights"):
        cca(x, y, weights=np.ones(5))
    state = _stream(x, y, 100)
    for kw in ({"threshold": 1.5}, {"threshold": 0.0}, {"epsilon": -1.0}):
        with pytest.raises(ValueError, match="epsilon >= 0"):
            cca_accumulate_finalize(state, summary="google", **kw)


# ----------------------------------------------------------------- transforms


def test_jit_equals_eager():
    x, y = _pair(n=100)
    jitted = [svcca(x, y), pwcca(x, y), google_cca_summary(x, y)]
    with jax.disable_jit():
        eager = [svcca(x, y), pwcca(x, y), google_cca_summary(x, y)]
    np.testing.assert_allclose(jitted, eager, atol=1e-5)


def test_vmap_equals_loop():
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(4, 80, 6)).astype(np.float32)
    ys = (xs[..., :5] + rng.normal(size=(4, 80, 5))).astype(np.float32)
    for fn in (svcca, pwcca, google_cca_summary):
        batched = jax.vmap(fn)(xs, ys)
        np.testing.assert_allclose(batched, [fn(a, b) for a, b in zip(xs, ys)], atol=1e-5)


def test_no_retrace_on_second_call():
    x, y = _pair(n=50, dx=5, dy=4, seed=9)
    x2 = x + 1.0
    for fn in (cca, svcca, pwcca, google_cca_summary):
        for kw in ({"method": "svd"}, {}) if fn is not google_cca_summary else ({},):
            fn(x, y, **kw)
            size = fn._cache_size()
            fn(x2, y, **kw)
            assert fn._cache_size() == size
    pwcca(x, y, convention="google")
    size = pwcca._cache_size()
    pwcca(x2, y, convention="google")
    assert pwcca._cache_size() == size


# ----------------------------------------------------------------- streaming


def _stream(x, y, batch, weights=None):
    dt = jnp.asarray(x).dtype
    state = cca_accumulate_init(x.shape[1], y.shape[1], dt)
    for s in range(0, x.shape[0], batch):
        w = None if weights is None else weights[s : s + batch]
        state = cca_accumulate_update(state, x[s : s + batch], y[s : s + batch], w)
    return state


def test_streaming_cca_matches_full():
    x, y = _pair()
    with enable_x64():
        state = _stream(jnp.asarray(x), jnp.asarray(y), 64)
        rho, valid = cca_accumulate_finalize(state)
        np.testing.assert_allclose(rho, ref.cca(x, y), atol=1e-9)
        assert bool(np.all(valid))
        np.testing.assert_allclose(
            cca_accumulate_finalize(state, keep=0.9, summary="mean"),
            ref.svcca(x, y, 0.9),
            atol=1e-9,
        )
        np.testing.assert_allclose(
            cca_accumulate_finalize(state, summary="google"), ref.google_summary(x, y), atol=1e-9
        )
    rho32, _ = cca_accumulate_finalize(_stream(x.astype(np.float32), y.astype(np.float32), 50))
    np.testing.assert_allclose(rho32, ref.cca(x, y), atol=1e-3)


def test_streaming_mask_and_dead_units():
    x, y = _pair()
    mask = (np.arange(300) % 3 != 0).astype(float)
    x_bad = np.concatenate([x, np.zeros((300, 2))], axis=1)
    with enable_x64():
        state = _stream(jnp.asarray(x_bad), jnp.asarray(y), 70, jnp.asarray(mask))
        rho, valid = cca_accumulate_finalize(state)
        keep = mask > 0
        np.testing.assert_allclose(rho, ref.cca(x[keep], y[keep]), atol=1e-9)
        assert int(np.sum(valid)) == 9


# ----------------------------------------------------------------- google/svcca's PWCCA

GOOGLE = json.loads((Path(__file__).parent / "data" / "google_pwcca.json").read_text())
GOOGLE_CASES = {name: (x, y, eps) for name, x, y, eps in google_cases()}


@pytest.mark.parametrize("name", sorted(GOOGLE))
def test_google_pwcca_matches_google_svcca_outputs(name):
    # values computed once by google/svcca's own compute_pwcca (tests/data/make_google_pwcca.py)
    x, y, eps = GOOGLE_CASES[name]
    rec = GOOGLE[name]
    if rec["google"] is not None:  # where google's code runs, its value is the intent's
        assert rec["google"] == rec["intent"]
    else:
        assert x.shape[1] > y.shape[1]  # the crashing branch: first view wider
    got = float(pwcca(x, y, convention="google", epsilon=eps))
    np.testing.assert_allclose(got, rec["intent"], atol=2e-3)
    np.testing.assert_allclose(
        pwcca(y, x, convention="google", epsilon=eps), rec["reversed"], atol=2e-3
    )
    np.testing.assert_allclose(google_cca_summary(x, y, epsilon=eps), rec["summary"], atol=2e-3)
    state = _stream(x, y, 700)
    np.testing.assert_allclose(
        cca_accumulate_finalize(state, summary="pwcca", convention="google", epsilon=eps),
        rec["intent"],
        atol=2e-3,
    )


def test_pwcca_conventions_differ_where_they_should():
    # means and correlated units: google projects uncentred units on unwhitened
    # directions (plus the unit means), the paper centred units on canonical variates
    x, y, _ = GOOGLE_CASES["large_means"]
    paper, google = float(pwcca(x, y)), float(pwcca(x, y, convention="google"))
    assert abs(paper - google) > 0.1
    # orthonormal, zero-mean units of the narrower view: Xc u_i are the canonical
    # variates and units are centred, so the two definitions coincide
    # (distinct correlations: PWCCA is not defined within a tied singular subspace)
    rng = np.random.default_rng(3)
    q = rng.normal(size=(800, 6))
    q = np.linalg.qr(q - q.mean(axis=0))[0] * 3.0
    shared = q[:, :4] * np.arange(1, 5) + 0.05 * rng.normal(size=(800, 4))
    y2 = np.concatenate([shared, rng.normal(size=(800, 6))], axis=1) @ rng.normal(size=(10, 10))
    with enable_x64():
        np.testing.assert_allclose(pwcca(q, y2, convention="google"), pwcca(q, y2), atol=1e-6)
        # google takes the weights from the narrower view whichever the order
        np.testing.assert_allclose(pwcca(y2, q, convention="google"), pwcca(q, y2), atol=1e-6)
        assert abs(float(pwcca(y2, q)) - float(pwcca(q, y2))) > 1e-2  # the paper's: first view


def test_streaming_pwcca_paper_matches_kernel():
    x, y = _pair()
    with enable_x64():
        state = _stream(jnp.asarray(x), jnp.asarray(y), 64)
        for a, b, st in ((x, y, state), (y, x, _swap(state))):
            got = cca_accumulate_finalize(st, summary="pwcca")
            np.testing.assert_allclose(got, ref.pwcca(a, b), atol=1e-9)


def _swap(s):
    return type(s)(s.count, s.mean_y, s.mean_x, s.cyy, s.cxx, s.cxy.T)


def test_pwcca_convention_errors():
    x, y = _pair()
    with pytest.raises(ValueError, match="convention"):
        pwcca(x, y, convention="morcos")
    with pytest.raises(ValueError, match="keep must be None"):
        pwcca(x, y, 0.99, convention="google")
    with pytest.raises(ValueError, match="epsilon is an option"):
        pwcca(x, y, epsilon=1e-3)
    with pytest.raises(ValueError, match="epsilon >= 0"):
        pwcca(x, y, convention="google", epsilon=-1.0)
    with pytest.raises(ValueError, match="summary"):
        cca_accumulate_finalize(_stream(x, y, 100), summary="median")


# ----------------------------------------------------------------- ill-conditioned views


def _spectrum_pair(cond, n=2000, d=60, seed=0):
    """x with singular values logspace(0, -log10(cond)) (random rotation, offset), y a
    noisy tanh of x: float32 views whose small directions float32 cannot resolve."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.normal(size=(n, d)))[0]
    v = np.linalg.qr(rng.normal(size=(d, d)))[0]
    x = (u * np.logspace(0, -np.log10(cond), d)) @ v.T * 10 + 0.5
    y = np.tanh(x @ rng.normal(size=(d, d)) / np.sqrt(d) * 3) + 0.1 * rng.normal(size=(n, d))
    return x.astype(np.float32), y.astype(np.float32)


@pytest.mark.parametrize("cond", [1e1, 1e2, 1e4, 1e6])
def test_methods_agree_with_float64_reference_up_to_cond_1e6(cond):
    # "gram" used to drop directions below sqrt(D eps) s_0 and "svd" below N eps s_0
    # (PWCCA 0.723 vs 0.672 at 1e5); float32 centring or SVD alone is 5e-3 off at 1e6
    x, y = _spectrum_pair(cond)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    assert np.linalg.cond(xc) > cond / 3
    expect = {
        "cca": ref.cca(x, y),
        "svcca": ref.svcca(x, y, 0.99),
        "pwcca": ref.pwcca(x, y),
        "pwcca_yx": ref.pwcca(y, x),
    }
    for method in ("gram", "svd"):
        got = {
            "cca": np.asarray(cca(x, y, method=method)),
            "svcca": svcca(x, y, method=method),
            "pwcca": pwcca(x, y, method=method),
            "pwcca_yx": pwcca(y, x, method=method),
        }
        for key, val in expect.items():
            np.testing.assert_allclose(got[key], val, atol=1e-4, err_msg=f"{method} {key}")
    xs = np.stack([x, y, x[:, ::-1]])
    for metric in ("pwcca", "cca"):
        g = np.asarray(pairwise(metric, xs, method="gram"))
        s = np.asarray(pairwise(metric, xs, method="svd"))
        np.testing.assert_allclose(g, s, atol=1e-4)
    np.testing.assert_allclose(g[0, 1], expect["cca"], atol=1e-4)


def test_float64_steps_under_vmap_and_jit():
    # the fallback's float64 steps run under jax.enable_x64 also when batched
    xs = np.stack([_spectrum_pair(1e5, n=300, d=12, seed=s)[0] for s in range(3)])
    ys = np.stack([_spectrum_pair(1e5, n=300, d=12, seed=s)[1] for s in range(3)])
    batched = jax.vmap(pwcca)(xs, ys)
    np.testing.assert_allclose(batched, [ref.pwcca(a, b) for a, b in zip(xs, ys)], atol=1e-4)
    assert batched.dtype == jnp.float32
