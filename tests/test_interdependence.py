"""Tests of jaxdyn.decompose.lstm.interdependence (decompositional interdependence)."""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.decompose.lstm.cd import contextual_decomposition
from jaxdyn.decompose.lstm.di_dense import di_batch_jit
from jaxdyn.decompose.lstm.interdependence import (
    all_pairs,
    all_pairs_interdependence,
    interdependence,
    interdependence_batch,
    span_beta,
)
from jaxdyn.models.lstm import language_model
from tests.reference.cd_ref import di_ref, numpy_params

V, E, H, T = 30, 8, 6, 10


@pytest.fixture(scope="module")
def params():
    m = language_model(V, emb_dim=E, hidden=H, num_layers=2)
    p = m.init(jax.random.PRNGKey(1), jnp.zeros((1, 4), jnp.int32))["params"]
    return jax.tree_util.tree_map(lambda a: a * 2.0, p)


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(2).integers(0, V, T).astype(np.int32)


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.mark.parametrize(
    "space,layer,opts",
    [
        ("hidden", -1, {}),
        ("hidden", 0, {}),
        ("logits", -1, {}),
        ("hidden", -1, {"decompose_output_gate": True, "span_bias": "exclusive_last"}),
        ("hidden", -1, {"upper_bias_in_span": True}),
    ],
)
@pytest.mark.parametrize("n_pairs", [3, 12])  # 2P <= T: 3P spans; 2P > T: shared singletons
def test_matches_numpy_reference_float64(params, tokens, space, layer, opts, n_pairs):
    pairs = all_pairs(T, 4)[:n_pairs]
    pairs[0, 1] = -1  # an empty partner
    target = np.array([T - 1 - (k % 3) for k in range(n_pairs)])
    npp = numpy_params(params)
    ref = [
        di_ref(npp, tokens, x, y, t, layer=layer, space=space, **opts)
        for (x, y), t in zip(pairs, target)
    ]
    with jax.enable_x64(True):
        di = interdependence(_f64(params), tokens, pairs, target, space=space, layer=layer, **opts)
        assert di.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(di), ref, atol=1e-10)
    assert ref[0] == 0.0 and max(ref) > 1e-3
    di32 = interdependence(params, tokens, pairs, target, space=space, layer=layer, **opts)
    np.testing.assert_allclose(np.asarray(di32), ref, atol=1e-4)


@pytest.mark.parametrize("dog", [False, True])
def test_span_beta_equals_full_cd(params, tokens, dog):
    rng = np.random.default_rng(3)
    masks = rng.random((4, T)) < 0.3
    carry = tuple(
        (jnp.asarray(rng.normal(size=H)), jnp.asarray(rng.normal(size=H))) for _ in range(2)
    )
    with jax.enable_x64(True):
        p, c = _f64(params), _f64(carry)
        fast = span_beta(p, tokens, masks, init_carry=c, decompose_output_gate=dog, length=8)
        for m in range(4):
            r = contextual_decomposition(
                p, tokens, masks[m], init_carry=c, decompose_output_gate=dog, length=8
            )
            np.testing.assert_allclose(np.asarray(fast[m]), np.asarray(r.beta_h[-1]), atol=1e-10)
    c32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), carry)
    fast = span_beta(params, tokens, masks, init_carry=c32, layer=0, decompose_output_gate=dog)
    r = contextual_decomposition(
        params, tokens, masks[1], init_carry=c32, decompose_output_gate=dog
    )
    np.testing.assert_allclose(np.asarray(fast[1]), np.asarray(r.beta_h[0]), atol=1e-5)


def test_vmapped_pairs_equal_per_pair_loop(params, tokens):
    pairs = all_pairs(T)
    target = np.maximum(pairs[:, 1], 5)
    di = interdependence(params, tokens, pairs, target, mask_chunk=16)
    loop = [
        interdependence(params, tokens, pairs[k : k + 1], target[k])[0] for k in range(len(pairs))
    ]
    np.testing.assert_allclose(np.asarray(di), np.asarray(loop), atol=2e-5)


