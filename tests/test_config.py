"""The one config tree: every key reachable, closest-key errors, files round-trip."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from jaxdyn.cli import main
from jaxdyn.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    describe,
    leaf_keys,
    load_config,
    override,
    preset,
)
from jaxdyn.studies._common import select_epochs, study_run_config


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_study_sections_are_part_of_the_tree():
    keys = leaf_keys(RunConfig)
    for k in (
        "interactions.max_sentences",
        "interactions.eval_path",
        "interactions.checkpoints",
        "interactions.model.hidden",
        "similarity.optim.lr",
        "similarity.data.max_train_tokens",
        "bottom_up.seed",
        "sparsity.max_chunks",
    ):
        assert k in keys
    d = json.loads(describe(preset("smoke")))
    assert d["interactions"]["max_sentences"] == 24 and d["bottom_up"]["rule_lengths"] == [2]


def _a_new_value(key, value, t):
    """A string --set would accept for ``key`` that differs from ``value``."""
    origin = typing.get_origin(t)
    args = [a for a in typing.get_args(t) if a is not type(None)]
    if args and origin is not tuple and type(None) in typing.get_args(t):
        t, origin = args[0], typing.get_origin(args[0])
    if key.endswith("checkpoints"):
        return "last"
    if key.endswith("model.kind"):
        return "transformer" if value == "lstm" else "lstm"
    if key.endswith("model.positions"):
        return "rotary" if value == "learned" else "learned"
    if key.endswith("optim.name"):
        return "adam"
    if key.endswith("cca_method"):
        return "gram" if value == "svd" else "svd"
    if key.endswith(("dropout", "plateau_factor", "probe_train_frac", "svcca_keep")):
        return "0.5" if value != 0.5 else "0.25"
    if key.endswith("interactions.data.corpus"):
        return None  # must stay ewt
    if key in ("sparsity.split", "phases.split", "attention.split"):
        return "test"
    if key == "attention.min_effect":
        return "0.1"  # a UAS difference, in [0, 1)
    if key == "data_order":
        return "per_member" if value != "per_member" else "shared"
    if key == "checkpoint.schedule":  # the schedules, kinds, and powers of two
        return "log" if value != "log" else "every:5"
    if key == "checkpoint.kind":
        return "params" if value != "params" else "full"
    if key == "checkpoint.log_until":
        return str(2 * value)
    if key == "phases.hmm_families":
        return "weights,sim" if value != "weights,sim" else "loss"
    if key == "phases.compute_families":
        return "weights,grad,loss,te,sim,weights"  # a superset of the HMM's families
    if key == "phases.covariance":
        return "full" if value != "full" else "diag"
    if key == "phases.coincide_quantile":
        return "0.5" if value != 0.5 else "0.9"
    if key.endswith("splits"):
        return "valid,test" if value == ("valid",) else "valid"
    if key == "similarity.tasks":
        return '[["ewt", ["upos"]]]'
    if origin is tuple:
        inner = typing.get_args(t)[0]
        if inner is int:
            return "4,5"
        return "ewt,brown" if value != ("ewt", "brown") else "ewt"
    if t is bool:
        return "false" if value else "true"
    if t is int:
        return str((value or 0) + 3)
    if t is float:
        return str((value or 0.0) + 1.5)
    return "somewhere" if value != "somewhere" else "elsewhere"


def test_set_reaches_every_key():
    cfg = preset("smoke")
    hints_of = {}

    def hint(key):
        obj = RunConfig
        *parents, last = key.split(".")
        for p in parents:
            obj = typing.get_type_hints(obj)[p]
        return typing.get_type_hints(obj)[last]

    skipped = set()
    for key in leaf_keys(RunConfig):
        hints_of[key] = hint(key)
        new = _a_new_value(key, _get(cfg, key), hints_of[key])
        if new is None:
            skipped.add(key)
            continue
        out = override(cfg, [f"{key}={new}"])
        assert _get(out, key) != _get(cfg, key), key
    # keys with a single valid value today
    assert {k for k in skipped if not k.endswith("model.kind")} == {"interactions.data.corpus"}


def test_unknown_keys_name_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"did you mean 'interactions.max_sentences'"):
        override(preset("smoke"), ["interactions.max_sentence=3"])
    with pytest.raises(ConfigError, match=r"did you mean 'interactions.max_sentences'"):
        override(preset("smoke"), ["max_sentences=3"])
    with pytest.raises(ConfigError, match=r"bad value for 'epochs': expected an integer"):
        override(preset("smoke"), ["epochs=2.5"])
    with pytest.raises(ConfigError, match="is a section"):
        override(preset("smoke"), ["interactions.model=3"])
    with pytest.raises(ConfigError, match=r"interactions\.checkpoints"):
        override(preset("smoke"), ["interactions.checkpoints=first"])
    with pytest.raises(ConfigError, match=r"did you mean 'model.hidden'"):
        RunConfig.from_dict({"model": {"hiden": 3}})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json_files(tmp_path, name):
    cfg = override(preset(name), ["interactions.checkpoints=0,2", "similarity.seed=7"])
    path = tmp_path / "c.json"
    path.write_text(describe(cfg))
    assert load_config(path) == cfg
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_partial_and_bad_config_files(tmp_path):
    p = tmp_path / "partial.json"
    p.write_text(json.dumps({"epochs": 2, "interactions": {"max_sentences": 5}}))
    cfg = load_config(p)
    assert cfg.epochs == 2 and cfg.interactions.max_sentences == 5
    assert cfg.interactions.max_words == RunConfig().interactions.max_words
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(p)
    p.write_text(json.dumps({"interactions": {"max_words": "many"}}))
    with pytest.raises(ConfigError, match="must be an integer"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.json")


def test_cli_config_file_round_trips(tmp_path, capsys):
    assert main(["config", "--preset", "thesis", "--set", "interactions.seed=5"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "thesis.json"
    path.write_text(text)
    assert main(["config", "--config", str(path)]) == 0
    assert capsys.readouterr().out == text
    assert main(["config", "--config", str(path), "--set", "interactions.max_sentence=1"]) == 2
    err = capsys.readouterr().err
    assert "jaxdyn: error:" in err and "did you mean 'interactions.max_sentences'" in err


def test_debug_flag_shows_the_traceback(capsys):
    with pytest.raises(ConfigError):
        main(["config", "--debug", "--set", "bogus=1"])


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only the user's errors become one-line messages; a ValueError from a bug propagates."""
    import jaxdyn.cli as cli

    def broken(args):
        raise ValueError("a bug")

    monkeypatch.setattr(cli, "_cmd_config", broken)
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    for action in parser._subparsers._group_actions[0].choices.values():
        if action.get_default("func").__name__ == "_cmd_config":
            action.set_defaults(func=broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["config"])


