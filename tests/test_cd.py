"""Tests of jaxdyn.decompose.lstm.cd (contextual decomposition of LSTM LMs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.decompose.lstm.cd import (
    _cd_jit,
    cd_batch,
    contextual_decomposition,
    shapley2,
    shapley3,
)
from jaxdyn.models.convert import from_torch_state_dict
from jaxdyn.models.lstm import language_model, lm_apply, tagger
from tests.reference.cd_ref import cd_ref, forward_ref, numpy_params

V, E, H, T = 30, 8, 6, 9


def _init(model, seed=0):
    return model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]


@pytest.fixture(scope="module")
def params():
    p = _init(language_model(V, emb_dim=E, hidden=H, num_layers=2))
    # larger biases make the bias-product conventions visible
    return jax.tree_util.tree_map(lambda a: a * 2.0, p)


@pytest.fixture(scope="module")
def tokens():
    return np.random.default_rng(0).integers(0, V, T).astype(np.int32)


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _mask(positions, t=T):
    m = np.zeros(t, bool)
    m[list(positions)] = True
    return m


def _carry(seed, layers=2, batch=None):
    rng = np.random.default_rng(seed)
    shape = (H,) if batch is None else (batch, H)
    return tuple(
        (
            jnp.asarray(rng.normal(size=shape) * 0.5, jnp.float32),
            jnp.asarray(rng.normal(size=shape), jnp.float32),
        )
        for _ in range(layers)
    )


def test_shapley_shares_sum_exactly():
    rng = np.random.default_rng(1)
    r, i, b = (jnp.asarray(rng.normal(size=50) * 3) for _ in range(3))
    for fn in (jax.nn.sigmoid, jnp.tanh):
        s = shapley3(r, i, b, fn)
        np.testing.assert_allclose(sum(s), fn(r + i + b), atol=1e-6)
    a, c = shapley2(r, i, jnp.tanh)
    np.testing.assert_allclose(a + c, jnp.tanh(r + i), atol=1e-6)
    z = shapley3(jnp.zeros(3), jnp.ones(3), jnp.ones(3), jnp.tanh)[0]
    assert np.all(np.asarray(z) == 0)  # a zero relevant part has a zero share


@pytest.mark.parametrize("dog", [False, True])
@pytest.mark.parametrize("span", [[], [3], [2, 3, 4], [0, 5, 8], list(range(T))])
def test_completeness_float32(params, tokens, span, dog):
    r = contextual_decomposition(params, tokens, _mask(span), decompose_output_gate=dog)
    assert float(r.residual_h.max()) < 1e-5 and float(r.residual_c.max()) < 1e-5
    assert float(r.residual_logits) < 1e-5
    logits, _ = lm_apply(params, tokens[None])  # the lead's model forward
    np.testing.assert_allclose(r.beta_logits + r.gamma_logits + r.bias_logits, logits[0], atol=1e-5)


@pytest.mark.parametrize("dog", [False, True])
def test_completeness_float64(params, tokens, dog):
    with jax.enable_x64(True):
        p64 = _f64(params)
        carry = _f64(_carry(3))
        r = contextual_decomposition(
            p64, tokens, _mask([1, 4, 5]), init_carry=carry, decompose_output_gate=dog
        )
        assert r.beta_h.dtype == jnp.float64
        assert float(r.residual_h.max()) < 1e-10 and float(r.residual_c.max()) < 1e-10
        assert float(r.residual_logits) < 1e-10
        batched = jax.tree_util.tree_map(lambda a: a[None], carry)
        logits, _ = lm_apply(p64, tokens[None], batched)
        total = np.asarray(r.beta_logits + r.gamma_logits + r.bias_logits)
        np.testing.assert_allclose(total, np.asarray(logits[0]), atol=1e-10)


def test_empty_span_beta_zero(params, tokens):
    r = contextual_decomposition(params, tokens, _mask([]), init_carry=_carry(1))
    for v in (r.beta_h, r.beta_c, r.beta_logits):
        assert np.all(np.asarray(v) == 0)


def test_full_span_zero_state_gamma_zero_first_layer(params, tokens):
    r = contextual_decomposition(params, tokens, _mask(range(T)))
    assert np.all(np.asarray(r.gamma_h[0]) == 0) and np.all(np.asarray(r.gamma_c[0]) == 0)
    # upper layers: their bias products are irrelevant by default (thesis convention)
    assert float(jnp.abs(r.gamma_c[1]).max()) > 1e-3
    r2 = contextual_decomposition(params, tokens, _mask(range(T)), upper_bias_in_span=True)
    assert np.all(np.asarray(r2.gamma_h) == 0) and np.all(np.asarray(r2.gamma_logits) == 0)
    # carried-in state counts as irrelevant
    r3 = contextual_decomposition(params, tokens, _mask(range(T)), init_carry=_carry(2))
    assert float(jnp.abs(r3.gamma_h[0, 0]).max()) > 1e-4


OPTIONS = [
    {},
    {"decompose_output_gate": True},
    {"span_bias": "exclusive_last"},
    {"upper_bias_in_span": True},
    {"carry": True},
]


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("span", [[4], [2, 3, 4], [0, 6]])
def test_matches_numpy_reference_float64(params, tokens, span, opts):
    opts = dict(opts)
    carry = _carry(5) if opts.pop("carry", False) else None
    with jax.enable_x64(True):
        r = contextual_decomposition(
            _f64(params),
            tokens,
            _mask(span),
            init_carry=None if carry is None else _f64(carry),
            **opts,
        )
        ref = cd_ref(numpy_params(params), tokens, span, init_carry=carry, **opts)
        for key in ("beta_h", "gamma_h", "beta_c", "gamma_c"):
            np.testing.assert_allclose(np.asarray(getattr(r, key)), np.stack(ref[key]), atol=1e-12)
        for key in ("beta_logits", "gamma_logits"):
            np.testing.assert_allclose(np.asarray(getattr(r, key)), ref[key], atol=1e-12)


def test_float32_close_to_reference(params, tokens):
    r = contextual_decomposition(params, tokens, _mask([2, 3]))
    ref = cd_ref(numpy_params(params), tokens, [2, 3])
    np.testing.assert_allclose(np.asarray(r.beta_h), np.stack(ref["beta_h"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(r.gamma_logits), ref["gamma_logits"], atol=1e-5)


def test_inclusive_span_convention(params, tokens):
    """The bias product of the span's last position goes to beta (thesis fix); the
    original code (``start <= t < stop``) sends it to gamma."""
    with jax.enable_x64(True):
        p = _f64(params)
        inc = contextual_decomposition(p, tokens, _mask([2, 3, 4]))
        exc = contextual_decomposition(p, tokens, _mask([2, 3, 4]), span_bias="exclusive_last")
        b = np.asarray(p["rnn"]["l0"]["bias_ih"] + p["rnn"]["l0"]["bias_hh"])
        bias_prod = 1 / (1 + np.exp(-b[:H])) * np.tanh(b[2 * H : 3 * H])
        np.testing.assert_allclose(
            np.asarray(inc.beta_c[0, :4]), np.asarray(exc.beta_c[0, :4]), atol=1e-14
        )
        np.testing.assert_allclose(
            np.asarray(inc.beta_c[0, 4] - exc.beta_c[0, 4]), bias_prod, atol=1e-14
        )
        # single-word span: the exclusive convention gives the word no bias product at all
        one = contextual_decomposition(p, tokens, _mask([3]), span_bias="exclusive_last")
        inc1 = contextual_decomposition(p, tokens, _mask([3]))
        np.testing.assert_allclose(
            np.asarray(inc1.beta_c[0, 3] - one.beta_c[0, 3]), bias_prod, atol=1e-14
        )


def _torch_lm(num_layers, seed=0):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(V, E)
    rnn = torch.nn.LSTM(E, H, num_layers)
    dec = torch.nn.Linear(H, V)
    sd = {"encoder.weight": emb.weight.detach(), "decoder.weight": dec.weight.detach()}
    sd["decoder.bias"] = dec.bias.detach()
    sd.update({f"rnn.{k}": v.detach() for k, v in rnn.state_dict().items()})
    return torch, emb, rnn, dec, from_torch_state_dict(sd)


def test_pytorch_weights_imported(tokens):
    torch, emb, rnn, dec, p = _torch_lm(2)
    with torch.no_grad():
        out, _ = rnn(emb(torch.as_tensor(tokens, dtype=torch.long))[:, None])
        logits = dec(out[:, 0]).numpy()
    r = contextual_decomposition(p, tokens, _mask([1, 2]))
    np.testing.assert_allclose(
        np.asarray(r.beta_logits + r.gamma_logits + r.bias_logits), logits, atol=1e-5
    )
    ref = cd_ref(numpy_params(p), tokens, [1, 2])
    np.testing.assert_allclose(np.asarray(r.beta_logits), ref["beta_logits"], atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # acd feeds torch tensors to NumPy
def test_agrees_with_acd_package(tokens):
    """One-layer model: acd.cd_text (inclusive bias) and acd's propagate_lstm
    (``start <= t < stop`` bias) against the two span conventions."""
    acd_cd = pytest.importorskip("acd.scores.cd")
    from types import SimpleNamespace

    from acd.scores.cd_propagate import propagate_lstm

    torch, emb, rnn, _, p = _torch_lm(1, seed=3)
    head = torch.nn.Linear(H, H)
    with torch.no_grad():
        head.weight.copy_(torch.eye(H))
        head.bias.zero_()
    model = SimpleNamespace(embed=emb, lstm=rnn, hidden_to_label=head, hidden_dim=H)
    batch = SimpleNamespace(text=torch.as_tensor(tokens, dtype=torch.long)[:, None])
    start, stop = 2, 4
    with torch.no_grad():
        rel, irr = acd_cd.cd_text(batch, model, start, stop, return_irrel_scores=True)
        x = emb(batch.text[:, 0])[None]
        rel_x, _ = propagate_lstm(x, rnn, start, stop, my_device="cpu")
    mask = _mask(range(start, stop + 1))
    inc = contextual_decomposition(p, tokens, mask)
    exc = contextual_decomposition(p, tokens, mask, span_bias="exclusive_last")
    np.testing.assert_allclose(np.asarray(inc.beta_h[0, -1]), rel, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inc.gamma_h[0, -1]), irr, atol=1e-5)
    np.testing.assert_allclose(np.asarray(exc.beta_h[0, -1]), rel_x.numpy().ravel(), atol=1e-5)


def test_padding_and_length(params, tokens):
    n = 6
    padded = tokens.copy()
    padded[n:] = 0
    mask = _mask([1, 2, 7])  # position 7 is padding: ignored
    r = contextual_decomposition(params, padded, mask, length=n)
    r_short = contextual_decomposition(params, tokens[:n], mask[:n])
    np.testing.assert_allclose(np.asarray(r.beta_h[:, :n]), np.asarray(r_short.beta_h), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(r.gamma_logits[:n]), np.asarray(r_short.gamma_logits), atol=1e-6
    )
    assert np.all(np.asarray(r.beta_h[:, n:]) == 0) and np.all(np.asarray(r.gamma_c[:, n:]) == 0)


def test_logit_ids_and_tied_and_tagger(params, tokens):
    ids = np.array([3, 0, 17])
    full = contextual_decomposition(params, tokens, _mask([2]))
    sub = contextual_decomposition(params, tokens, _mask([2]), logit_ids=ids)
    np.testing.assert_allclose(
        np.asarray(sub.beta_logits), np.asarray(full.beta_logits[:, ids]), atol=1e-6
    )
    tied = _init(language_model(V, emb_dim=H, hidden=H, num_layers=2, tie_weights=True))
    assert "weight" not in tied["decoder"]
    r = contextual_decomposition(tied, tokens, _mask([2]))
    logits, _ = lm_apply(tied, tokens[None])
    np.testing.assert_allclose(
        np.asarray(r.beta_logits + r.gamma_logits + r.bias_logits), logits[0], atol=1e-5
    )
    tg = _init(tagger(V, 5, emb_dim=E, hidden=H, num_layers=3))
    r = contextual_decomposition(tg, tokens, _mask([2]))
    assert r.beta_h.shape == (3, T, H) and r.beta_logits.shape == (T, 5)
    assert float(r.residual_logits) < 1e-5


def test_batch_equals_loop(params, tokens):
    rng = np.random.default_rng(4)
    toks = np.stack([tokens, rng.integers(0, V, T).astype(np.int32)])
    masks = rng.random((2, 3, T)) < 0.3
    lengths = np.array([T, 5])
    carry = _carry(6, batch=2)
    rb = cd_batch(params, toks, masks, lengths=lengths, init_carry=carry)
    assert rb.beta_h.shape == (2, 3, 2, T, H)
    for b in range(2):
        c = jax.tree_util.tree_map(lambda a, b=b: a[b], carry)
        for m in range(3):
            r = contextual_decomposition(
                params, toks[b], masks[b, m], length=lengths[b], init_carry=c
            )
            for key in ("beta_h", "gamma_c", "beta_logits"):
                np.testing.assert_allclose(
                    np.asarray(getattr(rb, key)[b, m]), np.asarray(getattr(r, key)), atol=1e-6
                )


def test_jit_equals_eager_and_no_retrace(params, tokens):
    mask = _mask([3, 4])
    r1 = contextual_decomposition(params, tokens, mask)
    n = _cd_jit._cache_size()
    contextual_decomposition(params, tokens, _mask([1]))
    assert _cd_jit._cache_size() == n
    with jax.disable_jit():
        r2 = contextual_decomposition(params, tokens, mask)
    np.testing.assert_allclose(np.asarray(r1.beta_h), np.asarray(r2.beta_h), atol=1e-6)


def test_forward_reference_agrees(params, tokens):
    hs, _, logits = forward_ref(numpy_params(params), tokens)
    r = contextual_decomposition(params, tokens, _mask([0]))
    np.testing.assert_allclose(np.asarray(r.logits), logits, atol=1e-5)
    np.testing.assert_allclose(np.asarray(r.beta_h + r.gamma_h), np.stack(hs), atol=1e-5)


def test_bad_inputs(params, tokens):
    with pytest.raises(ValueError, match="relevant"):
        contextual_decomposition(params, tokens, np.ones(T - 1, bool))
    with pytest.raises(ValueError, match="token ids"):
        contextual_decomposition(params, np.full(T, V), _mask([1]))
    with pytest.raises(ValueError, match="length"):
        contextual_decomposition(params, tokens, _mask([1]), length=T + 1)
    with pytest.raises(ValueError, match="span_bias"):
        contextual_decomposition(params, tokens, _mask([1]), span_bias="half")
    with pytest.raises(ValueError, match="relevant"):
        cd_batch(params, tokens[None], _mask([1])[None])


def test_bad_logit_ids_and_lengths_shape(params, tokens):
    # out-of-range decoder rows used to be clamped silently to the last row
    with pytest.raises(ValueError, match="logit_ids"):
        contextual_decomposition(params, tokens, _mask([1]), logit_ids=[V])
    with pytest.raises(ValueError, match="logit_ids"):
        cd_batch(params, tokens[None], _mask([1])[None, None], logit_ids=[0, V + 3])
    with pytest.raises(ValueError, match="length"):
        cd_batch(params, np.stack([tokens, tokens]), np.zeros((2, 1, T), bool), lengths=[T])
    with pytest.raises(ValueError, match="length"):
        contextual_decomposition(params, tokens, _mask([1]), length=[T, T])