def test_batch_equals_per_sentence(params, tokens):
    rng = np.random.default_rng(5)
    toks = np.stack([tokens, rng.integers(0, V, T).astype(np.int32)])
    lengths = np.array([T, 7])
    pairs = np.stack([all_pairs(T, 2)[:15], all_pairs(7, 3)[:15]])
    target = np.array([[T - 1] * 15, [6] * 15])
    di = interdependence_batch(params, toks, pairs, target, lengths=lengths, space="logits")
    for b in range(2):
        one = interdependence(
            params, toks[b], pairs[b], target[b], length=lengths[b], space="logits"
        )
        np.testing.assert_allclose(np.asarray(di[b]), np.asarray(one), atol=1e-5)


def test_empty_partner_and_guard(params, tokens):
    pairs = np.array([[3, -1], [-1, 5], [-1, -1], [2, 9]])
    di = np.asarray(interdependence(params, tokens, pairs, 6))
    assert di[0] == 0.0 and di[1] == 0.0 and di[2] == 0.0  # exactly, no NaN
    assert abs(di[3]) < 1e-6  # y = 9 is after the target 6: beta_{x,y} = beta_x there
    assert np.all(np.isfinite(di))
    assert float(interdependence(params, tokens, [[2, 4]], 6)[0]) > 0


def test_all_pairs_targets(params, tokens):
    pairs, di = all_pairs_interdependence(params, tokens, max_distance=3, target="pair_end")
    assert np.all(pairs[:, 1] - pairs[:, 0] <= 3) and np.all(pairs[:, 0] < pairs[:, 1])
    direct = interdependence(params, tokens, pairs, pairs[:, 1])
    np.testing.assert_allclose(np.asarray(di), np.asarray(direct), atol=1e-6)
    pairs, di = all_pairs_interdependence(params, tokens, target=5)
    assert pairs[:, 1].max() == 5 and len(pairs) == 15
    pairs, _ = all_pairs_interdependence(params, tokens, length=7)
    assert len(pairs) == 21


def test_jit_eager_and_no_retrace(params, tokens):
    pairs = all_pairs(T, 2)
    di = interdependence(params, tokens, pairs, T - 1, schedule="dense")
    n = di_batch_jit._cache_size()
    interdependence(params, tokens[::-1].copy(), pairs, T - 2, schedule="dense")
    assert di_batch_jit._cache_size() == n
    with jax.disable_jit():
        eager = interdependence(params, tokens, pairs, T - 1, schedule="dense")
    np.testing.assert_allclose(np.asarray(di), np.asarray(eager), atol=1e-5)


def test_bad_inputs(params, tokens):
    with pytest.raises(ValueError, match="pair positions"):
        interdependence(params, tokens, [[0, T]], 3)
    with pytest.raises(ValueError, match="target"):
        interdependence(params, tokens, [[0, 1]], T)
    with pytest.raises(ValueError, match="target"):
        interdependence(params, tokens, [[0, 1]], 6, length=5)
    with pytest.raises(ValueError, match="space"):
        interdependence(params, tokens, [[0, 1]], 3, space="cell")
    with pytest.raises(ValueError, match="layer"):
        interdependence(params, tokens, [[0, 1]], 3, space="logits", layer=0)
    with pytest.raises(ValueError, match="target"):
        all_pairs_interdependence(params, tokens, target="first")


# --- packed schedule (concrete pairs) vs the traced fixed-shape path -------------------

from jaxdyn.decompose.lstm.di_packed import _di_packed_jit  # noqa: E402
from jaxdyn.decompose.lstm.di_schedule import bucket, schedule  # noqa: E402


def _traced_batch(params, toks, pairs, target, lengths, carry, **kw):
    """interdependence_batch with pairs/target/lengths traced: the fixed-shape path."""
    fn = jax.jit(
        lambda pr, tg, ln, c: interdependence_batch(
            params, toks, pr, tg, lengths=ln, init_carry=c, schedule="dense", **kw
        )
    )
    return fn(pairs, target, lengths, carry)


