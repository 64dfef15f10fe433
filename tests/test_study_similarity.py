"""The similarity study: aligned activations, paired kernels, probes, the stage end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.analysis.cka import linear_cka
from jaxdyn.analysis.similarity import pwcca, svcca
from jaxdyn.config import DataConfig, ModelConfig, RunConfig, preset
from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.models.lstm import lstm_layer_scan
from jaxdyn.studies.similarity import runs as sim
from jaxdyn.studies.similarity.compute import comparison_pairs, listed_similarity
from jaxdyn.studies.similarity.config import SimilarityConfig
from jaxdyn.studies.similarity.findings import stabilisation_epoch
from jaxdyn.studies.similarity.probes import majority_accuracy, probe_accuracy, row_split
from jaxdyn.studies.similarity.report import similarity_stage
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.trajectory import iter_checkpoints, run_model

GENRES = {
    "news": ["market", "bank", "vote", "law"],
    "fiction": ["dragon", "night", "sword", "king"],
}
FUNCTION = {"the": "DT", "a": "DT", "of": "IN", "in": "IN", "was": "VB", "saw": "VB"}


def _toy_split(n_sents: int, seed: int) -> TaggedCorpus:
    """Genre-sorted toy text: genre-specific nouns, shared function words, POS = word class."""
    rng = np.random.default_rng(seed)
    sents, pos, genre = [], [], []
    for g, nouns in GENRES.items():
        for _ in range(n_sents // 2):
            words = []
            for _ in range(rng.integers(2, 4)):
                words += [str(rng.choice(["the", "a"])), str(rng.choice(nouns))]
                words += [str(rng.choice(["was", "saw", "of", "in"]))]
            sents.append(words)
            pos.append([FUNCTION.get(w, "NN") for w in words])
            genre.append([g] * len(words))
    return TaggedCorpus(sents, {"pos": pos, "genre": genre})


def toy_corpus() -> dict[str, TaggedCorpus]:
    return {"train": _toy_split(300, 0), "valid": _toy_split(60, 1), "test": _toy_split(20, 2)}


TOY_CFG = SimilarityConfig(
    corpora=("toy",),
    tasks=(("toy", ("pos", "genre")),),
    own_init=("pos",),
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.2),
    data=DataConfig(
        lowercase=True,
        max_vocab=None,
        max_train_tokens=20 * 101,  # stream lengths that are whole multiples of bptt: one
        max_eval_tokens=10 * 51,  # chunk shape per stream, so fewer compilations
        bptt=25,
    ),
    epochs=1,
    heldout_tokens=300,
    span_tokens=40,
    probe_hidden=8,
    probe_steps=20,
)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def toy_stage(tmp_path_factory):
    """The stage with two seeds (the run's ``seeds``: ``similarity.seeds`` is None)."""
    wd = tmp_path_factory.mktemp("sim")
    ctx = types.SimpleNamespace(cfg=RunConfig(seeds=2), workdir=wd, progress=False, data_dir=None)
    findings = similarity_stage(ctx, cfg=TOY_CFG, corpora={"toy": toy_corpus()})
    return wd, findings


def test_interleave_topics_keeps_every_sentence_and_mixes_genres():
    split = _toy_split(40, 0)
    out = sim.interleave_topics(split, "genre", 30)
    assert sorted(map(tuple, out.sentences)) == sorted(map(tuple, split.sentences))
    firsts = [t[0] for t in out.tags["genre"]]
    assert set(firsts[: len(firsts) // 4]) == {"news", "fiction"}  # the prefix covers both genres
    for s, p in zip(out.sentences, out.tags["pos"]):
        assert p == [FUNCTION.get(w, "NN") for w in s]  # tags follow their sentences


def test_activations_aligned_and_equal_to_the_analysis_step(toy_stage):
    wd, _ = toy_stage
    root = wd / "similarity" / "toy"
    cfg, model, vocab, _ = run_model(root / "lm")
    splits = sim.prepare_corpus(toy_corpus(), TOY_CFG)
    from jaxdyn.train.tasks import lm_task_from_tagged, tagger_task

    lm = lm_task_from_tagged(splits, cfg.data)
    tags = {t: tagger_task(splits, t, cfg.data, lm.vocab) for t in ("pos", "genre")}
    for t in tags.values():  # identical inputs for the language model and every tagger
        np.testing.assert_array_equal(t.valid.inputs, lm.valid.inputs)
    tokens = sim.heldout_tokens(lm.valid, TOY_CFG.heldout_tokens)
    b, t = tokens.shape
    epochs, acts = sim.collect_activations(root / "lm", tokens)
    assert epochs == [0, 1]
    assert set(acts) == {"embedding", "lstm_0", "lstm_1"}
    for a in acts.values():
        assert a.shape == (2, b * t, 8)
    _, acts_tag = sim.collect_activations(root / "pos-shared", tokens)
    np.testing.assert_array_equal(acts_tag["lstm_1"][0], acts["lstm_1"][0])  # shared init
    assert not np.allclose(acts_tag["lstm_1"][1], acts["lstm_1"][1])
    # the pure forward pass equals the library's traced evaluation step (carry threaded)
    spec = CaptureSpec(keep_full=True, act_grads=False, gates=False, modules=("embedding", "lstm"))
    analyse = make_analysis_step(model, spec)
    params = list(iter_checkpoints(root / "lm"))[-1].params
    carry = tuple((jnp.zeros((b, 8)), jnp.zeros((b, 8))) for _ in range(2))
    got = {k: [] for k in acts}
    for k in range(math.ceil(t / cfg.data.bptt)):
        s = k * cfg.data.bptt
        batch = {"inputs": jnp.asarray(tokens[:, s : s + cfg.data.bptt])}
        batch["targets"] = batch["inputs"]
        _, trace, carry = analyse(params, carry, batch)
        for name in got:
            got[name].append(np.asarray(trace["act"][name]))
    for name in got:
        full = np.concatenate(got[name], axis=1).reshape(-1, 8)
        np.testing.assert_allclose(full, acts[name][-1], rtol=1e-5, atol=1e-6)
    # and equals a plain layer-by-layer forward pass of the parameters
    x = params["encoder"]["weight"][jnp.asarray(tokens)]
    np.testing.assert_allclose(acts["embedding"][-1], np.asarray(x).reshape(-1, 8), atol=1e-7)
    for l in range(2):
        z = jnp.zeros((b, 8))
        x = lstm_layer_scan(params["rnn"][f"l{l}"], x, (z, z))[0]["h"]
        np.testing.assert_allclose(
            acts[f"lstm_{l}"][-1], np.asarray(x).reshape(-1, 8), rtol=1e-5, atol=1e-6
        )
    y, mask = sim.heldout_labels(
        tags["pos"].valid, TOY_CFG.heldout_tokens, tags["pos"].out_vocab.eos_id
    )
    words = [vocab.itos[i] for i in tokens.reshape(-1)]
    for w, lab, m in zip(words, y, mask):  # current-position tags line up with the inputs
        assert m == (w != vocab.eos)
        if m:
            assert tags["pos"].out_vocab.itos[lab] == FUNCTION.get(w, "NN")


def test_listed_similarity_matches_the_kernels():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 120, 6)).astype(np.float32)
    m[1] = m[0] @ rng.normal(size=(6, 6)).astype(np.float32) + 0.3 * m[1]
    left, right = np.array([0, 1, 2, 1, 0]), np.array([1, 0, 1, 1, 2])
    index = np.stack([left, right], axis=1)
    refs = {
        "svcca": lambda a, b: svcca(a, b, 0.99),
        "pwcca": lambda a, b: pwcca(a, b),
        "cka": lambda a, b: linear_cka(a, b),
    }
    for metric, f in refs.items():
        got = listed_similarity(m, index, metric, keep=0.99, method="svd", chunk=2)
        want = [float(f(m[a], m[b])) for a, b in zip(left, right)]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        listed_similarity(m, np.array([[0, 3]]), "svcca", keep=0.99, method="svd", chunk=2)
    with pytest.raises(ValueError, match="metric"):
        listed_similarity(m, np.array([[0, 1]]), "nope", keep=0.99, method="svd", chunk=2)


def test_comparison_pairs_cover_the_design():
    runs = [
        sim.RunSpec("lm", "lm", "-", None),
        sim.RunSpec("a-shared", "a", "shared", None),
        sim.RunSpec("b-shared", "b", "shared", None),
        sim.RunSpec("a-own", "a", "own", None),
    ]
    pairs = comparison_pairs(runs, [0, 1, 2])
    kinds = {}
    for p in pairs:
        kinds.setdefault(p["comparison"], []).append(p)
    assert len(kinds["lm-vs-tagger"]) == 3 * 3
    assert len(kinds["vs-own-final"]) == 4 * 3
    assert [(p["task"], p["other"]) for p in kinds["tagger-vs-tagger"]] == [("a", "b")] * 3
    p = next(p for p in kinds["lm-vs-tagger"] if p["task"] == "b" and p["epoch"] == 1)
    assert (p["a"], p["b"]) == (1, 2 * 3 + 1)
    assert all(p["b"] % 3 == 2 for p in kinds["vs-own-final"])


def test_probe_learns_separable_labels_and_not_random_ones():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 6)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)).astype(np.int32)
    y_rand = rng.integers(0, 4, size=800).astype(np.int32)
    sel = row_split(8, 100, 0.7)
    mask = np.ones(800, bool)
    _, acc = probe_accuracy(x[None], y, mask, sel, classes=4, hidden=16, steps=200)
    assert acc[0] > 0.9
    _, acc_r = probe_accuracy(x[None], y_rand, mask, sel, classes=4, hidden=16, steps=200)
    assert abs(acc_r[0] - 0.25) < 0.1
    assert abs(majority_accuracy(y_rand, mask, sel) - 0.25) < 0.1
    with pytest.raises(ValueError, match="labels"):
        probe_accuracy(x[None], y + 4, mask, sel, classes=4)


