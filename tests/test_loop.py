"""The host loop (jaxdyn.train.loop): one loop for single models and populations,
extension of finished runs, Ctrl-C, TensorBoard event files."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdyn.config import (
    CaptureConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from jaxdyn.train import lm_task, train

_SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(240)]
_SPLITS = {"train": _SENTS, "valid": _SENTS[:40], "test": _SENTS[40:80]}
_REF = Path(__file__).parent / "data" / "loop_single_seed_reference.npz"

#: the single-seed run behind tests/data/loop_single_seed_reference.npz (plateau rule,
#: capture, step checkpoints, dropout, an interruption: every branch of the loop);
#: recorded with the loop before the single/population merge
#: (``python tests/data/make_loop_reference.py`` at commit 0b96cb3)
REF_CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.2),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    optim=OptimConfig(lr=20.0, plateau_factor=0.25),
    capture=CaptureConfig(every=4, reductions=("l2", "te")),
    epochs=3,
    checkpoint_every_steps=5,
    log_every=3,
)


def ref_data():
    return lm_task(_SPLITS, REF_CFG.data)


def _hist(h):
    return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in h])


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    """REF_CFG trained as a user would: 2 epochs (interrupted once, resumed), rerun when
    finished, then extended to 3 epochs; returns (workdir, results, stderr of each call)."""
    work = tmp_path_factory.mktemp("loop")
    data = ref_data()
    n = data.train.num_chunks(REF_CFG.data.bptt)
    two = dataclasses.replace(REF_CFG, epochs=2)
    logs = []

    def call(cfg, **kw):
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stderr(buf):
            res = train(cfg, work, data, progress=False, **kw)
        logs.append(buf.getvalue())
        return res

    call(two, max_steps=n + 3)
    call(two)
    again = call(two)
    res = call(REF_CFG)
    return work, again, res, logs


def test_single_seed_run_is_bit_identical_to_the_pre_merge_loop_and_extends(extended):
    """One host loop for single models and populations: a single-seed run (interrupted,
    resumed, then extended from 2 to 3 epochs) equals the pre-merge loop's bit for bit."""
    work, _, res, _ = extended
    ref = np.load(_REF)
    leaves = jax.tree_util.tree_leaves(res.state)
    assert len(leaves) == len([k for k in ref.files if k.startswith("p")])
    for i, x in enumerate(leaves):
        np.testing.assert_array_equal(np.asarray(x), ref[f"p{i}"])
    assert _hist(res.history) == str(ref["history"])
    assert (work / "metrics/steps.jsonl").read_text() == str(ref["steps"])
    assert (work / "metrics/traces.jsonl").read_text() == str(ref["traces"])


def test_finished_run_says_already_trained_and_extension_continues(extended):
    work, again, res, logs = extended
    assert "resuming" in logs[1] and "from step 55 (epoch 1, chunk 3) to epoch 2" in logs[1]
    assert again.finished and "already trained to epoch 2" in logs[2]
    assert "resuming" not in logs[2] and "epoch   " not in logs[2]  # nothing trained
    assert "extending" in logs[3] and "to epoch 3" in logs[3]
    assert "epoch   3" in logs[3] and "epoch   2" not in logs[3]  # only the new epoch ran
    assert [r["epoch"] for r in res.history] == [0, 1, 2, 3]
    # epoch lines say what is training (the run folder's name by default)
    assert f"[{work.name}] epoch   1 |" in logs[0]


def test_config_mismatch_names_the_differing_keys(extended, tmp_path):
    work, *_ = extended
    bad = dataclasses.replace(
        REF_CFG, seed=7, optim=dataclasses.replace(REF_CFG.optim, lr=1.0), epochs=9
    )
    with pytest.raises(ConfigError) as e:
        train(bad, work, ref_data(), progress=False)
    msg = str(e.value)
    assert "optim.lr: 20.0 in the run, 1.0 now" in msg and "seed: 1111 in the run, 7 now" in msg
    assert "epochs" not in msg  # a larger epochs extends the run, it is no mismatch


