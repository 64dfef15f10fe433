"""The model-agnostic studies on a Transformer run (toy sizes): sparsity, similarity,
training curves, populations, and the syntactic-attention stage."""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.config import (
    KIND_OPTIM,
    CaptureConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    override,
    preset,
)
from jaxdyn.models.transformer import lm_apply
from jaxdyn.studies.attention.compute import Parsed, attention_trajectory, parse_sentences
from jaxdyn.studies.attention.findings import onset
from jaxdyn.studies.attention.report import attention_report, attention_stage, ewt_parsed
from jaxdyn.studies.sparsity.compute import member_trajectories, modules_of, per_type_trajectory
from jaxdyn.studies.sparsity.findings import findings, frequency_correlations, member_statistics
from jaxdyn.train import lm_task, train
from jaxdyn.train.trajectory import iter_checkpoints

SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(200)]
MODEL = ModelConfig(kind="transformer", emb_dim=8, hidden=8, num_layers=2, heads=2, dropout=0.0)
CFG = RunConfig(
    model=MODEL,
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    optim=dataclasses.replace(KIND_OPTIM["transformer"], warmup_steps=5, lr=3e-3),
    capture=CaptureConfig(enabled=False),
    epochs=2,
)


def _data():
    return lm_task({"train": SENTS, "valid": SENTS[:30], "test": SENTS[:10]}, CFG.data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tfm")
    data = _data()
    train(CFG, work, data, progress=False)
    return work, data


def _te(x):
    x = np.asarray(x, np.float64)
    l1, l2 = np.abs(x).sum(-1), np.sqrt((x * x).sum(-1))
    return l1 / l2


def test_sparsity_traces_every_block_tensor_and_matches_a_direct_computation(run):
    work, data = run
    traj = per_type_trajectory(work, data.valid, progress=False)
    assert sorted(traj) == [0, 1, 2]
    mods = modules_of(traj)
    blocks = [f"block_{l}{s}" for l in range(2) for s in (".attn", ".mlp", "")]
    assert mods == ["embedding", *blocks, "logits"]
    ck = list(iter_checkpoints(work))[-1]
    sums, counts = {}, {}
    fwd = jax.jit(lambda p, x: lm_apply(p, x, heads=2, return_internals=True)[1])
    for k in range(data.valid.num_chunks(CFG.data.bptt)):
        b = data.valid.chunk(k, CFG.data.bptt)
        inner = fwd(ck.params, jnp.asarray(b["inputs"]))
        te = _te(inner["block_0"]["mlp"])
        for w, v in zip(b["inputs"].ravel(), te.ravel(), strict=True):
            sums[w] = sums.get(w, 0.0) + v
            counts[w] = counts.get(w, 0) + 1
    got = traj[2]["input"]["block_0.mlp"]["act"]["te"]
    for w, n in counts.items():
        assert int(got["count"][w]) == n
        np.testing.assert_allclose(float(got["mean"][w]), sums[w] / n, rtol=1e-4)
    assert "act_grad" in traj[2]["target"]["block_1.attn"]
    corrs = frequency_correlations(traj, data.vocab, min_count=1)
    f = findings([member_statistics(traj, corrs, {})], seeds=[CFG.seed])
    # verdicts are over the word representations: embedding and the residual streams
    assert set(f["f1"]["per_layer"]) == {"embedding", "block_0", "block_1"}


def test_training_lowers_the_loss_and_the_section_names_the_transformer(run, tmp_path):
    import csv

    from jaxdyn.studies.run import run_study

    work, data = run
    with open(work / "metrics" / "epochs.csv", newline="") as fh:
        valid = [float(r["valid_loss"]) for r in csv.DictReader(fh)]
    assert len(valid) == 3 and valid[2] < valid[1] < valid[0]  # Adam with warmup learns
    report = run_study(CFG, work, stages=["train"], progress=False, data=data)
    text = report.read_text()
    assert "Transformer (2 heads, d_ff 32, learned positions)" in text
    assert (work / "report" / "training_curves.png").stat().st_size > 1000


@pytest.mark.slow  # 27-52 s on 2 busy cores (load 8-10): a population of two trains
def test_population_of_transformers_and_sparsity_per_member(tmp_path):
    cfg = dataclasses.replace(CFG, seeds=2, epochs=1)
    data = _data()
    train(cfg, tmp_path, data, progress=False)
    p0 = [ck.params for ck in iter_checkpoints(tmp_path, member=0)][-1]
    p1 = [ck.params for ck in iter_checkpoints(tmp_path, member=1)][-1]
    assert not np.allclose(p0["block_0"]["attn"]["wq"], p1["block_0"]["attn"]["wq"])
    trajs = member_trajectories(tmp_path, data.valid, [0, 1], max_chunks=2, progress=False)
    assert sorted(trajs) == [0, 1]
    a = trajs[0][1]["input"]["block_1"]["act"]["te"]["mean"]
    b = trajs[1][1]["input"]["block_1"]["act"]["te"]["mean"]
    assert not np.allclose(a, b)


@pytest.mark.slow  # 60-110 s on 2 busy cores (load 8-10): an LM and a tagger train
def test_similarity_stage_runs_on_transformer_lm_and_taggers(tmp_path):
    import csv

    from jaxdyn.studies.similarity.report import similarity_stage
    from tests.test_study_similarity import TOY_CFG, toy_corpus

    cfg = dataclasses.replace(
        TOY_CFG,
        model=dataclasses.replace(MODEL, dropout=0.1),
        optim=KIND_OPTIM["transformer"],
        own_init=(),
        tasks=(("toy", ("pos",)),),
    )
    ctx = types.SimpleNamespace(cfg=RunConfig(), workdir=tmp_path, progress=False, data_dir=None)
    similarity_stage(ctx, cfg=cfg, corpora={"toy": toy_corpus()})
    with open(tmp_path / "similarity" / "toy" / "similarity.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["layer"] for r in rows} == {"embedding", "block_0", "block_1"}
    for r in rows:  # shared init at epoch 0: the tagger's body is the language model's
        if r["comparison"] == "lm-vs-tagger" and r["init"] == "shared" and r["epoch"] == "0":
            assert float(r["value"]) == pytest.approx(1, abs=1e-3)


def _toy_parsed(data) -> Parsed:
    words = [s[:4] for s in SENTS[:12]]
    heads = [[2, 0, 2, 3] for _ in words]  # w_a -> w_b (root) <- w_c <- the
    return parse_sentences(words, heads, data.vocab, CFG.data.bptt)


def test_parse_sentences_positions_and_context():
    data = _data()
    p = parse_sentences([["w1", "w2", "zzz"], ["w1"] * 9], [[2, 0, 2], [0] * 9], data.vocab, 7)
    assert p.skipped == 1 and p.inputs.shape == (1, 4)
    assert p.inputs[0, 0] == data.vocab.eos_id and p.unk == pytest.approx(1 / 3)
    np.testing.assert_array_equal(p.heads[0], [-1, 2, -1, 2])  # positions shift by <eos>
    assert p.arcs == 2
    with pytest.raises(ValueError, match="outside its sentence"):
        parse_sentences([["a", "b"]], [[3, 0]], data.vocab, 7)
    with pytest.raises(ValueError, match="no sentence fits"):
        parse_sentences([["a"] * 9], [[0] * 9], data.vocab, 7)


def test_attention_study_on_a_transformer_run(run):
    work, data = run
    parsed = _toy_parsed(data)
    traj = attention_trajectory(work, parsed, progress=False, batch=5)
    assert [r["epoch"] for r in traj] == [0, 1, 2]
    assert sorted(traj[0]["layers"]) == [0, 1] and traj[0]["layers"][0]["either"].shape == (2,)
    # the counts equal the kernel on the model's own attention probabilities
    from jaxdyn.analysis.attention import attachment_scores

    ck = list(iter_checkpoints(work))[-1]
    fwd = jax.jit(lambda p, x: lm_apply(p, x, heads=2, return_internals=True)[1]["block_1"])
    s = attachment_scores(
        fwd(ck.params, jnp.asarray(parsed.inputs))["probs"], parsed.heads, parsed.valid
    )
    np.testing.assert_allclose(traj[-1]["layers"][1]["either"] / parsed.arcs, s["either"])
    ctx = types.SimpleNamespace(
        cfg=CFG, workdir=work, progress=False, data_dir=None, task=lambda: data
    )
    f = attention_report(ctx, parsed)
    assert set(f["f1"]["per_layer"]) == {"layer 0", "layer 1"}
    text = next((work / "report" / "sections").glob("*-attention.md")).read_text()
    assert "## Syntactic attention structure" in text and "single-seed" in text
    assert (work / "report" / "attention_uas.png").stat().st_size > 1000
    assert (work / "attention" / "uas.csv").read_text().count("\n") == 1 + 3 * 2 * 2 * 3
    with pytest.raises(ValueError, match="--data-dir"):
        attention_stage(ctx)


def test_attention_stage_says_not_applicable_for_an_lstm(tmp_path):
    ctx = types.SimpleNamespace(cfg=preset("smoke"), workdir=tmp_path, progress=False)
    assert attention_stage(ctx) is None
    text = next((tmp_path / "report" / "sections").glob("*-attention.md")).read_text()
    assert "Not applicable" in text


@pytest.mark.slow  # trains an LSTM
def test_attention_trajectory_of_an_lstm_run_is_an_error(tmp_path):
    cfg = dataclasses.replace(CFG, model=ModelConfig(emb_dim=4, hidden=4), epochs=0)
    train(cfg, tmp_path, _data(), progress=False)
    with pytest.raises(ValueError, match="Transformer run"):
        attention_trajectory(tmp_path, None, progress=False)


def test_onset_rule():
    o = onset([0, 1, 2, 3, 4], [0.10, 0.11, 0.13, 0.30, 0.31], 0.05)
    assert (o["onset"], o["half"], o["steepest"]) == (3, 3, 3)
    assert o["gain"] == pytest.approx(0.21)
    o = onset([0, 1, 2, 3], [0.10, 0.17, 0.20, 0.20], 0.05)
    assert (o["onset"], o["half"], o["steepest"]) == (1, 1, 1)
    assert onset([0, 1], [0.1, 0.12], 0.05)["onset"] is None


def test_ewt_sentences_for_the_study(data_dir):
    data = _data()
    cfg = override(preset("smoke"), ["attention.num_sentences=20"]).attention
    p = ewt_parsed(data_dir, cfg, data.vocab, 35)
    assert p.inputs.shape[0] == 20 and p.arcs > 100
    assert (p.heads[p.valid] < p.valid.sum(1).max()).all()