def test_stabilisation_epoch():
    assert stabilisation_epoch({0: 0.2, 1: 0.95, 2: 0.8, 3: 0.93, 4: 1.0}, 0.9) == 3
    assert stabilisation_epoch({0: 0.95, 1: 0.99, 2: 1.0}, 0.9) == 0
    assert stabilisation_epoch({0: 0.1, 1: 1.0}, 0.9) == 1


def test_stage_end_to_end_on_toy_corpus(toy_stage):
    wd, findings = toy_stage
    rows = _read(wd / "similarity" / "toy" / "similarity.csv")
    assert {r["comparison"] for r in rows} == {"lm-vs-tagger", "vs-own-final", "tagger-vs-tagger"}
    assert {r["metric"] for r in rows} == {"svcca", "pwcca", "cka"}
    assert {r["layer"] for r in rows} == {"embedding", "lstm_0", "lstm_1"}
    vals = np.array([float(r["value"]) for r in rows])
    assert np.all(np.isfinite(vals)) and vals.min() >= -1e-4 and vals.max() <= 1 + 1e-4
    for r in rows:  # trivial identities: a model against itself, shared init at epoch 0
        if r["comparison"] == "vs-own-final" and r["epoch"] == "1":
            assert float(r["value"]) == pytest.approx(1, abs=1e-3)
        if r["comparison"] == "lm-vs-tagger" and r["init"] == "shared" and r["epoch"] == "0":
            assert float(r["value"]) == pytest.approx(1, abs=1e-3)
    assert {(r["member"], r["seed"]) for r in rows} == {("0", "1111"), ("1", "1112")}
    probes = _read(wd / "similarity" / "toy" / "probes.csv")
    assert len(probes) == 2 * 3 * 2 * 2  # tasks x layers x checkpoints x seeds
    assert all(0 <= float(p["test_acc"]) <= 1 for p in probes)
    text = (wd / "report" / "sections" / "30-similarity.md").read_text()
    assert "| 1. part of speech stabilises before topic" in text
    assert "**inconclusive**" in text  # one epoch cannot show stabilisation order
    assert "single-seed" not in text and "2 seeds per corpus (1111, 1112)" in text
    rules = text.count("reproduced if ") + text.count("no part could be measured: inconclusive")
    assert rules >= 4  # a rule next to every finding's verdict
    for name in ("lm_vs_tagger", "stability", "cross_task", "probes"):
        assert (wd / "report" / f"similarity_toy_{name}.png").stat().st_size > 1000
    assert json.loads((wd / "similarity" / "findings.json").read_text())["seeds"] == [1111, 1112]
    assert findings["f1"]["ok"] is None and findings["seeds"] == [1111, 1112]
    v = findings["f2"]["per_part"]["lstm_0"]  # decided across both seeds, with their numbers
    assert v.n == 2 and v.seeds_used == (1111, 1112) and len(v.effects) == 2
    meta = json.loads((wd / "report" / "sections" / "30-similarity.json").read_text())
    assert [r["seeds"] for r in meta["summary"]] == [2, 2, 2, 2]
    from jaxdyn.report.results import single_seed_rows, verdict_rows

    sim_rows = [r for r in verdict_rows(wd) if r.startswith("| similarity |")]
    assert sim_rows and all(r.rstrip(" |").endswith("| 2") for r in sim_rows)
    assert any("| 2. recurrent more tagger-like | lstm_0 |" in r for r in sim_rows)
    assert single_seed_rows(wd) == []


