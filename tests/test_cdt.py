"""Tests of jaxdyn.decompose.transformer (CD-T of the pre-LN Transformer LM)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.decompose.transformer import cd_batch, contextual_decomposition
from jaxdyn.decompose.transformer import rules as R
from jaxdyn.decompose.transformer.cd import _cd_single
from jaxdyn.decompose.transformer.rules import Rules
from jaxdyn.models.transformer import language_model, tagger
from tests.reference.cdt_ref import cdt_ref, numpy_params

V, D, H, F, L, T = 23, 12, 3, 20, 2, 9
RULES = list(itertools.product(("separate", "proportional"), ("shapley", "irrelevant_first")))


def make_params(seed=0, **kw):
    """Random parameters with visible biases and LayerNorm scales (init has zeros/ones)."""
    kw = {"d_model": D, "num_layers": L, "heads": H, "d_ff": F, "context": 11, **kw}
    model = kw.pop("model", None) or language_model(V, **kw)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 3), jnp.int32))
    leaves, tree = jax.tree_util.tree_flatten(shapes["params"])
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    # weights with gain 1.5 (visible GELU curvature), biases of 0.3
    gain = lambda a: 1.5 / np.sqrt(a.shape[0]) if a.ndim == 2 else 0.3  # noqa: E731
    new = [gain(a) * jax.random.normal(k, a.shape) for k, a in zip(keys, leaves)]
    new = [
        n + 1.0 if a.ndim == 1 and np.all(np.asarray(a) == 1) else n for n, a in zip(new, leaves)
    ]
    return model, jax.tree_util.tree_unflatten(tree, new)


@pytest.fixture(scope="module")
def setup():
    model, params = make_params()
    tokens = np.random.default_rng(0).integers(0, V, T).astype(np.int32)
    return model, params, tokens


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _mask(positions, t=T):
    m = np.zeros(t, bool)
    m[list(positions)] = True
    return m


_APPLY = {}


def _taps(model, params, tokens):
    """The model's own forward pass and its taps (one compiled apply per model)."""
    if model not in _APPLY:
        _APPLY[model] = jax.jit(
            lambda p, x: model.apply({"params": p}, x, mutable=["intermediates"])
        )
    logits, state = _APPLY[model](params, tokens[None])
    acts = {k: v[0][0] for k, v in state["intermediates"].items()}
    acts["logits"] = logits[0]
    return acts


def _check_complete(model, params, tokens, res, tol):
    acts = _taps(model, params, tokens)
    tot = np.asarray(res.beta + res.gamma + res.iota)
    np.testing.assert_allclose(tot[0], acts["embedding"], atol=tol, rtol=0)
    for l in range(L):
        np.testing.assert_allclose(tot[l + 1], acts[f"block_{l}"], atol=tol, rtol=0)
        a = res.beta_attn[l] + res.gamma_attn[l] + res.iota_attn[l]
        m = res.beta_mlp[l] + res.gamma_mlp[l] + res.iota_mlp[l]
        np.testing.assert_allclose(a, acts[f"block_{l}.attn"], atol=tol, rtol=0)
        np.testing.assert_allclose(m, acts[f"block_{l}.mlp"], atol=tol, rtol=0)
    lg = res.beta_logits + res.gamma_logits + res.iota_logits
    np.testing.assert_allclose(lg, acts["logits"], atol=tol, rtol=0)
    assert float(np.max(res.residual)) <= tol and float(res.residual_logits) <= tol


#: default rules, CD-T's released rules; the other combinations are slow tests
FAST = [("separate", "shapley", "bias"), ("proportional", "irrelevant_first", "bias")]
GRID = [
    pytest.param(b, a, p, marks=() if (b, a, p) in FAST else pytest.mark.slow)
    for (b, a), p in itertools.product(RULES, ("bias", "irrelevant"))
]


@pytest.mark.parametrize("bias,activation,positions", GRID)
def test_completeness_float32_against_model_apply(setup, bias, activation, positions):
    model, params, tokens = setup
    res = contextual_decomposition(
        params, tokens, _mask([1, 4, 5]), heads=H,
        bias=bias, activation=activation, positions=positions,
    )  # fmt: skip
    assert res.beta.dtype == jnp.float32
    _check_complete(model, params, tokens, res, 1e-5)


@pytest.mark.parametrize("bias,activation,positions", GRID)
def test_completeness_float64_against_model_apply(setup, bias, activation, positions):
    model, params, tokens = setup
    with jax.enable_x64(True):
        p64 = _f64(params)
        res = contextual_decomposition(
            p64, tokens, _mask([0, 3, 7]), heads=H,
            bias=bias, activation=activation, positions=positions,
        )  # fmt: skip
        assert res.beta.dtype == jnp.float64
        _check_complete(model, p64, tokens, res, 1e-10)


