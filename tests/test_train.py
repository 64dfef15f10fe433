import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxdyn.models import language_model
from jaxdyn.trace import CaptureSpec
from jaxdyn.train import (
    PlateauState,
    get_learning_rate,
    init_train_state,
    make_analysis_step,
    make_optimizer,
    make_train_step,
    masked_xent,
    plateau_update,
    set_learning_rate,
)

V, E, H, B, T = 30, 8, 6, 4, 5


def _setup(dropout=0.0, seed=0):
    model = language_model(V, emb_dim=E, hidden=H, num_layers=2, dropout=dropout)
    tx = make_optimizer("sgd", lr=1.0, clip=0.25)
    state = init_train_state(model, tx, seed, B)
    rng = np.random.default_rng(seed)
    batches = [
        {
            "inputs": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
            "targets": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
        }
        for _ in range(4)
    ]
    return model, tx, state, batches


FULL = CaptureSpec(keep_full=True, param_grads=True, reductions=("l1", "l2", "te"))


def test_trace_param_grads_equal_jax_grad_and_acts_equal_forward():
    model, tx, state, batches = _setup()
    batch = batches[0]
    _, _, trace = make_train_step(model, tx, FULL)(state, batch)

    def loss(p):
        logits, _ = model.apply({"params": p}, batch["inputs"], state.carry)
        return masked_xent(logits, batch["targets"], jnp.ones((B, T), bool))[0]

    g = jax.grad(loss)(state.params)
    chex_close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)  # noqa: E731
    jax.tree_util.tree_map(chex_close, trace["param_grad"], g)
    logits, _, acts = model.apply(
        {"params": state.params}, batch["inputs"], state.carry, return_acts=True
    )
    chex_close(trace["act"]["logits"], logits)
    chex_close(trace["act"]["lstm_1"], acts["lstm_1"]["h"])
    chex_close(trace["act"]["lstm_0.f"], acts["lstm_0"]["f"])
    chex_close(trace["act"]["embedding"], acts["embedding"])
    # reductions are per-token statistics of the full tensors
    l1 = np.abs(np.asarray(trace["act"]["lstm_0"])).sum(-1)
    np.testing.assert_allclose(np.asarray(trace["reduced"]["act"]["lstm_0"]["l1"]), l1, rtol=1e-5)
    assert trace["reduced"]["act"]["lstm_0"]["te"].shape == (B, T)


def test_activation_gradients_equal_finite_structure():
    """d loss / d (module output): check against grad of a function of that output."""
    model, tx, state, batches = _setup()
    batch = batches[1]
    _, _, trace = make_train_step(model, tx, FULL)(state, batch)
    _, _, acts = model.apply(
        {"params": state.params}, batch["inputs"], state.carry, return_acts=True
    )
    p = state.params

    def loss_from_top(h):  # decoder_in == lstm_1 output when dropout is 0
        logits = h @ p["decoder"]["weight"].T + p["decoder"]["bias"]
        return masked_xent(logits, batch["targets"], jnp.ones((B, T), bool))[0]

    g_top = jax.grad(loss_from_top)(acts["lstm_1"]["h"])
    np.testing.assert_allclose(
        np.asarray(trace["act_grad"]["decoder_in"]), np.asarray(g_top), atol=1e-7
    )
    np.testing.assert_allclose(
        np.asarray(trace["act_grad"]["lstm_1"]), np.asarray(g_top), atol=1e-7
    )
    logits = acts["logits"]
    g_logits = jax.grad(lambda z: masked_xent(z, batch["targets"], jnp.ones((B, T), bool))[0])(
        logits
    )
    np.testing.assert_allclose(
        np.asarray(trace["act_grad"]["logits"]), np.asarray(g_logits), atol=1e-7
    )
    assert set(trace["act_grad"]) == {"embedding", "lstm_0", "lstm_1", "decoder_in", "logits"}


