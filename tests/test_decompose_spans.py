"""DI of span pairs and the parts at the targets (jaxdyn.decompose.lstm.interdependence).

Span pairs ``[[a_lo, a_hi], [b_lo, b_hi]]`` (inclusive; ``[-1, -1]`` empty) against
the full contextual decomposition with the span masks, against the independent
float64 NumPy reference, packed == dense, and padding invariance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.interactions import di_ratio
from jaxdyn.decompose import DIParts, cd_batch, interdependence, interdependence_batch
from jaxdyn.decompose.lstm.di_schedule import schedule
from jaxdyn.models.lstm import language_model
from tests.reference.cd_ref import di_ref, numpy_params
from tests.test_interdependence import _chain

V, E, H, T = 30, 8, 6, 12
IDS = np.array([1, 4, 9, 20])


@pytest.fixture(scope="module")
def params():
    m = language_model(V, emb_dim=E, hidden=H, num_layers=2)
    p = m.init(jax.random.PRNGKey(4), jnp.zeros((1, 4), jnp.int32))["params"]
    p = jax.tree_util.tree_map(lambda a: a * 2.0, p)
    p["decoder"]["bias"] = jnp.linspace(-1.0, 1.0, V)  # a nonzero decoder bias
    return p


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def random_spans(rng, n, length):
    """``(n, 2, 2)`` span pairs of every kind (gap, adjacent, overlap, nested, equal,
    reversed, empty parts) within ``length``, and targets ``(n,)``."""
    out = np.full((n, 2, 2), -1, np.int64)
    for k in range(n):
        kind = k % 8
        a_lo = int(rng.integers(0, length))
        a_hi = int(rng.integers(a_lo, min(length, a_lo + 4)))
        b_lo = int(rng.integers(0, length))
        b_hi = int(rng.integers(b_lo, min(length, b_lo + 4)))
        if kind == 0 and a_hi + 2 < length:  # gap
            b_lo = int(rng.integers(a_hi + 2, length))
            b_hi = int(rng.integers(b_lo, length))
        elif kind == 1 and a_hi + 1 < length:  # adjacent
            b_lo, b_hi = a_hi + 1, int(rng.integers(a_hi + 1, length))
        elif kind == 2:  # nested / equal
            b_lo, b_hi = a_lo, a_hi if k % 3 else a_lo
        out[k] = [[a_lo, a_hi], [b_lo, b_hi]]
        if kind == 3:
            out[k] = out[k][::-1]
        if kind == 4:
            out[k, k % 2] = -1
        if kind == 5 and k % 5 == 0:
            out[k] = -1
    target = rng.integers(0, length, n)
    return out.astype(np.int32), target.astype(np.int32)


def _masks(spans, t_len):
    pos = np.arange(t_len)

    def one(lo, hi):
        return (pos >= lo) & (pos <= hi) & (lo >= 0)

    ma = one(spans[..., 0, 0, None], spans[..., 0, 1, None])
    mb = one(spans[..., 1, 0, None], spans[..., 1, 1, None])
    return ma, mb, ma | mb


def _part_set(span):
    lo, hi = (int(v) for v in span)
    return list(range(lo, hi + 1)) if lo >= 0 else []


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    toks = rng.integers(0, V, (3, T)).astype(np.int32)
    lengths = np.array([T, 9, 6], np.int32)
    sp, tg = zip(*(random_spans(rng, 16, int(n)) for n in lengths))
    carry = tuple(
        (
            rng.normal(size=(3, H)).astype(np.float32) * 0.5,
            rng.normal(size=(3, H)).astype(np.float32),
        )
        for _ in range(2)
    )
    return toks, np.stack(sp), np.stack(tg), lengths, carry


@pytest.mark.parametrize("schedule_name", ["packed", "dense"])
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"span_bias": "exclusive_last", "decompose_output_gate": True},
        {"upper_bias_in_span": True},
    ],
)
def test_parts_equal_full_cd_float64(params, case, schedule_name, opts):
    toks, spans, target, lengths, carry = case
    with jax.enable_x64(True):
        p, c = _f64(params), _f64(carry)
        res = interdependence_batch(
            p, toks, spans, target, lengths=lengths, init_carry=c, space=("hidden", "logits"),
            parts=True, schedule=schedule_name, **opts,
        )  # fmt: skip
        ma, mb, mab = _masks(spans, T)
        cd = [cd_batch(p, toks, m, lengths=lengths, init_carry=c, **opts) for m in (ma, mb, mab)]
        b_idx, p_idx = np.indices(target.shape)
        for space, field, out_field in (
            ("hidden", "beta_h", None),
            ("logits", "beta_logits", "logits"),
        ):
            r = res[space]
            assert isinstance(r, DIParts) and r.di.dtype == jnp.float64
            want = []
            for c_res in cd:
                v = np.asarray(getattr(c_res, field))
                v = v[:, :, -1] if space == "hidden" else v  # top layer
                want.append(v[b_idx, p_idx, target])
            for got, w in zip((r.beta_x, r.beta_y, r.beta_xy), want):
                np.testing.assert_allclose(np.asarray(got), w, atol=1e-11)
            if out_field is None:
                full = np.asarray(cd[0].beta_h + cd[0].gamma_h)[:, :, -1][b_idx, p_idx, target]
            else:
                full = np.asarray(cd[0].logits)[b_idx, p_idx, target]
            valid = target < lengths[:, None]
            np.testing.assert_allclose(np.asarray(r.output)[valid], full[valid], atol=1e-11)
            np.testing.assert_allclose(np.asarray(r.di), np.asarray(di_ratio(*want)), atol=1e-10)
    assert float(np.max(np.asarray(res["hidden"].di))) > 1e-3


@pytest.mark.parametrize("space", ["hidden", "logits"])
def test_matches_numpy_reference_float64(params, case, space):
    toks, spans, target, lengths, _ = case
    b = 1  # length 9 of T = 12: padding after the sentence
    npp = numpy_params(params)
    ref = [
        di_ref(
            npp, toks[b, : lengths[b]], _part_set(s[0]), _part_set(s[1]), t, space=space, parts=True
        )
        for s, t in zip(spans[b], target[b])
    ]
    with jax.enable_x64(True):
        r = interdependence(
            _f64(params), toks[b], spans[b], target[b], length=lengths[b], space=space, parts=True
        )
        np.testing.assert_allclose(np.asarray(r.di), [x[0] for x in ref], atol=1e-10)
        for k, (_, bx, by, bxy) in enumerate(ref):
            if bxy is None:
                assert float(np.abs(np.asarray(r.beta_xy[k])).max()) == 0.0
                continue
            for got, want in zip((r.beta_x, r.beta_y, r.beta_xy), (bx, by, bxy)):
                np.testing.assert_allclose(np.asarray(got[k]), want, atol=1e-11)
    r32 = interdependence(params, toks[b], spans[b], target[b], length=lengths[b], space=space)
    np.testing.assert_allclose(np.asarray(r32), [x[0] for x in ref], atol=2e-4)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"space": "logits", "logit_ids": IDS},
        {"layer": 0, "span_bias": "exclusive_last"},
        {"decompose_output_gate": True, "upper_bias_in_span": True, "mask_chunk": 8},
    ],
)
def test_packed_equals_dense_with_parts(params, case, opts):
    toks, spans, target, lengths, carry = case
    kw = {"lengths": lengths, "init_carry": carry, "parts": True, **opts}
    packed = interdependence_batch(params, toks, spans, target, **kw)
    dense = jax.jit(
        lambda sp, tg, ln: interdependence_batch(
            params, toks, sp, tg, schedule="dense", **{**kw, "lengths": ln}
        )
    )(spans, target, lengths)
    for a, b in zip(packed, dense):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
    k = len(IDS) if "logit_ids" in opts else (V if opts.get("space") == "logits" else H)
    assert packed.beta_x.shape == (*target.shape, k) and packed.output.shape == (*target.shape, k)


def test_padding_invariance(params, case):
    toks, spans, target, lengths, carry = case
    rng = np.random.default_rng(9)
    padded = np.concatenate([toks, rng.integers(0, V, (3, 7)).astype(np.int32)], 1)
    for i, n in enumerate(lengths):
        padded[i, n:] = rng.integers(0, V, padded.shape[1] - n)
    for name in ("packed", "dense"):
        kw = {"lengths": lengths, "init_carry": carry, "parts": True, "schedule": name}
        a = interdependence_batch(params, toks, spans, target, space=("hidden", "logits"), **kw)
        b = interdependence_batch(params, padded, spans, target, space=("hidden", "logits"), **kw)
        for s in ("hidden", "logits"):
            for x, y in zip(a[s], b[s]):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=2e-6)


def test_single_position_spans_equal_position_pairs(params, case):
    toks, _, target, lengths, _ = case
    rng = np.random.default_rng(3)
    pairs = rng.integers(-1, 6, (3, 10, 2)).astype(np.int32)
    spans = np.repeat(pairs[..., None], 2, axis=-1)
    for name in ("packed", "dense"):
        a = interdependence_batch(
            params, toks, pairs, target[:, :10], lengths=lengths, schedule=name
        )
        b = interdependence_batch(
            params, toks, spans, target[:, :10], lengths=lengths, schedule=name
        )
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_spaces_tuple_equals_separate_calls(params, case):
    toks, spans, target, lengths, _ = case
    both = interdependence_batch(
        params, toks, spans, target, lengths=lengths, space=("hidden", "logits")
    )
    for s in ("hidden", "logits"):
        one = interdependence_batch(params, toks, spans, target, lengths=lengths, space=s)
        np.testing.assert_array_equal(np.asarray(both[s]), np.asarray(one))


@pytest.mark.parametrize("span_bias", ["inclusive", "exclusive_last"])
def test_schedule_reads_each_span_set_at_its_target(span_bias):
    rng = np.random.default_rng(5)
    t_len = 14
    lengths = rng.integers(4, t_len + 1, 4)
    spans, target = zip(*(random_spans(rng, 40, int(n)) for n in lengths))
    spans, target = np.stack(spans), np.stack(target)
    s = schedule(spans, target, lengths, t_len, span_bias, chunk=7)
    sent = np.repeat(np.arange(4), 40)
    flat, tgt = spans.reshape(-1, 2, 2), target.reshape(-1)
    assert s.forked.pos.size > 0
    for k in range(len(flat)):
        a, b = _part_set(flat[k, 0]), _part_set(flat[k, 1])
        for j, part in enumerate((a, b, sorted(set(a + b)))):
            chain = _chain(s, s.read[k, j])
            if not part or part[0] > tgt[k]:
                assert chain is None
                continue
            want = np.arange(part[0], tgt[k] + 1)
            inside = np.isin(want, part)
            bias = inside
            if span_bias == "exclusive_last":
                bias = inside & np.isin(want + 1, part) & (want + 1 < lengths[sent[k]])
            np.testing.assert_array_equal(chain[:, 0], sent[k] * t_len + want)
            np.testing.assert_array_equal(chain[:, 1], inside)
            np.testing.assert_array_equal(chain[:, 2], bias)


def test_bad_spans(params, case):
    toks = case[0]
    for bad in ([[3, 2], [4, 4]], [[0, T], [1, 1]], [[-1, 3], [4, 4]], [[-2, -2], [1, 1]]):
        for name in ("packed", "dense"):
            with pytest.raises(ValueError, match="pair spans"):
                interdependence(params, toks[0], [bad], T - 1, schedule=name)
    with pytest.raises(ValueError, match="spans"):
        interdependence_batch(params, toks, np.zeros((3, 2, 2, 3), np.int32), np.full(3, T - 1))