def test_stage_skips_without_data_dir(tmp_path):
    ctx = types.SimpleNamespace(
        cfg=preset("smoke"), workdir=tmp_path, progress=False, data_dir=None
    )
    assert similarity_stage(ctx) == {}
    text = next((tmp_path / "report").rglob("*similarity*.md")).read_text()
    assert "Skipped" in text and "--data-dir" in text and "JAXDYN_DATA_DIR" in text


def test_bad_section_values_are_errors():
    with pytest.raises(ValueError, match=r"similarity\.cca_method"):
        SimilarityConfig(cca_method="qr")


def _rows(series: dict, comparison: str, task: str, init: str, other: str, layer: str):
    return [
        dict(
            corpus="c",
            comparison=comparison,
            task=task,
            init=init,
            other=other,
            layer=layer,
            metric="svcca",
            epoch=e,
            value=v,
        )
        for e, v in series.items()
    ]


def test_findings_verdicts_follow_the_numbers():
    from jaxdyn.studies.similarity import findings as fnd

    def f2(emb, rec):
        rows = _rows({0: 0.5, 3: 0.5 + emb}, "lm-vs-tagger", "pos", "own", "lm", "embedding")
        rows += _rows({0: 0.5, 3: 0.5 + rec}, "lm-vs-tagger", "pos", "own", "lm", "lstm_0")
        return fnd.finding_recurrent_vs_embedding(fnd.index(rows), 0.01)["ok"]

    assert f2(-0.2, +0.2) is True
    assert f2(+0.2, +0.2) is False
    assert f2(-0.2, -0.2) is False
    assert f2(-0.005, +0.2) is None  # within the tolerance: no evidence either way

    def f3(d):
        rows = _rows(
            {0: 1.0, 1: 0.9, 3: 0.9 + d}, "tagger-vs-tagger", "pos", "shared", "genre", "embedding"
        )
        return fnd.finding_task_specific_embeddings(fnd.index(rows), 0.01)["ok"]

    assert (f3(-0.1), f3(+0.1), f3(0.0)) == (True, False, None)

    def f1(pos, topic):
        rows = _rows(pos, "vs-own-final", "pos", "own", "final", "lstm_0")
        rows += _rows(topic, "vs-own-final", "genre", "own", "final", "lstm_0")
        return fnd.finding_pos_before_topic(fnd.index(rows), TOY_CFG.__class__(pos_tasks=("pos",)))[
            "ok"
        ]

    early, late = {0: 0.3, 1: 0.95, 2: 0.97, 3: 1.0}, {0: 0.3, 1: 0.5, 2: 0.95, 3: 1.0}
    assert f1(early, late) is True
    assert f1(late, early) is False
    assert f1(early, early) is None
    assert f1(early, {**late, 2: float("nan")}) is None  # NaN is no evidence, not "never stable"


