"""Transformer LM: forward vs PyTorch, causal masking, taps and act-grads, training, config."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxdyn.config import KIND_OPTIM, OptimConfig, override, preset
from jaxdyn.models.transformer import (
    block_names,
    language_model,
    lm_apply,
    probs_from_trace,
    share_initialisation,
    tagger,
)
from jaxdyn.trace import CaptureSpec
from jaxdyn.train import init_train_state, make_analysis_step, make_optimizer, make_train_step
from jaxdyn.train.build import build_model
from jaxdyn.train.optim import warmup_factor

V, D, H, F, L, C = 29, 16, 4, 24, 2, 7


def _model(**kw):
    args = dict(d_model=D, num_layers=L, heads=H, d_ff=F, context=C, dropout=0.0)
    args.update(kw)
    return language_model(V, **args)


def _random_params(model, seed=0, scale=0.3):
    """The init's tree with every leaf drawn at random (LayerNorm scales around 1), so no
    term is trivially small."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(seed), jnp.zeros((1, 1), jnp.int32))
    leaves, tree = jax.tree_util.tree_flatten_with_path(shapes["params"])
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    out = []
    for (path, x), k in zip(leaves, keys, strict=True):
        r = scale * jax.random.normal(k, x.shape, x.dtype)
        out.append(1.0 + r if str(path[-1].key) == "scale" else r)
    return jax.tree_util.tree_unflatten(tree, out)


def _tokens(b, t, seed=3):
    return jax.random.randint(jax.random.PRNGKey(seed), (b, t), 0, V)


# ---------------------------------------------------------------- PyTorch reference


def _t(x):
    return torch.tensor(np.asarray(x))


def _torch_rotary(x):
    """Rotary embedding from RoFormer eq. 34 with the half-split pairing, (B, H, T, Dh)."""
    t, dh = x.shape[-2], x.shape[-1]
    half = dh // 2
    inv = 10_000.0 ** (-torch.arange(half, dtype=x.dtype) * 2.0 / dh)
    ang = torch.arange(t, dtype=x.dtype)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang).repeat(1, 2), torch.sin(ang).repeat(1, 2)
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


def _heads_of(x, heads):
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(1, 2)


def _torch_forward(params, tokens, heads, rotary_pos):
    """The same model in PyTorch: nn.LayerNorm, nn.MultiheadAttention (learned positions)
    or a hand-written rotary attention, nn.GELU, nn.Linear. Returns (logits, probs)."""
    tok = _t(tokens).long()
    d = params["embed"]["weight"].shape[1]
    x = torch.nn.functional.embedding(tok, _t(params["embed"]["weight"]))
    t = tok.shape[1]
    if not rotary_pos:
        x = x + _t(params["pos"]["weight"])[:t]
    blocked = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)

    def ln(p):
        m = torch.nn.LayerNorm(d, eps=1e-5)
        m.weight.data, m.bias.data = _t(p["scale"]), _t(p["bias"])
        return m

    all_probs = []
    for name in block_names(params):
        p = params[name]
        a_in = ln(p["ln_1"])(x)
        pa = {k: _t(v) for k, v in p["attn"].items()}
        if not rotary_pos:
            mha = torch.nn.MultiheadAttention(d, heads, batch_first=True)
            mha.in_proj_weight.data = torch.cat([pa["wq"].T, pa["wk"].T, pa["wv"].T])
            mha.in_proj_bias.data = torch.cat([pa["bq"], pa["bk"], pa["bv"]])
            mha.out_proj.weight.data, mha.out_proj.bias.data = pa["wo"].T, pa["bo"]
            a, probs = mha(
                a_in, a_in, a_in, attn_mask=blocked, need_weights=True, average_attn_weights=False
            )
        else:
            b, dh = a_in.shape[0], d // heads
            q = _torch_rotary(_heads_of(a_in @ pa["wq"] + pa["bq"], heads))
            k = _torch_rotary(_heads_of(a_in @ pa["wk"] + pa["bk"], heads))
            v = _heads_of(a_in @ pa["wv"] + pa["bv"], heads)
            s = (q @ k.transpose(-1, -2)) / dh**0.5
            probs = torch.softmax(s.masked_fill(blocked, float("-inf")), dim=-1)
            a = (probs @ v).transpose(1, 2).reshape(b, t, d) @ pa["wo"] + pa["bo"]
        all_probs.append(probs)
        x = x + a
        pm = {k: _t(v) for k, v in p["mlp"].items()}
        x = (
            x
            + torch.nn.GELU()(ln(p["ln_2"])(x) @ pm["w_in"] + pm["b_in"]) @ pm["w_out"]
            + pm["b_out"]
        )
    y = ln(params["ln_f"])(x)
    w = params["decoder"].get("weight", params["embed"]["weight"])
    logits = y @ _t(w).T + _t(params["decoder"]["bias"])
    return logits.detach().numpy(), [p.detach().numpy() for p in all_probs]