def _batch_inputs(seed=7):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, V, (3, T)).astype(np.int32)
    lengths = np.array([T, 7, 4])
    pairs = np.full((3, 20, 2), -1, np.int32)
    for b, n in enumerate(lengths):
        pl = all_pairs(int(n), 3)[:20]
        pairs[b, : len(pl)] = pl
    pairs[0, 0] = [4, -1]  # empty partner
    pairs[0, 1] = [-1, 2]
    pairs[1, 1] = [3, 3]  # x == y
    pairs[0, 2] = [6, 2]  # y < x
    target = np.stack([rng.integers(0, n, 20) for n in lengths]).astype(np.int32)
    carry = tuple(
        (
            jnp.asarray(rng.normal(size=(3, H)) * 0.5, jnp.float32),
            jnp.asarray(rng.normal(size=(3, H)), jnp.float32),
        )
        for _ in range(2)
    )
    return toks, pairs, target, lengths, carry


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"space": "logits", "logit_ids": np.array([1, 5, 7])},
        {"layer": 0, "span_bias": "exclusive_last"},
        {"decompose_output_gate": True, "upper_bias_in_span": True, "mask_chunk": 8},
    ],
)
def test_packed_equals_traced_path(params, opts):
    toks, pairs, target, lengths, carry = _batch_inputs()
    packed = interdependence_batch(
        params, toks, pairs, target, lengths=lengths, init_carry=carry, **opts
    )
    traced = _traced_batch(params, toks, pairs, target, lengths, carry, **opts)
    np.testing.assert_allclose(np.asarray(packed), np.asarray(traced), atol=1e-5)
    assert np.asarray(packed)[0, 0] == 0.0 and np.asarray(packed)[0, 1] == 0.0
    assert float(np.max(np.asarray(packed))) > 1e-3


def test_traced_path_matches_numpy_reference_float64(params, tokens, monkeypatch):
    pairs = all_pairs(T, 3)[:8]
    target = np.array([T - 1 - (k % 4) for k in range(8)], np.int32)
    npp = numpy_params(params)
    ref = [di_ref(npp, tokens, x, y, t) for (x, y), t in zip(pairs, target)]
    with jax.enable_x64(True):
        p64 = _f64(params)
        fn = jax.jit(lambda pr, tg: interdependence(p64, tokens, pr, tg, schedule="dense"))
        with monkeypatch.context() as mp:  # the packed path must not run here
            mp.setattr(sys.modules[interdependence.__module__], "di_packed", None)
            di = fn(pairs, target)
        np.testing.assert_allclose(np.asarray(di), ref, atol=1e-10)


def _chain(sched, row):
    """Walk back from an output row to the span's first step (through a fork):
    positions, relevant-word and bias flags along the way, first step first."""
    phases = [sched.single, sched.forked]
    sizes = [ph.pos.size for ph in phases]
    if row >= sum(sizes):
        return None
    ph = 0 if row < sizes[0] else 1
    row -= 0 if ph == 0 else sizes[0]
    out = []
    while True:
        _, r, w = phases[ph].pos.shape
        ci, rest = divmod(int(row), r * w)
        step, li = divmod(rest, w)
        while True:
            out.append(
                tuple(int(getattr(phases[ph], f)[ci, step, li]) for f in ("pos", "rel", "bias"))
            )
            if phases[ph].reset[ci, step, li]:
                break
            step -= 1
            assert step >= 0
        init = int(phases[ph].init[ci, step, li])
        if ph == 0 or init < 0:
            assert init < 0  # phase 1 starts from zeros
            return np.array(out[::-1])
        ph, row = 0, init