@pytest.mark.parametrize(
    "kw",
    [
        {"tie_weights": True, "positions": "rotary"},
        pytest.param({"tie_weights": True}, marks=pytest.mark.slow),
        pytest.param({"positions": "rotary"}, marks=pytest.mark.slow),
    ],
)
def test_completeness_tied_and_rotary(kw):
    model, params = make_params(3, **kw)
    tokens = np.random.default_rng(3).integers(0, V, T).astype(np.int32)
    res = contextual_decomposition(params, tokens, _mask([2, 3]), heads=H)
    _check_complete(model, params, tokens, res, 1e-5)


@pytest.mark.slow
def test_completeness_tagger():
    model, params = make_params(4, model=tagger(V, 5, d_model=D, num_layers=L, heads=H, d_ff=F))
    tokens = np.random.default_rng(4).integers(0, V, T).astype(np.int32)
    res = contextual_decomposition(params, tokens, _mask([6]), heads=H)
    assert res.beta_logits.shape == (T, 5)
    _check_complete(model, params, tokens, res, 1e-5)


REF_FAST = [*FAST, ("separate", "shapley", "irrelevant")]
REF_GRID = [
    pytest.param(b, a, p, marks=() if (b, a, p) in REF_FAST else pytest.mark.slow)
    for (b, a), p in itertools.product(RULES, ("bias", "irrelevant"))
]


@pytest.mark.parametrize("bias,activation,positions", REF_GRID)
def test_against_numpy_reference_float64(setup, bias, activation, positions):
    _, params, tokens = setup
    span = [2, 5, 6]
    ref = cdt_ref(
        numpy_params(params, H), tokens, span,
        bias=bias, activation=activation, positions=positions,
    )  # fmt: skip
    with jax.enable_x64(True):
        res = contextual_decomposition(
            _f64(params), tokens, _mask(span), heads=H,
            bias=bias, activation=activation, positions=positions,
        )  # fmt: skip
    got = {
        "resid": (res.beta, res.gamma, res.iota),
        "attn": (res.beta_attn, res.gamma_attn, res.iota_attn),
        "mlp": (res.beta_mlp, res.gamma_mlp, res.iota_mlp),
        "logits": (res.beta_logits, res.gamma_logits, res.iota_logits),
    }
    for node, parts in got.items():
        for name, v in zip(("rel", "irr", "bias"), parts):
            np.testing.assert_allclose(v, ref[node][name], atol=1e-10, rtol=0, err_msg=node + name)
    np.testing.assert_allclose(res.logits, ref["forward"]["logits"], atol=1e-10, rtol=0)
    if bias == "proportional":
        assert not np.any(np.asarray(res.iota))


def test_rules_differ(setup):
    """Each option changes the reference's beta by far more than the reference tests'
    tolerance (1e-10), so those tests can fail."""
    _, params, tokens = setup
    ref = numpy_params(params, H)
    base = cdt_ref(ref, tokens, [1, 2])
    for kw in (
        {"bias": "proportional"},
        {"activation": "irrelevant_first"},
        {"positions": "irrelevant"},
    ):
        other = cdt_ref(ref, tokens, [1, 2], **kw)
        assert np.max(np.abs(other["logits"]["rel"] - base["logits"]["rel"])) > 1e-6, kw


def test_empty_and_full_sets(setup):
    _, params, tokens = setup
    empty = contextual_decomposition(params, tokens, np.zeros(T, bool), heads=H)
    for v in (empty.beta, empty.beta_attn, empty.beta_mlp, empty.beta_logits):
        assert not np.any(np.asarray(v))
    full = contextual_decomposition(params, tokens, np.ones(T, bool), heads=H)
    for v in (full.gamma, full.gamma_attn, full.gamma_mlp, full.gamma_logits):
        assert not np.any(np.asarray(v))
    # iota does not depend on the source set
    np.testing.assert_allclose(full.iota, empty.iota, atol=1e-6)


def test_causal_and_padding(setup):
    _, params, tokens = setup
    res = contextual_decomposition(params, tokens, _mask([4, 6]), heads=H)
    assert not np.any(np.asarray(res.beta[:, :4]))
    assert not np.any(np.asarray(res.beta_logits[:4]))
    assert np.all(np.abs(np.asarray(res.beta[1:, 4:])).max(axis=-1) > 0)
    # padding: other tokens after `length` change nothing before it, and parts there are 0
    other = tokens.copy()
    other[6:] = (other[6:] + 1) % V
    res_a = contextual_decomposition(params, tokens, _mask([4, 6, 7]), heads=H, length=6)
    res_b = contextual_decomposition(params, other, _mask([4]), heads=H, length=6)
    for name in ("beta", "gamma", "iota", "beta_mlp", "gamma_logits", "stream", "logits"):
        x, y = getattr(res_a, name), getattr(res_b, name)
        np.testing.assert_allclose(x[..., :6, :], y[..., :6, :], atol=1e-6, err_msg=name)
    np.testing.assert_allclose(res_a.beta[:, :6], res.beta[:, :6], atol=1e-6)
    assert not np.any(np.asarray(res_a.beta[:, 6:])) and not np.any(np.asarray(res_a.iota[:, 6:]))
    assert not np.any(np.asarray(res_a.gamma_logits[6:]))