@pytest.mark.parametrize(
    "positions,tie", [("learned", False), ("rotary", False), ("learned", True)]
)
def test_forward_equals_pytorch_with_the_same_weights(positions, tie):
    model = _model(positions=positions, tie_weights=tie)
    params = _random_params(model)
    tokens = _tokens(3, C)
    logits, cols = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(
        {"params": params}, tokens
    )
    ref, ref_probs = _torch_forward(params, tokens, H, positions == "rotary")
    assert np.abs(ref).max() > 1.0  # not a trivially small output
    np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(lm_apply(params, tokens, heads=H)), ref, atol=1e-5, rtol=1e-5
    )
    for l in range(L):
        probs = probs_from_trace(cols["intermediates"][f"attn_probs_{l}"][0], H)
        np.testing.assert_allclose(np.asarray(probs), ref_probs[l], atol=1e-6)
    assert ("pos" in params) == (positions == "learned")
    assert ("weight" in params["decoder"]) == (not tie)


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_logits_at_t_do_not_depend_on_later_tokens(positions):
    model = _model(positions=positions)
    params = _random_params(model, seed=5)
    a = np.asarray(_tokens(2, C, seed=1))
    # row 0 of each batch is the original, row 1 + t has tokens after t changed
    batch = np.repeat(a[:, None], C, axis=1)
    for t in range(C - 1):
        batch[:, 1 + t, t + 1 :] = (a[:, t + 1 :] + 7) % V
    logits, cols = jax.jit(lambda v, x: model.apply(v, x, mutable=["intermediates"]))(
        {"params": params}, jnp.asarray(batch.reshape(-1, C))
    )
    out = np.asarray(logits).reshape(2, C, C, V)
    for t in range(C - 1):
        np.testing.assert_array_equal(out[:, 1 + t, : t + 1], out[:, 0, : t + 1])
        assert np.abs(out[:, 1 + t, t + 1] - out[:, 0, t + 1]).max() > 1e-4  # later ones change
    probs = probs_from_trace(cols["intermediates"]["attn_probs_0"][0], H)
    assert float(jnp.abs(jnp.triu(probs, 1)).max()) == 0.0


def test_inputs_longer_than_the_context_are_an_error():
    model = _model()
    params = _random_params(model)
    with pytest.raises(ValueError, match="context"):
        jax.eval_shape(model.apply, {"params": params}, _tokens(1, C + 1))
    # rotary positions have no table: longer inputs run
    rot = _model(positions="rotary")
    out = jax.eval_shape(rot.apply, {"params": _random_params(rot)}, _tokens(1, C + 3))
    assert out.shape == (1, C + 3, V)


def _loss_with_added(params, tokens, targets, added):
    """Mean cross-entropy of the pure-function forward with ``added[name]`` added to each
    tapped tensor: its gradient at zeros is the gradient w.r.t. each tensor (an
    independent path to the act-grads, not through Flax's perturbations)."""
    from jaxdyn.models.transformer import attention, embed, layer_norm, mlp

    x = embed(params, tokens) + added["embedding"]
    for bn in block_names(params):
        p = params[bn]
        a, _ = attention(p["attn"], layer_norm(p["ln_1"], x), H)
        x = x + a + added[f"{bn}.attn"]
        m = mlp(p["mlp"], layer_norm(p["ln_2"], x)) + added[f"{bn}.mlp"]
        x = x + m + added[bn]
    y = layer_norm(params["ln_f"], x) + added["decoder_in"]
    logits = y @ params["decoder"]["weight"].T + params["decoder"]["bias"] + added["logits"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, targets[..., None], -1).mean()