@pytest.mark.parametrize("span_bias", ["inclusive", "exclusive_last"])
def test_schedule_reads_each_span_at_its_target(span_bias):
    rng = np.random.default_rng(11)
    b, p, t_len = 4, 40, 12
    lengths = rng.integers(3, t_len + 1, b)
    pairs = np.stack([rng.integers(-1, t_len, (p, 2)) for _ in range(b)]).astype(np.int32)
    pairs[:, :8, 1] = np.minimum(pairs[:, :8, 0] + 1, t_len - 1)  # adjacent pairs
    target = np.stack([rng.integers(0, n, p) for n in lengths])
    s = schedule(pairs, target, lengths, t_len, span_bias, chunk=5)
    assert s.single.pos.shape[2] == 5 and s.read.shape == (b * p, 3)
    assert s.single.pos.shape[1] <= t_len and s.forked.pos.size > 0
    x, y = pairs[..., 0].reshape(-1), pairs[..., 1].reshape(-1)
    sent, tgt = np.repeat(np.arange(b), p), target.reshape(-1)
    for k in range(b * p):
        for j, span in enumerate(({x[k]}, {y[k]}, {x[k], y[k]})):
            span = sorted(int(q) for q in span if q >= 0)
            chain = _chain(s, s.read[k, j])
            if not span or span[0] > tgt[k]:
                assert chain is None
                continue
            want = np.arange(span[0], tgt[k] + 1)
            inside = np.isin(want, span)
            bias = inside
            if span_bias == "exclusive_last":
                bias = inside & np.isin(want + 1, span) & (want + 1 < lengths[sent[k]])
            np.testing.assert_array_equal(chain[:, 0], sent[k] * t_len + want)
            np.testing.assert_array_equal(chain[:, 1], inside)
            np.testing.assert_array_equal(chain[:, 2], bias)
    for ph in s:
        if isinstance(ph, tuple):
            assert ph.reset[:, 0].all() and not (ph.bias & ~ph.rel).any()


def test_bucket_sizes():
    assert [bucket(n) for n in (0, 1, 8, 9, 15, 16, 17, 100, 1000)] == [
        8, 8, 8, 9, 15, 16, 18, 104, 1024,
    ]  # fmt: skip
    for n in range(1, 3000, 7):
        assert n <= bucket(n) <= max(8, n * 9 // 8 + 1)


def test_packed_no_retrace_and_jit_eager(params, tokens):
    pairs = all_pairs(T, 2)
    di = interdependence(params, tokens, pairs, T - 1)
    interdependence(params, tokens, pairs, T - 2)  # a shorter forked phase: compiles once
    n = _di_packed_jit._cache_size()
    interdependence(params, tokens[::-1].copy(), pairs, T - 2)
    interdependence(params, tokens, np.clip(pairs + 1, 0, T - 1), T - 1)  # same buckets
    assert _di_packed_jit._cache_size() == n
    with jax.disable_jit():
        eager = interdependence(params, tokens, pairs, T - 1)
    np.testing.assert_allclose(np.asarray(di), np.asarray(eager), atol=1e-5)


def test_bad_mask_chunk(params, tokens):
    with pytest.raises(ValueError, match="mask_chunk"):
        interdependence(params, tokens, [[0, 1]], 3, mask_chunk=0)


def test_bad_logit_ids_targets_lengths_and_chunks(params, tokens):
    # out-of-range decoder rows used to be clamped silently to the last row
    with pytest.raises(ValueError, match="logit_ids"):
        interdependence(params, tokens, [[0, 1]], 3, space="logits", logit_ids=[V])
    toks, pairs, tgt = np.stack([tokens, tokens]), np.zeros((2, 1, 2), np.int32), [3, 3]
    with pytest.raises(ValueError, match="logit_ids"):
        interdependence_batch(params, toks, pairs, tgt, space="logits", logit_ids=[V + 1])
    # lengths must be (B,): a (1,) vector for two sentences was accepted (or IndexError)
    for sb in ("inclusive", "exclusive_last"):
        with pytest.raises(ValueError, match="length"):
            interdependence_batch(params, toks, pairs, tgt, lengths=[T], span_bias=sb)
    # an int target outside the sentence used to give an empty result silently
    for bad in (-1, T):
        with pytest.raises(ValueError, match="target"):
            all_pairs_interdependence(params, tokens, target=bad)
    with pytest.raises(ValueError, match="target"):
        all_pairs_interdependence(params, tokens[:1], target=3)
    for chunk in (0, -1, 2.5):
        with pytest.raises(ValueError, match="mask_chunk"):
            span_beta(params, tokens, np.eye(T, dtype=bool)[:3], mask_chunk=chunk)
        with pytest.raises(ValueError, match="mask_chunk"):
            jax.jit(
                lambda tg, c=chunk: interdependence(params, tokens, [[0, 1]], tg, mask_chunk=c)
            )(3)