def test_capture_does_not_change_training():
    model, tx, state0, batches = _setup(dropout=0.3)
    plain = make_train_step(model, tx, None)
    capture = make_train_step(model, tx, FULL)
    s_plain, s_cap = state0, state0
    for i, b in enumerate(batches * 2):
        s_plain, _m1, tr = plain(s_plain, b)
        assert tr is None
        s_cap, _m2, _trace = (capture if i % 2 == 0 else plain)(s_cap, b)
    for a, b in zip(jax.tree_util.tree_leaves(s_plain), jax.tree_util.tree_leaves(s_cap)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_no_retrace_and_summary_only_trace():
    model, tx, state, batches = _setup()
    spec = CaptureSpec(reductions=("l2", "te"))
    step = make_train_step(model, tx, spec)
    state, _, trace = step(state, batches[0])
    assert "act" not in trace and "act_grad" not in trace and "param_grad" not in trace
    assert set(trace["reduced"]) == {"act", "act_grad"}
    n = step._cache_size()
    for b in batches[1:]:
        state, _, _ = step(state, b)
    state = state._replace(opt_state=set_learning_rate(state.opt_state, 0.5))
    state, _, _ = step(state, batches[0])
    assert step._cache_size() == n == 1


def test_step_metrics_and_rng_fold():
    model, tx, state, batches = _setup(dropout=0.5)
    step = make_train_step(model, tx)
    s1, m, _ = step(state, batches[0])
    assert int(s1.step) == 1 and float(m["tokens"]) == B * T
    assert float(m["lr"]) == 1.0 and float(m["grad_norm"]) > 0
    # same state & batch -> same result; different step -> different dropout mask
    s1b, _, _ = step(state, batches[0])
    np.testing.assert_array_equal(s1.params["decoder"]["bias"], s1b.params["decoder"]["bias"])


def test_masked_loss_ignores_masked_positions():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5)), jnp.float32)
    targets = jnp.asarray([[0, 1, 2], [3, 4, 0]])
    mask = jnp.asarray([[1, 1, 0], [1, 0, 0]], bool)
    mean, _total, count = masked_xent(logits, targets, mask)
    lp = jax.nn.log_softmax(logits)
    ref = -(lp[0, 0, 0] + lp[0, 1, 1] + lp[1, 0, 3]) / 3
    np.testing.assert_allclose(float(mean), float(ref), rtol=1e-6)
    assert float(count) == 3


def test_sgd_matches_manual_clip_and_update():
    model, _, _, batches = _setup()
    tx = make_optimizer("sgd", lr=20.0, clip=0.25)
    state = init_train_state(model, tx, 0, B)
    new, _m, _ = make_train_step(model, tx)(state, batches[0])

    def loss(p):
        logits, _ = model.apply({"params": p}, batches[0]["inputs"], state.carry)
        return masked_xent(logits, batches[0]["targets"], jnp.ones((B, T), bool))[0]

    g = jax.grad(loss)(state.params)
    norm = optax.tree.norm(g)
    scale = jnp.minimum(1.0, 0.25 / norm)
    manual = jax.tree_util.tree_map(lambda p, gg: p - 20.0 * gg * scale, state.params, g)
    for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(manual)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_plateau_schedule_and_adam():
    s = PlateauState()
    s, lr, imp = plateau_update(s, 5.0, 20.0)
    assert imp and lr == 20.0
    s, lr, imp = plateau_update(s, 5.1, lr)
    assert not imp and lr == 5.0 and s.best == 5.0
    tx = make_optimizer("adam", lr=1e-3)
    model, _, _, batches = _setup()
    st = init_train_state(model, tx, 0, B)
    assert get_learning_rate(st.opt_state) == pytest.approx(1e-3)
    st2, _, _ = make_train_step(model, tx)(st, batches[0])
    assert int(st2.step) == 1
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop")


def test_analysis_step_is_eval_mode():
    model, _, state, batches = _setup(dropout=0.5)
    spec = dataclasses.replace(FULL, param_grads=False)
    analyse = make_analysis_step(model, spec)
    _m1, t1, _ = analyse(state.params, state.carry, batches[0])
    _m2, t2, _ = analyse(state.params, state.carry, batches[0])
    np.testing.assert_array_equal(np.asarray(t1["act"]["logits"]), np.asarray(t2["act"]["logits"]))
    logits, _ = model.apply({"params": state.params}, batches[0]["inputs"], state.carry)
    np.testing.assert_allclose(np.asarray(t1["act"]["logits"]), np.asarray(logits), atol=1e-6)