def test_taps_present_and_act_grads_equal_jax_grad_of_each_tapped_tensor():
    model = _model()
    params = _random_params(model, seed=2, scale=0.2)
    tokens, targets = _tokens(2, C, seed=4), _tokens(2, C, seed=6)
    spec = CaptureSpec(keep_full=True, reductions=("l1",))
    _, trace, _ = make_analysis_step(model, spec)(
        params, None, {"inputs": tokens, "targets": targets}
    )
    grads_expected = ["embedding", "decoder_in", "logits"] + [
        f"block_{l}{s}" for l in range(L) for s in ("", ".attn", ".mlp")
    ]
    assert sorted(trace["act_grad"]) == sorted(grads_expected)
    assert sorted(trace["act"]) == sorted(grads_expected + [f"attn_probs_{l}" for l in range(L)])
    _, internals = jax.jit(lambda p, x: lm_apply(p, x, heads=H, return_internals=True))(
        params, tokens
    )
    zeros = {n: jnp.zeros_like(trace["act"][n]) for n in grads_expected}
    expected = jax.jit(jax.grad(_loss_with_added, argnums=3))(params, tokens, targets, zeros)
    for name in grads_expected:
        g = expected[name]
        assert float(jnp.abs(g).max()) > 0, name
        np.testing.assert_allclose(trace["act_grad"][name], g, rtol=2e-4, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(trace["act"]["block_1"], internals["block_1"]["out"], atol=1e-6)
    np.testing.assert_allclose(trace["act"]["block_0.mlp"], internals["block_0"]["mlp"], atol=1e-6)
    # without the gates flag, the dotted block internals are left out
    batch = {"inputs": tokens, "targets": targets}  # names only: traced, not compiled
    _, trace2, _ = jax.eval_shape(
        make_analysis_step(model, CaptureSpec(gates=False, keep_full=True)), params, None, batch
    )
    assert sorted(trace2["act"]) == sorted(
        ["embedding", "block_0", "block_1", "decoder_in", "logits", "attn_probs_0", "attn_probs_1"]
    )
    blocks = CaptureSpec(modules=("block",), keep_full=True)
    _, trace3, _ = jax.eval_shape(make_analysis_step(model, blocks), params, None, batch)
    assert (
        sorted(trace3["act"])
        == sorted(trace3["act_grad"])
        == sorted(f"block_{l}{s}" for l in range(L) for s in ("", ".attn", ".mlp"))
    )


@pytest.mark.slow  # the default suite checks learning on the trained run of test_transformer_studies
def test_a_few_adam_steps_with_warmup_lower_the_loss():
    model = _model(dropout=0.1, num_layers=1)
    tx = make_optimizer("adam", lr=3e-3, clip=1.0, warmup_steps=5)
    state = init_train_state(model, tx, seed=0, batch_size=4)
    assert state.carry is None
    rows = np.tile(np.arange(C + 1) * 3 % V, (4, 1))
    batch = {"inputs": jnp.asarray(rows[:, :-1]), "targets": jnp.asarray(rows[:, 1:])}
    step = make_train_step(model, tx)
    losses = []
    for _ in range(30):
        state, metrics, _ = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0], losses


def test_warmup_factor_is_linear_then_one():
    f = warmup_factor(4)
    assert [float(f(jnp.asarray(c))) for c in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="warmup_steps"):
        make_optimizer("adam", 1e-3, warmup_steps=-1)


def test_tagger_shares_the_language_models_body():
    lm, tg = _model(), tagger(V, 5, d_model=D, num_layers=L, heads=H, d_ff=F, context=C)
    lp = _random_params(lm)
    tp = _random_params(tg)
    shared = share_initialisation(lp, tp)
    assert shared["decoder"]["weight"].shape == (5, D)
    assert shared["block_1"] is lp["block_1"] and shared["embed"] is lp["embed"]
    assert jax.eval_shape(tg.apply, {"params": shared}, _tokens(2, C)).shape == (2, C, 5)
    with pytest.raises(ValueError, match="cannot share"):
        share_initialisation(_random_params(_model(d_model=8, heads=2)), tp)


def _n_params(cfg, vocab):
    model = build_model(cfg, vocab_size=vocab, num_outputs=vocab)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes["params"]))


def test_presets_with_kind_transformer_and_the_thesis_parameter_count():
    for name in ("smoke", "default", "thesis"):
        cfg = override(preset(name), ["model.kind=transformer"])
        assert cfg.optim == KIND_OPTIM["transformer"] and cfg.optim.warmup_steps > 0
        model = build_model(cfg, vocab_size=50, num_outputs=50)
        assert model.d_model == cfg.model.hidden and model.d_ff == 4 * cfg.model.hidden
        assert model.context == cfg.data.bptt
    # the optimizer recipe follows the kind unless optim keys are set in the same call
    assert override(preset("smoke"), ["model.kind=transformer", "optim.lr=2"]).optim == OptimConfig(
        lr=2.0
    )
    back = override(override(preset("smoke"), ["model.kind=transformer"]), ["model.kind=lstm"])
    assert back.optim == OptimConfig()
    sim = override(preset("smoke"), ["similarity.model.kind=transformer"])
    assert sim.similarity.optim == KIND_OPTIM["transformer"] and sim.optim == OptimConfig()
    # thesis size on PTB's 10k vocabulary: about as many parameters as the 2 x 200 LSTM
    lstm = _n_params(preset("thesis"), 10_000)
    tfm = _n_params(override(preset("thesis"), ["model.kind=transformer"]), 10_000)
    assert lstm == 4_653_200 and tfm == 4_982_600
    assert abs(tfm / lstm - 1) < 0.08
    with pytest.raises(Exception, match="divisible"):
        override(preset("smoke"), ["model.kind=transformer", "model.heads=5"])
    with pytest.raises(Exception, match="emb_dim"):
        override(preset("smoke"), ["model.kind=transformer", "model.emb_dim=16"])
