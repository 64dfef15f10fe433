"""experiments/architectures.py: both kinds, same data and rules, one comparison table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jaxdyn.config import KIND_OPTIM, OptimConfig, preset

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location(
        "architectures", ROOT / "experiments" / "architectures.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kind_config_switches_both_models_and_their_optimizers():
    mod = _module()
    t = mod.kind_config(preset("smoke"), "transformer")
    assert t.model.kind == t.similarity.model.kind == "transformer"
    assert t.interactions.model.kind == t.bottom_up.model.kind == "transformer"
    assert t.optim == t.similarity.optim == KIND_OPTIM["transformer"]
    assert t.interactions.data.bptt >= t.interactions.max_words + 1
    lstm = mod.kind_config(preset("smoke"), "lstm")
    assert lstm == preset("smoke") and lstm.optim == OptimConfig()
    assert t.data == lstm.data and t.sparsity == lstm.sparsity and t.attention == lstm.attention


TINY = [
    "data.max_train_tokens=3000",
    "data.max_eval_tokens=1000",
    "data.max_vocab=400",
    "model.emb_dim=8",
    "model.hidden=8",
    "model.heads=2",
    "epochs=1",
    "sparsity.max_chunks=2",
    "attention.num_sentences=16",
]


@pytest.mark.slow  # ~1-2 min on 2 busy cores: two tiny runs, sparsity and attention on each
def test_architectures_end_to_end(data_dir, tmp_path):
    mod = _module()
    args = ["--preset", "smoke", "--no-progress", "--data-dir", str(data_dir)]
    args += ["--workdir", str(tmp_path), "--stages", "sparsity,attention"]
    for a in TINY:
        args += ["--set", a]
    assert mod.main(args) == 0
    text = (tmp_path / "comparison.md").read_text()
    assert "| model | parameters | best valid perplexity | optimizer |" in text
    assert "| lstm |" in text and "| transformer |" in text and "adam lr 0.001, warmup 100" in text
    rows = [r for r in text.splitlines() if r.startswith("| sparsity |")]
    assert len(rows) == 4 and all("lstm_0" in r and "block_0" in r for r in rows)
    att = [r for r in text.splitlines() if r.startswith("| attention |")]
    assert len(att) == 2 and all("n/a (not applicable)" in r.split("|")[3] for r in att)
