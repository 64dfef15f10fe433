"""Stage cache and input validation of `jaxdyn run` (jaxdyn.studies.cache); the record of
checkpoints an analysis skips is tested in tests/test_loop.py (it reuses that module's run)."""

import json

import pytest

from jaxdyn.config import RunConfig, override, preset
from jaxdyn.data.paths import CorpusNotFoundError
from jaxdyn.report import write_section
from jaxdyn.studies import cache, run


@pytest.fixture
def fake_stage(monkeypatch):
    """A stage that analyses the run (not in OWN_MODELS) and counts its calls."""
    calls = []

    def stage(ctx):
        calls.append(ctx.cfg.epochs)
        write_section(
            ctx.workdir, 90, "fake", f"## Fake\n\nepochs {ctx.cfg.epochs}\n", stage="fake"
        )

    monkeypatch.setitem(run.STAGES, "fake", stage)
    return calls


def test_stage_cache_hit_and_miss(tmp_path, fake_stage, capsys):
    cfg = preset("smoke")
    run.run_study(cfg, tmp_path, stages=["fake"], progress=False)
    assert fake_stage == [cfg.epochs]
    assert "stage fake (no cached result)" in capsys.readouterr().err
    # nothing changed: skipped, and its section is current in the report (not stale)
    report = run.run_study(cfg, tmp_path, stages=["fake"], progress=False)
    err = capsys.readouterr().err
    assert fake_stage == [cfg.epochs] and "stage fake: cached (inputs unchanged since" in err
    assert "From an earlier invocation" not in report.read_text()
    meta = json.loads((tmp_path / "report/sections/90-fake.json").read_text())
    assert meta["cached"] and meta["computed_ts"] <= meta["written_ts"]
    # an inherited key of its config changed (the section is None: follows the run)
    more = override(cfg, [f"epochs={cfg.epochs + 1}"])
    run.run_study(more, tmp_path, stages=["fake"], progress=False)
    assert fake_stage[-1] == cfg.epochs + 1 and "changed: its config" in capsys.readouterr().err
    # the run's checkpoints changed (a new manifest)
    (tmp_path / "manifests").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "7.json").write_text('{"step": 7, "files": {}}')
    run.run_study(more, tmp_path, stages=["fake"], progress=False)
    assert len(fake_stage) == 3 and "changed: the run's checkpoints" in capsys.readouterr().err
    # its output gone: recomputed
    (tmp_path / "report/sections/90-fake.md").unlink()
    run.run_study(more, tmp_path, stages=["fake"], progress=False)
    assert len(fake_stage) == 4 and "report section is missing" in capsys.readouterr().err
    run.run_study(more, tmp_path, stages=["fake"], progress=False)
    assert len(fake_stage) == 4


def test_stage_key_parts():
    cfg = preset("smoke")
    a = cache.stage_key(cfg, "sparsity", "/nonexistent", None)
    b = cache.stage_key(override(cfg, ["sparsity.checkpoints=last"]), "sparsity", "/x", None)
    assert a["code"] == b["code"] and a["checkpoints"] == b["checkpoints"]
    assert a["config"] != b["config"]
    # another stage's option is not this stage's input
    c = cache.stage_key(override(cfg, ["interactions.max_sentences=3"]), "sparsity", "/x", None)
    assert c == a
    # studies with their own models do not depend on the run's checkpoints
    assert cache.stage_key(cfg, "interactions", "/x", None)["checkpoints"] == ""
    # a section with its own epochs and seed still follows the run's seeds (seeds=None)
    own = override(cfg, ["interactions.epochs=2", "interactions.seed=5"])
    one, three = (
        cache.stage_key(override(own, [f"seeds={s}"]), "interactions", "/x", None)["config"]
        for s in (1, 3)
    )
    assert one != three
    fixed = override(own, ["interactions.seeds=2"])
    assert (
        cache.stage_key(fixed, "interactions", "/x", None)["config"]
        == cache.stage_key(override(fixed, ["seeds=3"]), "interactions", "/x", None)["config"]
    )


def test_bad_data_dir_fails_before_training_naming_what_is_missing(tmp_path, capsys):
    from jaxdyn.cli import main

    empty = tmp_path / "corpora"
    empty.mkdir()
    (empty / "brown").mkdir()
    work = tmp_path / "w"
    argv = ["run", "--preset", "smoke", "--workdir", str(work), "--data-dir", str(empty)]
    assert main([*argv, "--stages", "sparsity,similarity", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxdyn: error: --data-dir") and "nothing was trained" in err
    assert "ud-english-ewt/en_ewt-ud-train.conllu" in err and "brown/cats.txt" in err
    assert "stages sparsity, similarity" in err
    assert not (work / "ckpt").exists()  # failed before training
    with pytest.raises(CorpusNotFoundError, match=r"eval_path: /no/such\.conllu"):
        cfg = override(RunConfig(), ["interactions.eval_path=/no/such.conllu"])
        cache.validate_inputs(cfg, ["interactions"], None)
    cache.validate_inputs(preset("smoke"), list(run.STAGES), None)  # no folder: nothing needed