@pytest.mark.slow  # ~110 s on 2 busy cores (four training runs on EWT)
def test_smoke_preset_on_real_ewt(data_dir, tmp_path):
    ctx = types.SimpleNamespace(
        cfg=preset("smoke"), workdir=tmp_path, progress=False, data_dir=data_dir
    )
    findings = similarity_stage(ctx)
    rows = _read(tmp_path / "similarity" / "ewt" / "similarity.csv")
    assert len(rows) == 3 * 3 * (3 * 3 + 4 * 3 + 1 * 3)  # layers x metrics x comparisons
    assert all(math.isfinite(float(r["value"])) for r in rows)
    probes = _read(tmp_path / "similarity" / "ewt" / "probes.csv")
    xpos = [p for p in probes if p["task"] == "xpos" and p["epoch"] == "2"]
    assert min(float(p["test_acc"]) for p in xpos) > float(
        xpos[0]["majority"]
    )  # trained LM activations beat the baseline
    assert set(findings) == {"f1", "f1_probe", "f2", "f3", "seeds", "per_seed"}
    assert len(findings["seeds"]) == 1  # the smoke preset's seeds = 1: one seed, as before


def test_corpus_without_tasks_fails_before_training(tmp_path):
    ctx = types.SimpleNamespace(cfg=RunConfig(), workdir=tmp_path, progress=False, data_dir=None)
    with pytest.raises(ValueError, match="no tasks configured for corpus 'other'"):
        similarity_stage(ctx, cfg=TOY_CFG, corpora={"other": toy_corpus()})
    assert not (tmp_path / "similarity" / "other" / "lm").exists()  # no model trained in vain


