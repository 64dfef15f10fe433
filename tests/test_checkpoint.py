import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxdyn.checkpoint import CheckpointError, Trajectory
from jaxdyn.config import (
    TRAINING_KEYS,
    CaptureConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    override,
)
from jaxdyn.train import lm_task, load_run, train
from jaxdyn.train.loop import build_model
from jaxdyn.train.optim import make_optimizer
from jaxdyn.train.state import init_train_state

SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(400)]
SPLITS = {"train": SENTS, "valid": SENTS[:60], "test": SENTS[60:120]}
CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.2),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    capture=CaptureConfig(every=5, reductions=("l2", "te")),
    epochs=2,
    checkpoint_every_steps=0,
    log_every=5,
)


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_exact_resume_mid_epoch(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    full = train(CFG, tmp_path / "full", data, progress=False)
    assert full.finished
    # stop mid-epoch 1, then again mid-epoch 2, resuming each time
    part = train(CFG, tmp_path / "part", data, progress=False, max_steps=n // 2)
    assert not part.finished
    part = train(CFG, tmp_path / "part", data, progress=False, max_steps=n)
    assert not part.finished
    part = train(CFG, tmp_path / "part", data, progress=False)
    assert part.finished
    _leaves_equal(full.state.params, part.state.params)
    _leaves_equal(full.state.opt_state, part.state.opt_state)
    for key in ("valid_loss", "train_loss", "lr", "step"):
        a, b = [r[key] for r in full.history], [r[key] for r in part.history]
        np.testing.assert_array_equal(a, b, err_msg=key)  # train_loss: whole epoch, not the tail
    for name in ("steps.jsonl", "traces.jsonl"):  # same rows, none lost or repeated
        a = (tmp_path / "full" / "metrics" / name).read_text()
        assert a == (tmp_path / "part" / "metrics" / name).read_text(), name
    # the trajectory has init + per-epoch checkpoints (+ the interruptions)
    cfg, steps = load_run(tmp_path / "full")
    assert cfg == CFG and steps == [0, n, 2 * n]


def test_resume_refuses_other_config(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    train(CFG, tmp_path, data, progress=False, max_steps=2)
    other = dataclasses.replace(CFG, seed=5)
    with pytest.raises(ConfigError, match=r"different config .*seed: 1111 in the run, 5 now"):
        train(other, tmp_path, data, progress=False)
    # study options are not training options: a changed one resumes, and is recorded
    studied = override(CFG, ["interactions.max_sentences=7"])
    train(studied, tmp_path, data, progress=False, max_steps=1)
    assert json.loads((tmp_path / "config.json").read_text())["interactions"]["max_sentences"] == 7


def _state(seed=0):
    data = lm_task(SPLITS, CFG.data)
    model = build_model(CFG, data)
    tx = make_optimizer()
    return init_train_state(model, tx, seed, 4)


def test_corrupt_and_incomplete_checkpoints_are_never_loaded(tmp_path):
    s0 = _state(0)
    with Trajectory(tmp_path) as traj:
        traj.save(s0, {"epoch": 0})
        s1 = s0._replace(
            step=s0.step + 1, params=jax.tree_util.tree_map(lambda x: x + 1, s0.params)
        )
        traj.save(s1, {"epoch": 1})
        s2 = s1._replace(step=s1.step + 1)
        traj.save(s2, {"epoch": 2})
        assert traj.valid_steps() == [0, 1, 2]
        restored, meta = traj.restore(1, s0)
        assert meta["epoch"] == 1 and meta["step"] == 1
        _leaves_equal(restored.params, s1.params)
    # corrupt step 2: flip bytes in its largest file
    files = sorted(
        (tmp_path / "ckpt" / "2").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    target = files[-1]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    target.write_bytes(bytes(raw))
    # remove the manifest of step 1 (an interrupted save)
    (tmp_path / "manifests" / "1.json").unlink()
    with Trajectory(tmp_path) as traj:
        with pytest.raises(CheckpointError, match=r"step 2 .*corrupt.*step 0"):
            traj.restore(2, s0)
        with pytest.raises(CheckpointError, match=r"step 1 .*incomplete"):
            traj.restore(1, s0)
        with pytest.raises(CheckpointError, match="missing"):
            traj.restore(7, s0)
        assert traj.valid_steps() == [0]
        restored, _ = traj.restore(0, s0)
        _leaves_equal(restored.params, s0.params)


def test_training_refuses_corrupt_latest(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    train(CFG, tmp_path, data, progress=False, max_steps=3)
    latest = max(int(p.stem) for p in (tmp_path / "manifests").glob("*.json"))
    mf = tmp_path / "manifests" / f"{latest}.json"
    d = json.loads(mf.read_text())
    d["files"] = {k: "0" * 64 for k in d["files"]}
    mf.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match=f"step {latest}"):
        train(CFG, tmp_path, data, progress=False)
    # the older checkpoint is still usable, explicitly
    res = train(CFG, tmp_path, data, progress=False, resume_step=0, max_steps=1)
    assert int(res.state.step) == 1


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_crash_between_checkpoints_neither_duplicates_nor_loses_metrics(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    cfg = dataclasses.replace(CFG, epochs=1, checkpoint_every_steps=20)

    def crash(step, epoch, trace):
        if step == 35:  # after the checkpoint at step 20, logs of steps 21-35 written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "a", data, progress=False, sinks=[crash])
    train(cfg, tmp_path / "a", data, progress=False)
    train(cfg, tmp_path / "b", data, progress=False)
    for name in ("steps.jsonl", "traces.jsonl"):
        got = [r["step"] for r in _rows(tmp_path / "a" / "metrics" / name)]
        assert len(got) == len(set(got)), name
        assert got == [r["step"] for r in _rows(tmp_path / "b" / "metrics" / name)], name


def test_step_checkpoint_at_epoch_end_keeps_the_epoch_checkpoint(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    cfg = dataclasses.replace(CFG, epochs=1, checkpoint_every_steps=n)
    res = train(cfg, tmp_path, data, progress=False)
    with Trajectory(tmp_path, read_only=True) as traj:
        meta = traj.restore_meta(n)
    assert (meta["kind"], meta["epoch"], meta["chunk"]) == ("epoch", 1, 0)
    assert np.isfinite(res.history[-1]["train_loss"])


def test_resume_replaces_a_broken_checkpoint_on_its_path(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    train(CFG, tmp_path, data, progress=False, max_steps=3)
    (tmp_path / "manifests" / "3.json").unlink()  # save of step 3 did not finish
    with pytest.raises(CheckpointError, match=r"delete .*ckpt/3"):
        train(CFG, tmp_path, data, progress=False)
    train(CFG, tmp_path, data, progress=False, resume_step=0, max_steps=3)
    with Trajectory(tmp_path) as traj:
        assert traj.valid_steps() == [0, 3]


def test_config_of_a_run_that_never_checkpointed_is_replaced(tmp_path):
    other = dataclasses.replace(CFG, seed=5)
    (tmp_path / "config.json").write_text(json.dumps(other.to_dict()))  # failed before step 0
    res = train(CFG, tmp_path, lm_task(SPLITS, CFG.data), progress=False, max_steps=1)
    assert int(res.state.step) == 1
    assert json.loads((tmp_path / "config.json").read_text())["seed"] == CFG.seed


def test_iter_checkpoints_reads_params_and_meta_only_hashing_each_file_once(tmp_path, monkeypatch):
    import jaxdyn.checkpoint as ck
    from jaxdyn.train.trajectory import iter_checkpoints

    data = lm_task(SPLITS, CFG.data)
    cfg = dataclasses.replace(CFG, checkpoint_every_steps=7)
    res = train(cfg, tmp_path, data, progress=False)
    counts = {}
    real = ck.hashlib.sha256

    def counting_sha256(*a, **kw):
        h = real(*a, **kw)
        counts["n"] = counts.get("n", 0) + 1
        return h

    def no_full_restore(*a, **kw):
        raise AssertionError("read-back restored the whole train state")

    monkeypatch.setattr(ck.hashlib, "sha256", counting_sha256)
    monkeypatch.setattr(Trajectory, "restore", no_full_restore)
    got = list(iter_checkpoints(tmp_path))
    n_files = sum(
        1
        for s in Trajectory(tmp_path, read_only=True).all_steps()
        for p in (tmp_path / "ckpt" / str(s)).rglob("*")
        if p.is_file()
    )
    assert counts["n"] == n_files  # every file of every checkpoint, once
    assert [c.kind for c in got] == ["init", "epoch", "epoch"]
    _leaves_equal(got[-1].params, res.state.params)


def test_resume_compares_training_keys_only_and_reads_old_config_files(tmp_path):
    data = lm_task(SPLITS, CFG.data)
    train(CFG, tmp_path, data, progress=False, max_steps=2)
    # an older config.json: training keys only, without keys added since (model.kind)
    old = {k: v for k, v in CFG.to_dict().items() if k in TRAINING_KEYS}
    old["model"].pop("kind", None)
    (tmp_path / "config.json").write_text(json.dumps(old))
    with Trajectory(tmp_path, read_only=True) as traj:
        assert set(traj.restore_meta(2)["config"]) == set(TRAINING_KEYS)
    res = train(CFG, tmp_path, data, progress=False, max_steps=1)
    assert int(res.state.step) == 3
    if hasattr(CFG, "sparsity"):  # a study section may change without invalidating the run
        study = dataclasses.replace(CFG, sparsity=dataclasses.replace(CFG.sparsity))
        other = {
            f.name: getattr(study.sparsity, f.name) for f in dataclasses.fields(study.sparsity)
        }
        field = next(k for k, v in other.items() if isinstance(v, int) and not isinstance(v, bool))
        study = dataclasses.replace(
            CFG, sparsity=dataclasses.replace(CFG.sparsity, **{field: other[field] + 1})
        )
        assert study.training_dict() == CFG.training_dict() and study != CFG
        res = train(study, tmp_path, data, progress=False, max_steps=1)
        assert int(res.state.step) == 4


def test_exact_resume_of_a_model_without_carry(tmp_path):
    import optax

    from tests.test_capture import MLPLM

    data = lm_task(SPLITS, CFG.data)
    n = data.train.num_chunks(CFG.data.bptt)
    cfg = dataclasses.replace(CFG, epochs=1)
    model, tx = MLPLM(vocab=len(data.vocab), dropout=0.2), optax.sgd(0.5)
    full = train(cfg, tmp_path / "full", data, progress=False, model=model, tx=tx)
    train(cfg, tmp_path / "part", data, progress=False, model=model, tx=tx, max_steps=n // 2)
    part = train(cfg, tmp_path / "part", data, progress=False, model=model, tx=tx)
    assert full.state.carry is None and part.state.carry is None
    _leaves_equal(full.state, part.state)