def test_capture_spec_validation():
    with pytest.raises(ValueError, match="unknown reductions"):
        CaptureSpec(reductions=("nope",))
    with pytest.raises(ValueError, match="every"):
        CaptureSpec(every=0)
    s = CaptureSpec(modules=("lstm",), gates=False)
    assert s.wants("lstm_0") and not s.wants("lstm_0.f") and not s.wants("embedding")
    assert hash(s) == hash(CaptureSpec(modules=("lstm",), gates=False))


@pytest.mark.slow  # ~11 s; tests/test_readme.py trains a user model with plain optax.adam in the default suite
def test_train_takes_a_model_and_any_optax_optimizer(tmp_path, capsys):
    """A custom recurrent model with plain Adam through the host loop, resumed exactly."""
    from jaxdyn.train import iter_checkpoints, lm_task, train
    from tests.test_capture import ElmanLM
    from tests.test_checkpoint import CFG, SPLITS

    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    model, tx = ElmanLM(vocab=len(data.vocab)), optax.adam(1e-2)
    full = train(CFG, tmp_path / "full", data, progress=False, model=model, tx=tx)
    assert "plateau schedule (optim.plateau_factor=0.25) not applied" in capsys.readouterr().err
    assert full.finished and full.model is model
    assert [r["lr"] for r in full.history] == [None] * 3
    assert full.history[-1]["valid_loss"] < full.history[0]["valid_loss"]
    part = train(CFG, tmp_path / "part", data, progress=False, model=model, tx=tx, max_steps=n // 2)
    part = train(CFG, tmp_path / "part", data, progress=False, model=model, tx=tx)
    for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(part.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (tmp_path / "full" / "metrics" / "traces.jsonl").read_text() == (
        tmp_path / "part" / "metrics" / "traces.jsonl"
    ).read_text()
    cks = list(iter_checkpoints(tmp_path / "full", model=model))
    assert [c.epoch for c in cks] == [0, 1, 2]
    for a, b in zip(jax.tree.leaves(cks[-1].params), jax.tree.leaves(full.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_config_path_builds_the_same_model_and_optimizer(tmp_path):
    from jaxdyn.train import build_model, lm_task, optimizer_for, train
    from tests.test_checkpoint import CFG, SPLITS

    cfg = dataclasses.replace(CFG, epochs=1)
    data = lm_task(SPLITS, cfg.data)
    a = train(cfg, tmp_path / "a", data, progress=False)
    b = train(
        cfg,
        tmp_path / "b",
        data,
        progress=False,
        model=build_model(cfg, data),
        tx=optimizer_for(cfg.optim),
    )
    assert a.model == b.model
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    from jaxdyn.train.build import model_for

    with pytest.raises(ValueError, match=r"unknown model\.kind 'gru'"):
        model_for(types.SimpleNamespace(kind="gru"), 10, 10)


def test_plain_adam_in_make_train_step_has_no_lr_metric():
    model, _, _, batches = _setup()
    tx = optax.adam(1e-3)
    state = init_train_state(model, tx, 0, B)
    s1, m, trace = make_train_step(model, tx, FULL)(state, batches[0])
    assert "lr" not in m and int(s1.step) == 1
    assert set(trace["act_grad"]) == {"embedding", "lstm_0", "lstm_1", "decoder_in", "logits"}


def test_train_refuses_a_model_sized_for_another_task(tmp_path):
    from jaxdyn.train import lm_task, train
    from tests.test_capture import MLPLM
    from tests.test_checkpoint import CFG, SPLITS

    data = lm_task(SPLITS, CFG.data)
    with pytest.raises(ValueError, match=rf"outputs 5 classes but the task has {len(data.vocab)}"):
        train(CFG, tmp_path, data, progress=False, model=MLPLM(vocab=5), tx=optax.sgd(0.1))