def test_each_seed_trains_its_own_models_in_its_own_folders(toy_stage):
    from jaxdyn.train.loop import optimizer_for
    from jaxdyn.train.state import init_train_state

    wd, _ = toy_stage
    root = wd / "similarity" / "toy"
    for m, folder in enumerate((root, root / "member-1")):
        seed = 1111 + m
        seeds = {r: json.loads((folder / r / "config.json").read_text())["seed"]
                 for r in ("lm", "pos-shared", "genre-shared", "pos-own")}  # fmt: skip
        # shared taggers keep the member's seed (dropout); own-init: seed + 101 k (pos: k = 1)
        assert seeds == {
            "lm": seed,
            "pos-shared": seed,
            "genre-shared": seed,
            "pos-own": seed + 101,
        }
        assert not (folder / "genre-own").exists()  # own_init=("pos",)
    assert not (root / "member-1" / "member-1").exists()
    # member 1's language model is a seeds=1 run with seed 1112: its epoch-0 parameters are
    # that seed's initialisation, and they differ from member 0's
    cfg, model, _, _ = run_model(root / "member-1" / "lm")
    assert cfg.seed == 1112 and cfg.seeds == 1
    init = lambda folder: next(iter_checkpoints(folder, kinds=("init",))).params  # noqa: E731
    b = cfg.data.batch_size
    want = init_train_state(model, optimizer_for(cfg.optim), 1112, b).params
    got = init(root / "member-1" / "lm")
    for x, y in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(
        got["rnn"]["l0"]["weight_ih"], init(root / "lm")["rnn"]["l0"]["weight_ih"]
    )
    # member 1's shared taggers start from member 1's language model (all but the decoder)
    tag = init(root / "member-1" / "pos-shared")
    np.testing.assert_array_equal(tag["rnn"]["l0"]["weight_ih"], got["rnn"]["l0"]["weight_ih"])
    np.testing.assert_array_equal(tag["encoder"]["weight"], got["encoder"]["weight"])


