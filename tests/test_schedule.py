"""Checkpoint schedules (jaxdyn.train.schedule), parameters-only checkpoints, retention, resume."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxdyn.checkpoint import CheckpointError, Trajectory
from jaxdyn.config import (
    CaptureConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    override,
)
from jaxdyn.train import lm_task, train
from jaxdyn.train.schedule import (
    demote_candidates,
    is_scheduled,
    newest_full,
    scheduled_kind,
    scheduled_steps,
    to_demote,
)
from jaxdyn.train.trajectory import iter_checkpoints

SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(160)]
SPLITS = {"train": SENTS, "valid": SENTS[:40], "test": SENTS[40:80]}
CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=1, dropout=0.2),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    capture=CaptureConfig(every=5, reductions=("te",)),
    epochs=2,
    log_every=5,
)
ALL_KINDS = ("init", "epoch", "steps", "params", "interrupted")


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_log_schedule_is_pythia_steps():
    ck = CheckpointConfig(schedule="log", every=1000, log_until=512)
    expected = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000]
    assert scheduled_steps(3500, ck) == expected
    assert not is_scheduled(0, ck) and not is_scheduled(3, ck) and not is_scheduled(1024, ck)


def test_every_schedule_inline_and_key_and_epoch_default():
    assert scheduled_steps(20, CheckpointConfig(schedule="every:6")) == [6, 12, 18]
    assert scheduled_steps(20, CheckpointConfig(schedule="every", every=7)) == [7, 14]
    assert scheduled_steps(5000, CheckpointConfig()) == []  # epoch: nothing in between
    assert scheduled_steps(20, CheckpointConfig(), legacy_every=8) == [8, 16]


def test_kinds_full_every_and_legacy():
    ck = CheckpointConfig(schedule="every:2", kind="params", full_every=6)
    got = {s: scheduled_kind(s, ck) for s in range(1, 13)}
    assert got == {
        1: None,
        2: "params",
        3: None,
        4: "params",
        5: None,
        6: "steps",
        7: None,
        8: "params",
        9: None,
        10: "params",
        11: None,
        12: "steps",
    }
    assert scheduled_kind(5, CheckpointConfig(schedule="every:2", kind="params"), 5) == "steps"


def test_retention_rule():
    kinds = [(0, "init"), (3, "steps"), (5, "epoch"), (6, "steps"), (9, "steps"), (10, "params")]
    assert to_demote(kinds, 0) == []
    assert to_demote(kinds, 1) == [3, 6]
    assert to_demote(kinds, 5) == []
    assert newest_full(kinds) == 9
    assert newest_full([(1, "params")]) is None
    ck = CheckpointConfig(schedule="every:3", keep_full=2)
    assert demote_candidates(12, ck) == [3, 6]


@pytest.mark.parametrize(
    "assignment",
    [
        "checkpoint.schedule=weekly",
        "checkpoint.schedule=every:x",
        "checkpoint.schedule=log:5",
        "checkpoint.kind=light",
        "checkpoint.log_until=100",
        "checkpoint.every=0",
        "checkpoint.keep_full=-1",
    ],
)
def test_bad_checkpoint_keys_are_clear_errors(assignment):
    with pytest.raises(ConfigError, match="checkpoint"):
        override(RunConfig(), [assignment])


def test_default_schedule_saves_what_it_did(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    train(CFG, tmp_path, data, progress=False)
    with Trajectory(tmp_path, read_only=True) as traj:
        assert traj.kinds() == [(0, "init"), (n, "epoch"), (2 * n, "epoch")]


def test_params_schedule_resumes_exactly_after_a_crash(tmp_path):
    """Dense params-only schedule with periodic full checkpoints: crash, rerun == one run."""
    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    ck = CheckpointConfig(schedule="log", every=8, log_until=4, kind="params", full_every=12)
    cfg_crash = dataclasses.replace(CFG, checkpoint=ck)
    crash_at = 5 * ((n + 14) // 5)  # a captured step in epoch 2, after params-only ones
    assert n > 10

    def crash(step, epoch, trace):
        if step == crash_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg_crash, tmp_path / "a", data, progress=False, sinks=[crash])
    with Trajectory(tmp_path / "a", read_only=True) as traj:
        kinds = dict(traj.kinds())
        assert traj.latest_full_step() < traj.latest_step()  # newest ones are params-only
        with pytest.raises(CheckpointError, match="parameters only"):
            traj.restore(traj.latest_step(), None)
    assert kinds[1] == kinds[2] == kinds[4] == "params" and kinds[12] == "steps"
    a = train(cfg_crash, tmp_path / "a", data, progress=False)
    b = train(cfg_crash, tmp_path / "b", data, progress=False)
    _leaves_equal(a.state.params, b.state.params)
    _leaves_equal(a.state.opt_state, b.state.opt_state)
    assert [r["valid_loss"] for r in a.history] == [r["valid_loss"] for r in b.history]
    got_a = list(iter_checkpoints(tmp_path / "a", kinds=ALL_KINDS))
    got_b = list(iter_checkpoints(tmp_path / "b", kinds=ALL_KINDS))
    assert [(c.step, c.kind) for c in got_a] == [(c.step, c.kind) for c in got_b]
    for x, y in zip(got_a, got_b, strict=True):  # the dense trajectory is the same too
        _leaves_equal(x.params, y.params)
    steps = [c.step for c in got_b]
    expected = sorted({0, n, 2 * n} | set(scheduled_steps(2 * n, ck)))
    assert steps == expected


def test_interrupt_in_two_calls_equals_one_and_replaces_params_by_full(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    ck = CheckpointConfig(schedule="every:3", kind="params")
    cfg = dataclasses.replace(CFG, epochs=1, checkpoint=ck)
    one = train(cfg, tmp_path / "one", data, progress=False)
    train(cfg, tmp_path / "two", data, progress=False, max_steps=6)  # step 6 is scheduled
    with Trajectory(tmp_path / "two", read_only=True) as traj:
        assert dict(traj.kinds())[6] == "interrupted"  # full, not params: resumable
    two = train(cfg, tmp_path / "two", data, progress=False)
    _leaves_equal(one.state.params, two.state.params)
    _leaves_equal(one.state.opt_state, two.state.opt_state)


def test_keep_full_demotes_older_scheduled_full_checkpoints(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    cfg = dataclasses.replace(
        CFG, epochs=1, checkpoint=CheckpointConfig(schedule="every:3", keep_full=2)
    )
    full = dataclasses.replace(cfg, checkpoint=CheckpointConfig(schedule="every:3"))
    res = train(cfg, tmp_path / "keep", data, progress=False)
    train(full, tmp_path / "all", data, progress=False)
    with Trajectory(tmp_path / "keep", read_only=True) as traj:
        kinds = traj.kinds()
    sched = [s for s in range(3, n, 3)]
    steps_kind = [k for s, k in kinds if s in sched]
    assert steps_kind == ["params"] * (len(sched) - 2) + ["steps", "steps"]
    assert (0, "init") in kinds and (n, "epoch") in kinds
    a = list(iter_checkpoints(tmp_path / "keep", kinds=ALL_KINDS))
    b = list(iter_checkpoints(tmp_path / "all", kinds=ALL_KINDS))
    assert [c.step for c in a] == [c.step for c in b]
    for x, y in zip(a, b, strict=True):  # demoting keeps the parameters
        _leaves_equal(x.params, y.params)
    _leaves_equal(a[-1].params, res.state.params)


@pytest.mark.slow  # compiles the population step (~30 s on 2 loaded cores)
def test_population_params_schedule_reads_back_members(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    cfg = dataclasses.replace(
        CFG, epochs=1, seeds=2, checkpoint=CheckpointConfig(schedule="every:4", kind="params")
    )
    res = train(cfg, tmp_path, data, progress=False, mesh=None)
    got = list(iter_checkpoints(tmp_path, kinds=ALL_KINDS, member=1))
    assert [c.kind for c in got[1:3]] == ["params", "params"]
    last = jax.tree_util.tree_map(lambda x: x[1], res.state.params)
    _leaves_equal(got[-1].params, last)