def test_first_attention_is_additive_with_separate_biases(setup):
    """Before the first GELU every rule is linear in the source set (separate biases)."""
    _, params, tokens = setup
    cd = lambda s, **kw: contextual_decomposition(params, tokens, _mask(s), heads=H, **kw)  # noqa: E731
    a, b, ab = cd([1]), cd([5]), cd([1, 5])
    np.testing.assert_allclose(ab.beta_attn[0], a.beta_attn[0] + b.beta_attn[0], atol=1e-6)
    # ... not after the GELU
    assert float(jnp.max(jnp.abs(ab.beta_mlp[0] - a.beta_mlp[0] - b.beta_mlp[0]))) > 1e-5
    cdt = {"bias": "proportional", "activation": "irrelevant_first"}
    pa, pb, pab = (cd(s, **cdt) for s in ([1], [5], [1, 5]))
    assert float(jnp.max(jnp.abs(pab.beta_attn[0] - pa.beta_attn[0] - pb.beta_attn[0]))) > 1e-5


def test_batch_equals_loop(setup):
    _, params, _ = setup
    rng = np.random.default_rng(1)
    toks = rng.integers(0, V, (3, T)).astype(np.int32)
    masks = rng.random((3, 2, T)) < 0.4
    lengths = np.array([T, 6, 3], np.int32)
    ids = np.array([0, 7, 22])
    out = cd_batch(params, toks, masks, heads=H, lengths=lengths, logit_ids=ids)
    assert out.beta.shape == (3, 2, L + 1, T, D) and out.beta_logits.shape == (3, 2, T, 3)
    for b in range(3):
        for m in range(2):
            one = contextual_decomposition(
                params, toks[b], masks[b, m], heads=H, length=lengths[b], logit_ids=ids
            )
            for x, y in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(out)):
                np.testing.assert_allclose(y[b, m], x, atol=1e-6)
    full = contextual_decomposition(params, toks[0], masks[0, 0], heads=H)
    np.testing.assert_allclose(out.beta_logits[0, 0], full.beta_logits[:, ids], atol=1e-6)


def test_rules_jit_equals_eager(setup):
    _, params, _ = setup
    rng = np.random.default_rng(5)
    parts = tuple(jnp.asarray(rng.normal(size=(T, D)), jnp.float32) for _ in range(3))
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(H, T, T)), jnp.float32), axis=-1)
    sigma = jnp.asarray(rng.random((T, 1)) + 0.5, jnp.float32)
    blk = params["block_0"]
    calls = {
        "ln": lambda q, b: R.layer_norm(q, blk["ln_1"], sigma, b),
        "attn": lambda q, b: R.attention(q, blk["attn"], probs, b),
        "gelu": lambda q, b: R.gelu_parts(q, "shapley" if b == "separate" else "irrelevant_first"),
    }
    for bias in ("separate", "proportional"):
        for name, fn in calls.items():
            jitted = jax.jit(fn, static_argnums=1)(parts, bias)
            with jax.disable_jit():
                eager = fn(parts, bias)
            for x, y in zip(jitted, eager):
                np.testing.assert_allclose(x, y, atol=1e-6, err_msg=f"{name} {bias}")


@pytest.mark.slow
def test_cd_jit_equals_eager(setup):
    _, params, tokens = setup
    masks = np.stack([_mask([1, 4]), _mask([0])])
    args = (params, jnp.asarray(tokens), jnp.asarray(masks), jnp.int32(7), None)
    jitted = jax.jit(_cd_single, static_argnames=("heads", "rules"))(*args, heads=H, rules=Rules())
    with jax.disable_jit():
        eager = _cd_single(*args, heads=H, rules=Rules())
    for x, y in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_bad_inputs(setup):
    _, params, tokens = setup
    m = _mask([1])
    with pytest.raises(ValueError, match="heads"):
        contextual_decomposition(params, tokens, m, heads=5)
    with pytest.raises(ValueError, match="bias must be one of"):
        contextual_decomposition(params, tokens, m, heads=H, bias="shared")
    with pytest.raises(ValueError, match="activation must be one of"):
        contextual_decomposition(params, tokens, m, heads=H, activation="relu")
    with pytest.raises(ValueError, match="context"):
        contextual_decomposition(params, np.zeros(12, np.int32), np.zeros(12, bool), heads=H)
    with pytest.raises(ValueError, match="token ids"):
        contextual_decomposition(params, tokens + V, m, heads=H)
    with pytest.raises(ValueError, match="logit_ids"):
        contextual_decomposition(params, tokens, m, heads=H, logit_ids=np.array([V]))
    with pytest.raises(ValueError, match="length"):
        contextual_decomposition(params, tokens, m, heads=H, length=T + 1)
    with pytest.raises(ValueError, match="transformer parameter tree"):
        contextual_decomposition({"encoder": {}}, tokens, m, heads=H)
