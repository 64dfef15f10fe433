"""Tests of jaxdyn.decompose.transformer.interdependence (DI from CD-T)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.interactions import di_ratio
from jaxdyn.decompose import engine
from jaxdyn.decompose import transformer as cdt
from tests.reference.cdt_ref import cdt_ref, di_ref, numpy_params
from tests.test_cdt import H, L, T, V, make_params

PAIRS = np.array([[1, 3], [2, 5], [0, -1], [-1, -1], [6, 7], [4, 4]], np.int32)
TARGETS = np.array([6, 8, 5, 3, 5, 7], np.int32)  # pair 4 lies after its target: DI 0
SPANS = np.array(
    [[[1, 2], [4, 5]], [[0, 0], [3, 6]], [[2, 3], [-1, -1]], [[5, 7], [1, 1]]], np.int32
)
SPAN_TARGETS = np.array([7, 8, 4, 8], np.int32)


@pytest.fixture(scope="module")
def setup():
    _, params = make_params()
    tokens = np.random.default_rng(0).integers(0, V, T).astype(np.int32)
    return params, tokens


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _set(*parts):
    """Positions of span parts ``[lo, hi]`` (``[-1, -1]`` empty) or single positions."""
    out = []
    for p in parts:
        lo, hi = (p, p) if np.ndim(p) == 0 else p
        out += [] if lo < 0 else list(range(lo, hi + 1))
    return out


def _reference(params, tokens, pairs, targets, **rules):
    """Float64 reference DI and parts from per-set CD-T (``tests/reference/cdt_ref.py``)."""
    ref = numpy_params(params, H)
    hid, lgt = [], []
    for (a, b), t in zip(pairs, targets):
        sets = [cdt_ref(ref, tokens, s, **rules) for s in (_set(a), _set(b), _set(a, b))]
        hid.append([s["resid"]["rel"][-1, t] for s in sets])
        lgt.append([s["logits"]["rel"][t] for s in sets])
    hid, lgt = np.array(hid), np.array(lgt)  # (P, 3, D), (P, 3, K)
    return {
        "hidden": (di_ref(*hid.transpose(1, 0, 2)), hid),
        "logits": (di_ref(*lgt.transpose(1, 0, 2)), lgt),
    }


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"bias": "proportional", "activation": "irrelevant_first"},
        pytest.param({"positions": "irrelevant"}, marks=pytest.mark.slow),
        pytest.param({"bias": "proportional", "positions": "irrelevant"}, marks=pytest.mark.slow),
    ],
    ids=["default", "cdt", "positions-irrelevant", "proportional-positions-irrelevant"],
)
def test_positions_against_numpy_reference_float64(setup, rules):
    params, tokens = setup
    want = _reference(params, tokens, PAIRS, TARGETS, **rules)
    with jax.enable_x64(True):
        got = cdt.interdependence(
            _f64(params), tokens, PAIRS, TARGETS, heads=H,
            space=("hidden", "logits"), parts=True, **rules,
        )  # fmt: skip
    for space in ("hidden", "logits"):
        di, parts = want[space]
        g = got[space]
        np.testing.assert_allclose(g.di, di, atol=1e-10, rtol=0, err_msg=space)
        for k, name in enumerate(("beta_x", "beta_y", "beta_xy")):
            np.testing.assert_allclose(getattr(g, name), parts[:, k], atol=1e-10, rtol=0)
    dh, dl = np.asarray(got["hidden"].di), np.asarray(got["logits"].di)
    assert dh[3] == 0 and dh[2] == 0 and dl[4] == 0 and np.all(dh[:2] > 0)


def test_spans_against_numpy_reference_float64(setup):
    params, tokens = setup
    want = _reference(params, tokens, SPANS, SPAN_TARGETS)
    with jax.enable_x64(True):
        got = cdt.interdependence(
            _f64(params), tokens, SPANS, SPAN_TARGETS, heads=H, space=("hidden", "logits")
        )
    for space in ("hidden", "logits"):
        np.testing.assert_allclose(got[space], want[space][0], atol=1e-10, rtol=0)
    assert np.asarray(got["logits"])[2] == 0


def test_beta_only_equals_full_cd_and_outputs(setup):
    """float32: the beta-only streams equal the full decomposition's beta; outputs = forward."""
    params, tokens = setup
    got = cdt.interdependence(
        params, tokens, PAIRS, TARGETS, heads=H, space=("hidden", "logits"), parts=True
    )
    fast = cdt.interdependence(params, tokens, PAIRS, TARGETS, heads=H, space=("hidden", "logits"))
    for k, ((a, b), t) in enumerate(zip(PAIRS, TARGETS)):
        full = [
            cdt.contextual_decomposition(params, tokens, np.isin(np.arange(T), s), heads=H)
            for s in (_set(a), _set(b), _set(a, b))
        ]
        for name, f in zip(("beta_x", "beta_y", "beta_xy"), full):
            np.testing.assert_allclose(got["hidden"]._asdict()[name][k], f.beta[-1, t], atol=1e-6)
            np.testing.assert_allclose(
                got["logits"]._asdict()[name][k], f.beta_logits[t], atol=1e-6
            )
        np.testing.assert_allclose(got["hidden"].output[k], full[0].stream[-1, t], atol=1e-6)
        np.testing.assert_allclose(got["logits"].output[k], full[0].logits[t], atol=1e-6)
        want = di_ratio(full[0].beta_logits[t], full[1].beta_logits[t], full[2].beta_logits[t])
        np.testing.assert_allclose(got["logits"].di[k], want, atol=1e-5)
    # the logit-space ratio through the decoder matrix equals the one of formed logits
    np.testing.assert_allclose(fast["logits"], got["logits"].di, atol=1e-5)
    np.testing.assert_allclose(fast["hidden"], got["hidden"].di, atol=1e-6)