def test_tensorboard_event_files_are_readable_by_tensorboard(extended):
    """tensorboard's own EventAccumulator reads the curves and trace statistics; the
    interrupted invocation's events after its checkpoint are purged on resume."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    work, _, res, _ = extended
    acc = EventAccumulator(str(work / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"epoch/valid_loss", "epoch/valid_ppl", "epoch/lr", "train/loss"} <= set(tags)
    traced = [t for t in tags if t.startswith("trace/")]
    assert any("lstm_0" in t for t in traced), tags
    valid = acc.Scalars("epoch/valid_loss")
    assert [e.step for e in valid] == [r["step"] for r in res.history]
    np.testing.assert_allclose([e.value for e in valid], [r["valid_loss"] for r in res.history])
    steps = [json.loads(x) for x in (work / "metrics/steps.jsonl").read_text().splitlines()]
    logged = acc.Scalars("train/loss")
    assert [e.step for e in logged] == [r["step"] for r in steps]  # no duplicates from resume
    np.testing.assert_allclose([e.value for e in logged], [r["loss"] for r in steps], rtol=1e-6)


_SIGINT_SCRIPT = textwrap.dedent(
    """
    import sys
    from tests.test_loop import REF_CFG, ref_data
    from jaxdyn.cli import _report_interrupt
    from jaxdyn.train import train
    import dataclasses
    cfg = dataclasses.replace(REF_CFG, epochs=int(sys.argv[2]), capture=dataclasses.replace(
        REF_CFG.capture, enabled=False))
    try:
        train(cfg, sys.argv[1], ref_data(), progress=False)
    except KeyboardInterrupt as e:
        sys.exit(_report_interrupt(e))
    print("FINISHED")
    """
)


@pytest.mark.slow  # two subprocesses that each compile (about 30-60 s on 2 loaded cores)
def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    """A subprocess training for long gets SIGINT after its first epoch line: it saves a
    checkpoint at the next step, prints how to resume, exits 130 without a traceback;
    rerunning resumes from that checkpoint."""
    from jaxdyn.checkpoint import Trajectory

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    cmd = [sys.executable, "-c", _SIGINT_SCRIPT, str(tmp_path / "w"), "1000"]
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, cwd=root) as proc:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "epoch   1 |" in line:
                proc.send_signal(signal.SIGINT)
                break
        err = "".join(lines) + proc.stderr.read()
        assert proc.wait(timeout=300) == 130, err
    assert "Traceback" not in err and "rerun the same command to resume" in err, err
    with Trajectory(tmp_path / "w", read_only=True) as traj:
        last = traj.latest_step()
        meta = traj.restore_meta(last)
    assert meta["kind"] in ("interrupted", "epoch") and meta["epoch"] >= 1
    assert f"checkpoint saved at step {last}" in err
    done = subprocess.run(
        [*cmd[:-1], str(meta["epoch"] + 1)], capture_output=True, text=True, env=env, cwd=root
    )
    assert done.returncode == 0 and "FINISHED" in done.stdout, done.stderr
    assert f"from step {last}" in done.stderr


def test_a_corrupt_checkpoint_is_warned_about_and_recorded(extended, tmp_path, capsys):
    """Analyses skip a corrupt checkpoint with a warning and list it in
    ``skipped_checkpoints.json`` of the analysed run (for the report)."""
    import shutil

    from jaxdyn.studies._common import SKIPPED_FILE, iter_selected

    work = tmp_path / "run"
    shutil.copytree(extended[0], work)
    got = [c.epoch for c in iter_selected(work, "all", "sparsity.checkpoints")]
    assert got == [0, 1, 2, 3]
    assert json.loads((work / SKIPPED_FILE).read_text()) == {"sparsity.checkpoints": []}
    files = [p for p in (work / "ckpt" / "52").rglob("*") if p.is_file()]
    max(files, key=lambda p: p.stat().st_size).write_bytes(b"garbage")
    capsys.readouterr()
    assert [c.epoch for c in iter_selected(work, "all", "sparsity.checkpoints")] == [0, 2, 3]
    err = capsys.readouterr().err
    assert "warning: sparsity.checkpoints: skipping the checkpoint of epoch 1 (step 52)" in err
    rec = json.loads((work / SKIPPED_FILE).read_text())["sparsity.checkpoints"]
    assert [(r["step"], r["epoch"]) for r in rec] == [(52, 1)] and "corrupt" in rec[0]["problem"]
    with pytest.raises(ValueError, match="no checkpoint for epochs"):
        list(iter_selected(work, "1", "sparsity.checkpoints"))


def test_log_lines_name_the_model_inside_a_study(tmp_path):
    """A study's own model (e.g. a bottom-up condition) is named by its path in the run."""
    from jaxdyn.train.loop import _default_label

    (tmp_path / "config.json").write_text("{}")
    inner = tmp_path / "bottom_up" / "L8-unfamiliar"
    inner.mkdir(parents=True)
    assert _default_label(inner) == "bottom_up/L8-unfamiliar"
    assert _default_label(tmp_path) == tmp_path.name