def test_study_epochs_and_seed_follow_the_run_unless_set():
    thesis = override(preset("thesis"), ["epochs=3", "seed=9"])
    assert thesis.interactions.epochs is None
    lm = study_run_config(
        thesis,
        model=thesis.interactions.model,
        data=thesis.interactions.data,
        optim=thesis.interactions.optim,
        epochs=thesis.interactions.epochs,
        seed=thesis.interactions.seed,
    )
    assert lm.epochs == 3 and lm.seed == 9 and lm.model == thesis.model
    smoke = preset("smoke")
    lm = study_run_config(
        smoke,
        model=smoke.interactions.model,
        data=smoke.interactions.data,
        optim=smoke.interactions.optim,
        epochs=smoke.interactions.epochs,
        seed=5,
    )
    assert lm.epochs == 2 and lm.seed == 5 and not lm.capture.enabled


def test_training_dict_leaves_study_sections_out():
    a = preset("smoke")
    b = override(a, ["interactions.max_sentences=3", "sparsity.min_count=9"])
    assert a.training_dict() == b.training_dict()
    assert "interactions" not in a.training_dict()
    assert override(a, ["model.hidden=9"]).training_dict() != a.training_dict()


def test_checkpoint_selection():
    assert select_epochs("all", [2, 0, 1]) == [0, 1, 2]
    assert select_epochs("last", [0, 1, 2]) == [2]
    assert select_epochs("2,0", [0, 1, 2]) == [0, 2]
    with pytest.raises(ValueError, match=r"no checkpoint for epochs \[7\]; available: \[0, 1, 2\]"):
        select_epochs("7", [0, 1, 2])
    with pytest.raises(ValueError, match="comma-separated epochs"):
        select_epochs("first", [0, 1])


def test_config_dataclasses_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("smoke").interactions.max_sentences = 1  # type: ignore[misc]
