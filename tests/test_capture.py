"""Capture for any Flax model: taps, names, errors, any optax optimizer, optional carry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdyn.models import language_model, tap
from jaxdyn.trace import CaptureSpec
from jaxdyn.train import (
    get_learning_rate,
    init_train_state,
    make_analysis_step,
    make_eval_step,
    make_optimizer,
    make_train_step,
    masked_xent,
    set_learning_rate,
)

V, B, T = 23, 3, 6


class MLPLM(nn.Module):
    """Per-token MLP LM: taps its embedding and hidden layer (no carry)."""

    vocab: int = V
    dropout: float = 0.0

    @nn.compact
    def __call__(self, tokens, train=False):
        x = tap(self, "embed", nn.Embed(self.vocab, 5)(tokens))
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        h = tap(self, "hidden", jnp.tanh(nn.Dense(7)(x)))
        return nn.Dense(self.vocab)(h)


class _Head(nn.Module):
    @nn.compact
    def __call__(self, h):
        pre = tap(self, "pre", nn.Dense(4)(h))
        return nn.Dense(V)(jnp.tanh(pre))


class NestedLM(nn.Module):
    """Taps inside a submodule: trace names are paths."""

    @nn.compact
    def __call__(self, tokens, train=False):
        x = tap(self, "embed", nn.Embed(V, 5)(tokens))
        return _Head(name="head")(x)


class Untapped(nn.Module):
    """Has the attributes the old step read, but taps nothing."""

    emb_dim: int = 5
    hidden: int = 5
    num_layers: int = 1
    num_outputs: int = V

    @nn.compact
    def __call__(self, tokens, train=False):
        return nn.Dense(V)(nn.Embed(V, 5)(tokens))


class ElmanLM(nn.Module):
    """A recurrent model following the carry protocol (``initial_carry``)."""

    vocab: int = V
    hidden: int = 6

    @nn.nowrap
    def initial_carry(self, params, batch_size):
        return jnp.zeros((batch_size, self.hidden))

    @nn.compact
    def __call__(self, tokens, carry=None, *, train=False):
        h = jnp.zeros((tokens.shape[0], self.hidden)) if carry is None else carry
        x = nn.Embed(self.vocab, 5)(tokens)
        wx, wh = nn.Dense(self.hidden), nn.Dense(self.hidden, use_bias=False)
        hs = []
        for t in range(tokens.shape[1]):
            h = jnp.tanh(wx(x[:, t]) + wh(h))
            hs.append(h)
        hs = tap(self, "h", jnp.stack(hs, axis=1))
        return nn.Dense(self.vocab)(hs), h


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "inputs": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
        "targets": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
    }


FULL = CaptureSpec(keep_full=True, param_grads=True, reductions=("l2", "te"))


def _manual_grads(params, batch):
    """Loss gradients w.r.t. MLPLM's tapped tensors by plain jax.grad (no Flax)."""
    emb = params["Embed_0"]["embedding"][batch["inputs"]]
    d0, d1 = params["Dense_0"], params["Dense_1"]
    mask = jnp.ones(batch["inputs"].shape, bool)

    def from_hidden(h):
        return masked_xent(h @ d1["kernel"] + d1["bias"], batch["targets"], mask)[0]

    def from_embed(e):
        return from_hidden(jnp.tanh(e @ d0["kernel"] + d0["bias"]))

    hidden = jnp.tanh(emb @ d0["kernel"] + d0["bias"])
    acts = {"embed": emb, "hidden": hidden}
    return acts, {"embed": jax.grad(from_embed)(emb), "hidden": jax.grad(from_hidden)(hidden)}


def test_custom_model_plain_adam_trace_names_and_values():
    model, tx = MLPLM(), optax.adam(1e-3)  # no injected learning rate
    state = init_train_state(model, tx, 0, B)
    assert state.carry is None
    batch = _batch()
    new, metrics, trace = make_train_step(model, tx, FULL)(state, batch)
    assert "lr" not in metrics and int(new.step) == 1 and float(metrics["tokens"]) == B * T
    assert set(trace["act"]) == set(trace["act_grad"]) == {"embed", "hidden"}
    acts, grads = _manual_grads(state.params, batch)
    for name in ("embed", "hidden"):
        np.testing.assert_allclose(trace["act"][name], acts[name], atol=1e-6)
        np.testing.assert_allclose(trace["act_grad"][name], grads[name], atol=1e-7)
        assert trace["reduced"]["act_grad"][name]["te"].shape == (B, T)
    assert jax.tree.structure(trace["param_grad"]) == jax.tree.structure(state.params)
    # plain and capture steps give the same update
    plain, _, none = make_train_step(model, tx)(state, batch)
    assert none is None
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_act_grads_equal_jax_grad_in_float64():
    """Act-grads of tapped tensors vs jax.grad w.r.t. each tensor, in float64."""
    with jax.enable_x64(True):
        model = MLPLM()
        params = model.init(jax.random.key(0), jnp.zeros((B, 1), jnp.int32))["params"]
        params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
        batch = _batch(3)
        _, trace, _ = make_analysis_step(model, FULL)(params, None, batch)
        acts, grads = _manual_grads(params, batch)
        diffs = {}
        for name in ("embed", "hidden"):
            assert trace["act_grad"][name].dtype == jnp.float64
            diffs[name] = float(jnp.max(jnp.abs(trace["act_grad"][name] - grads[name])))
            np.testing.assert_allclose(trace["act"][name], acts[name], rtol=0, atol=1e-15)
        print("max |act_grad - jax.grad| (float64):", diffs)
        assert max(diffs.values()) < 1e-15, diffs