def test_lower_layer_and_logit_ids(setup):
    params, tokens = setup
    ids = np.array([3, 0, 17])
    got = cdt.interdependence(
        params, tokens, PAIRS[:2], TARGETS[:2], heads=H, space=("hidden", "logits"),
        layer=0, logit_ids=ids, parts=True,
    )  # fmt: skip
    low, sub = got["hidden"], got["logits"]
    for k, ((a, b), t) in enumerate(zip(PAIRS[:2], TARGETS[:2])):
        f = cdt.contextual_decomposition(params, tokens, np.isin(np.arange(T), [a, b]), heads=H)
        np.testing.assert_allclose(low.beta_xy[k], f.beta[1, t], atol=1e-6)
        np.testing.assert_allclose(low.output[k], f.stream[1, t], atol=1e-6)
        np.testing.assert_allclose(sub.beta_xy[k], f.beta_logits[t, ids], atol=1e-6)
        np.testing.assert_allclose(sub.output[k], f.logits[t, ids], atol=1e-6)


def test_batch_equals_loop_and_chunked_outer_jit(setup):
    params, _ = setup
    rng = np.random.default_rng(2)
    toks = rng.integers(0, V, (3, T)).astype(np.int32)
    lengths = np.array([T, 7, 9], np.int32)
    pairs = np.broadcast_to(PAIRS[:3], (3, 3, 2)).copy()
    targets = np.array([[6, 8, 5], [6, 6, 5], [3, 8, 8]], np.int32)
    out = cdt.interdependence_batch(params, toks, pairs, targets, heads=H, lengths=lengths)
    for b in range(3):
        one = cdt.interdependence(params, toks[b], pairs[b], targets[b], heads=H, length=lengths[b])
        np.testing.assert_allclose(out[b], one, atol=1e-6)

    @jax.jit
    def traced(p, t, pr, tg, ln):  # traced pairs, targets and lengths; sets in chunks
        return cdt.interdependence_batch(p, t, pr, tg, heads=H, lengths=ln, mask_chunk=4)

    np.testing.assert_allclose(traced(params, toks, pairs, targets, lengths), out, atol=1e-6)


def test_padding_beyond_context_is_cut(setup):
    """Study batches pad to bucket lengths; a learned-position model reads only C = 11."""
    params, tokens = setup
    padded = np.concatenate([tokens, np.zeros(5, np.int32)])[None]  # T + 5 = 14 > 11
    got = cdt.interdependence_batch(
        params, padded, PAIRS[None, :2], TARGETS[None, :2], heads=H, lengths=np.array([T])
    )
    want = cdt.interdependence_batch(
        params, padded[:, :11], PAIRS[None, :2], TARGETS[None, :2], heads=H, lengths=np.array([T])
    )
    np.testing.assert_allclose(got, want, atol=0)
    with pytest.raises(ValueError, match="context of 11"):
        cdt.interdependence_batch(
            params, padded, PAIRS[None, :2], TARGETS[None, :2], heads=H, lengths=np.array([12])
        )


def test_all_pairs_and_engine(setup):
    params, tokens = setup
    pairs, di = cdt.all_pairs_interdependence(params, tokens, heads=H, max_distance=2)
    assert pairs.shape == (2 * T - 3, 2) and di.shape == (len(pairs),)
    assert engine("transformer") is cdt
    assert (
        engine("lstm").interdependence_batch.__module__ == "jaxdyn.decompose.lstm.interdependence"
    )
    with pytest.raises(ValueError, match="no decomposition engine"):
        engine("gru")
    from jaxdyn.decompose import interdependence_batch_for

    assert interdependence_batch_for("lstm", None) is engine("lstm").interdependence_batch
    bound = interdependence_batch_for("transformer", H)
    assert bound.func is cdt.interdependence_batch and bound.keywords == {"heads": H}


def test_bad_inputs(setup):
    params, tokens = setup
    call = lambda **kw: cdt.interdependence(params, tokens, PAIRS, TARGETS, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="schedule"):
        call(heads=H, schedule="packed")
    with pytest.raises(ValueError, match="layer"):
        call(heads=H, layer=L)
    with pytest.raises(ValueError, match="space"):
        call(heads=H, space="gates")
    with pytest.raises(ValueError, match="heads"):
        call(heads=5)
    with pytest.raises(ValueError, match="target"):
        cdt.interdependence(params, tokens, PAIRS, np.full(len(PAIRS), T), heads=H)
    with pytest.raises(ValueError, match="pair positions"):
        cdt.interdependence(params, tokens, PAIRS + T, TARGETS, heads=H)
    with pytest.raises(ValueError, match="bias must be one of"):
        call(heads=H, bias="none")