def test_one_seed_reuses_seed_0s_runs_and_is_single_seed(toy_stage, tmp_path):
    wd, _ = toy_stage
    shutil.copytree(wd / "similarity", tmp_path / "similarity")
    before = sorted(
        p.name for p in (tmp_path / "similarity" / "toy" / "lm" / "manifests").iterdir()
    )
    ctx = types.SimpleNamespace(cfg=RunConfig(), workdir=tmp_path, progress=False, data_dir=None)
    findings = similarity_stage(ctx, cfg=TOY_CFG, corpora={"toy": toy_corpus()})
    after = sorted(p.name for p in (tmp_path / "similarity" / "toy" / "lm" / "manifests").iterdir())
    assert before == after  # seed 0's runs are the single-seed study's: nothing retrained
    assert findings["seeds"] == [1111]
    rows = _read(tmp_path / "similarity" / "toy" / "similarity.csv")
    assert {r["member"] for r in rows} == {"0"}
    both = _read(wd / "similarity" / "toy" / "similarity.csv")
    first = {(r["comparison"], r["task"], r["init"], r["layer"], r["epoch"], r["metric"]):
             r["value"] for r in both if r["member"] == "0"}  # fmt: skip
    assert first == {(r["comparison"], r["task"], r["init"], r["layer"], r["epoch"], r["metric"]):
                     r["value"] for r in rows}  # fmt: skip
    text = (tmp_path / "report" / "sections" / "30-similarity.md").read_text()
    assert "single-seed" in text and "one seed (1111)" in text


def _seed_rows(emb, rec, pair, order):
    """One seed's rows: LM-vs-own-tagger SVCCA changes (embedding, lstm_0), the change of a
    shared-init task pair's embedding SVCCA after epoch 1, and POS-vs-topic stability."""
    rows = _rows({0: 0.5, 3: 0.5 + emb}, "lm-vs-tagger", "pos", "own", "lm", "embedding")
    rows += _rows({0: 0.5, 3: 0.5 + rec}, "lm-vs-tagger", "pos", "own", "lm", "lstm_0")
    rows += _rows({0: 1.0, 1: 0.9, 3: 0.9 + pair}, "tagger-vs-tagger", "pos", "shared", "genre",
                  "embedding")  # fmt: skip
    early, late = {0: 0.3, 1: 0.95, 2: 0.97, 3: 1.0}, {0: 0.3, 1: 0.5, 2: 0.95, 3: 1.0}
    pos, topic = (early, late) if order > 0 else (late, early) if order < 0 else (early, early)
    rows += _rows(pos, "vs-own-final", "pos", "own", "final", "lstm_0")
    rows += _rows(topic, "vs-own-final", "genre", "own", "final", "lstm_0")
    return rows