def test_names_are_tap_paths_in_submodules():
    model = NestedLM()
    params = model.init(jax.random.key(0), jnp.zeros((B, 1), jnp.int32))["params"]
    _, trace, _ = make_analysis_step(model, FULL)(params, None, _batch())
    assert set(trace["act"]) == set(trace["act_grad"]) == {"embed", "head/pre"}
    spec = CaptureSpec(modules=("head",), reductions=("l2",))
    _, trace, _ = make_analysis_step(model, spec)(params, None, _batch())
    assert set(trace["reduced"]["act"]) == {"head/pre"}


def test_spec_naming_an_untapped_module_raises_with_the_tapped_names():
    model, tx = MLPLM(), optax.sgd(0.1)
    state = init_train_state(model, tx, 0, B)
    spec = CaptureSpec(modules=("hidden", "lstm"))
    with pytest.raises(ValueError, match=r"\['lstm'\].*tapped: \['embed', 'hidden'\]"):
        make_train_step(model, tx, spec)(state, _batch())
    lstm = language_model(V, emb_dim=4, hidden=4, num_layers=2)
    st = init_train_state(lstm, tx, 0, B)
    with pytest.raises(ValueError, match=r"\['lstm_2'\].*lstm_1"):
        make_train_step(lstm, tx, CaptureSpec(modules=("lstm_2",)))(st, _batch())


def test_model_that_taps_nothing_is_an_error_not_zeros():
    model, tx = Untapped(), optax.sgd(0.1)
    state = init_train_state(model, tx, 0, B)
    with pytest.raises(ValueError, match="sows none"):
        make_train_step(model, tx, CaptureSpec())(state, _batch())
    with pytest.raises(ValueError, match="perturbs no tensor"):
        make_train_step(model, tx, CaptureSpec(activations=False))(state, _batch())
    # asking only for parameter gradients is fine
    spec = CaptureSpec(activations=False, act_grads=False, param_grads=True)
    _, _, trace = make_train_step(model, tx, spec)(state, _batch())
    assert "param_grad" in trace and "act" not in trace["reduced"]


def test_double_tap_and_wrong_shape_are_errors():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, tokens, train=False):
            x = nn.Embed(V, 4)(tokens)
            self.sow("intermediates", "x", x)
            self.sow("intermediates", "x", x)
            return nn.Dense(V)(x)

    class Pooled(nn.Module):
        @nn.compact
        def __call__(self, tokens, train=False):
            x = nn.Embed(V, 4)(tokens)
            tap(self, "pooled", x.mean(axis=1))  # (B, D): not per token
            return nn.Dense(V)(x)

    spec = CaptureSpec(act_grads=False)
    for model, msg in ((Twice(), "tapped 2 times"), (Pooled(), r"samples-first \(B, T, D\)")):
        params = model.init(jax.random.key(0), jnp.zeros((B, 1), jnp.int32))["params"]
        with pytest.raises(ValueError, match=msg):
            make_analysis_step(model, spec)(params, None, _batch())


def test_recurrent_protocol_threads_the_carry():
    model, tx = ElmanLM(), optax.adam(1e-2)
    state = init_train_state(model, tx, 0, B)
    assert state.carry.shape == (B, 6)
    step = make_train_step(model, tx, CaptureSpec(reductions=("l2",)))
    s1, _, trace = step(state, _batch(0))
    assert set(trace["reduced"]["act_grad"]) == {"h"}
    assert not np.allclose(s1.carry, 0.0)
    # the carry feeds the next chunk: evaluation with it differs from zeros
    ev = make_eval_step(model)
    t_carry, _, _ = ev(s1.params, s1.carry, _batch(1))
    t_zero, _, _ = ev(s1.params, state.carry, _batch(1))
    assert float(t_carry) != float(t_zero)


def test_injected_learning_rate_inside_a_chain():
    tx = optax.chain(
        optax.clip_by_global_norm(1.0), optax.inject_hyperparams(optax.sgd)(learning_rate=0.5)
    )
    model = MLPLM()
    state = init_train_state(model, tx, 0, B)
    assert get_learning_rate(state.opt_state) == 0.5
    state = state._replace(opt_state=set_learning_rate(state.opt_state, 0.25))
    _, metrics, _ = make_train_step(model, tx)(state, _batch())
    assert float(metrics["lr"]) == 0.25
    plain = init_train_state(model, optax.adam(1e-3), 0, B)
    assert get_learning_rate(plain.opt_state) is None
    with pytest.raises(ValueError, match="inject_hyperparams"):
        set_learning_rate(plain.opt_state, 0.1)
    assert get_learning_rate(init_train_state(model, make_optimizer(), 0, B).opt_state) == 20.0
