import json
import subprocess
import sys

import pytest

from jaxdyn.cli import main
from jaxdyn.config import PRESETS, RunConfig, override, preset


def test_overrides_and_errors():
    cfg = override(
        preset("smoke"), ["optim.lr=5", "epochs=2", "model.tie_weights=true", "data.max_vocab=none"]
    )
    assert cfg.optim.lr == 5.0 and cfg.epochs == 2 and cfg.model.tie_weights is True
    assert cfg.data.max_vocab is None
    assert override(cfg, ["data.max_train_tokens=2e4"]).data.max_train_tokens == 20_000
    cfg = override(cfg, ["capture.reductions=l2,te"])
    assert cfg.capture.reductions == ("l2", "te")
    for bad, msg in [
        (["optim.nope=1"], "unknown config key"),
        (["epochs=two"], "bad value for 'epochs'"),
        (["optim=3"], "is a section"),
        (["lr"], "KEY=VALUE"),
        (["log_every=0"], "bad value for 'log_every'"),
        (["model.hidden=0"], "bad value for 'model.hidden'"),
        (["model.hidden=1.5e0"], "expected an integer"),
        (["epochs=1e400"], "expected an integer"),
        (["optim.name=sdg"], "bad value for 'optim.name'"),
        (["optim.lr=nan"], "optim.lr"),
        (["optim.plateau_factor=4"], "plateau_factor"),
        (["model.dropout=1"], "model.dropout"),
    ]:
        with pytest.raises(ValueError, match=msg):
            override(cfg, bad)
    for p in PRESETS.values():
        assert RunConfig.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    thesis = preset("thesis")
    assert (thesis.model.hidden, thesis.model.num_layers, thesis.optim.lr, thesis.epochs) == (
        200,
        2,
        20.0,
        40,
    )


def test_cli_help_and_bad_input(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "jaxdyn run" in capsys.readouterr().out
    assert main(["config", "--preset", "smoke", "--set", "bogus=1"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert (
        main(["train", "--corpus", "/nonexistent/folder", "--workdir", "/tmp/x", "--no-progress"])
        == 2
    )
    assert "not a known corpus" in capsys.readouterr().err


def test_run_smoke_end_to_end(tmp_path):
    """`jaxdyn run --preset smoke` as a user would, then a rerun that resumes."""
    work = tmp_path / "smoke"
    cmd = [
        sys.executable,
        "-m",
        "jaxdyn.cli",
        "run",
        "--preset",
        "smoke",
        "--workdir",
        str(work),
        "--no-progress",
    ]
    from jaxdyn.studies.cache import code_digest

    code = code_digest.__wrapped__()  # jaxdyn's source now (uncached)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = (work / "report" / "README.md").read_text()
    assert "## Training" in report and "training_curves.png" in report
    assert "## Sparsity" in report and "sparsity_over_epochs.png" in report
    assert (work / "sparsity" / "per_type.csv.gz").stat().st_size > 1000
    assert (work / "report" / "training_curves.png").stat().st_size > 1000
    rows = [json.loads(l) for l in (work / "metrics" / "epochs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["valid_ppl"] < rows[0]["valid_ppl"] / 3
    assert (work / "metrics" / "traces.jsonl").read_text().count("\n") >= 3
    assert "[jaxdyn] stage sparsity (no cached result)" in out.stderr
    assert "epoch   1 |" in out.stderr  # --no-progress keeps the epoch lines
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already trained to epoch 3" in again.stderr and "resuming" not in again.stderr
    if code_digest.__wrapped__() == code:  # (a checkout edited meanwhile rightly recomputes:
        # this only tells the two apart when the source was unchanged throughout)
        assert "stage sparsity: cached (inputs unchanged since" in again.stderr
    else:  # edited at some point during the two runs: either answer can be right
        assert "sparsity: cached" in again.stderr or "changed: jaxdyn's code" in again.stderr
    assert (work / "tensorboard").is_dir()


def test_cli_reports_a_broken_checkpoint_cleanly(tmp_path, capsys):
    work = str(tmp_path / "w")
    args = ["train", "--set", "data.max_train_tokens=3000", "--set", "epochs=1"]
    args += ["--set", "capture.enabled=false", "--workdir", work, "--no-progress"]
    assert main([*args, "--max-steps", "2"]) == 0
    (tmp_path / "w" / "manifests" / "2.json").unlink()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "step 2" in err and "incomplete" in err and "Traceback" not in err


def test_commands_tune_the_allocator_unless_told_not_to(monkeypatch):
    import jaxdyn.runtime
    from jaxdyn.cli import build_parser, prepare_process

    calls = []
    monkeypatch.setattr(jaxdyn.runtime, "tune_host_allocator", lambda: calls.append(1) or True)
    for argv, want in (
        (["config"], 1),
        (["config", "--default-malloc"], 0),
        (["train", "--default-malloc"], 0),
        (["run"], 1),
    ):
        calls.clear()
        prepare_process(build_parser().parse_args(argv))
        assert len(calls) == want, argv
    calls.clear()
    assert main(["config", "--preset", "smoke"]) == 0
    assert calls == [1]


def test_cli_errors_share_one_format_and_exit_code(capsys, tmp_path):
    """Every error the user can fix: one line `jaxdyn: error: ...`, exit status 2."""
    work = ["--workdir", str(tmp_path / "never")]
    assert main(["run", "--stages", "foo", *work]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxdyn: error: unknown stage 'foo' in --stages; choose from train")
    assert main(["run", "--stages", "train,bogus,nope", *work]) == 2
    assert "unknown stages 'bogus', 'nope'" in capsys.readouterr().err
    assert main(["config", "--set", "epochs=2.5"]) == 2
    err = capsys.readouterr().err
    assert err == "jaxdyn: error: bad value for 'epochs': expected an integer, got '2.5'\n"
    for argv in (["run", "--epochs", "2.5"], ["run", "--bogus"], ["nope"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert "\njaxdyn: error: " in err and "Traceback" not in err, argv
    assert not (tmp_path / "never").exists()