def test_findings_across_seeds_on_constructed_numbers():
    from jaxdyn.studies.similarity import findings as fnd

    cfg = SimilarityConfig(pos_tasks=("pos",), min_effect=0.01)

    def decide(*seeds_rows):
        idxs = [fnd.index(r) for r in seeds_rows]
        return fnd.across_seeds(idxs, [[] for _ in idxs], (7, 8)[: len(idxs)], cfg)

    # two seeds agreeing (closely enough for the 95% t-interval of 2 seeds to clear the margin)
    agree = decide(_seed_rows(-0.2, +0.2, -0.1, +1), _seed_rows(-0.19, +0.21, -0.11, +1))
    assert agree["f2"]["verdict"] == "reproduced"
    assert agree["f3"]["verdict"] == "reproduced" and agree["f1"]["verdict"] == "reproduced"
    v = agree["f2"]["per_part"]["embedding"]
    assert v.seeds_used == (7, 8) and v.effects == pytest.approx((-0.2, -0.19))
    assert v.baseline == pytest.approx(0.5)  # the same seeds' epoch-0 (untrained) values
    assert "t-interval across 2 seeds" in v.rule and "last epoch - epoch 0" in v.rule
    assert agree["f3"]["per_part"]["pos vs genre"].baseline == pytest.approx(0.9)  # epoch 1
    assert agree["f1"]["per_part"]["lstm_0"].baseline == 0.0  # shared baseline: said in the rule
    assert "shared baseline 0" in agree["f1"]["per_part"]["lstm_0"].rule
    both_no = decide(_seed_rows(+0.2, -0.2, +0.1, -1), _seed_rows(+0.21, -0.19, +0.11, -1))
    assert [both_no[k]["verdict"] for k in ("f1", "f2", "f3")] == ["contradicted"] * 3
    split = decide(_seed_rows(-0.2, +0.2, -0.1, +1), _seed_rows(+0.2, -0.2, +0.1, -1))
    assert [split[k]["verdict"] for k in ("f1", "f2", "f3")] == ["inconclusive"] * 3
    half = decide(_seed_rows(-0.2, +0.2, -0.1, +1), _seed_rows(-0.2, +0.2, -0.1, 0))
    assert half["f1"]["verdict"] == "inconclusive"  # one seed's cells tie: not reproduced
    tiny = decide(_seed_rows(-0.005, +0.2, -0.1, +1), _seed_rows(-0.004, +0.2, -0.1, +1))
    assert tiny["f2"]["per_part"]["embedding"].label == "inconclusive"  # within the margin
    assert tiny["f2"]["verdict"] == "mixed (embedding inconclusive, lstm_0 yes)"
    # a part missing in one seed: that seed is failed for the part, never averaged away
    gone = [r for r in _seed_rows(-0.2, +0.2, -0.1, +1) if r["layer"] != "lstm_0"]
    miss = decide(_seed_rows(-0.2, +0.2, -0.1, +1), gone)
    assert miss["f2"]["per_part"]["lstm_0"].failed == (8,)
    # one seed: the single-seed rule (the seed decides alone), as before seeds existed
    one = decide(_seed_rows(-0.2, +0.2, -0.1, +1))
    assert [one[k]["verdict"] for k in ("f1", "f2", "f3")] == ["reproduced"] * 3

    # probe view: POS probe first in seed 7; in seed 8 the POS probe never learns (no order:
    # 0, not a failed seed), so the two seeds do not agree
    def probes(pos, genre):
        return [{"corpus": "c", "task": t, "layer": "lstm_0", "epoch": e, "test_acc": acc[e]}
                for t, acc in (("pos", pos), ("genre", genre)) for e in range(4)]  # fmt: skip

    fast, slow, flat = [0.1, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.5], [0.1, 0.1, 0.1, 0.1]
    idx = [fnd.index(_seed_rows(-0.2, +0.2, -0.1, +1))] * 2
    pv = fnd.across_seeds(idx, [probes(fast, slow), probes(fast, slow)], (7, 8), cfg)
    assert pv["f1_probe"]["verdict"] == "reproduced"
    pv = fnd.across_seeds(idx, [probes(fast, slow), probes(flat, slow)], (7, 8), cfg)
    v = pv["f1_probe"]["per_part"]["lstm_0"]
    assert v.label == "inconclusive" and v.failed == () and v.effects == (1.0, 0.0)
    with pytest.raises(ValueError, match="2 seeds but 1"):
        fnd.across_seeds([fnd.index(gone)], [[]], (7, 8), cfg)


def test_figures_over_seeds_have_named_bands(tmp_path, figures):
    from jaxdyn.report import check_figure
    from jaxdyn.studies.similarity import findings as fnd
    from jaxdyn.studies.similarity import plots

    kept = figures
    idxs = [fnd.index(_seed_rows(-0.2, +0.2, -0.1, +1)), fnd.index(_seed_rows(-0.1, 0.3, 0, 0))]
    plots.plot_series(tmp_path / "a.png", idxs, "c", "lm-vs-tagger", ("svcca",), "c: LM")
    probes = [
        {"member": m, "corpus": "c", "task": t, "layer": lay, "epoch": e,
         "test_acc": 0.3 + 0.1 * e + 0.05 * m, "majority": 0.2}
        for m in (0, 1) for t in ("pos", "genre") for lay in ("embedding", "lstm_0")
        for e in (0, 1, 2)
    ]  # fmt: skip
    plots.plot_probes(tmp_path / "b.png", probes, "c")
    for fig in kept:
        assert check_figure(fig) == []
        assert "mean of 2 seeds, band: 95% t-interval across seeds" in fig._suptitle.get_text()
        assert any(c.get_paths() for ax in fig.axes for c in ax.collections)  # the bands
    texts = [t.get_text() for t in kept[0].legends[0].get_texts()]
    assert "shaded: 95% t-interval across seeds (2 seeds)" in texts
