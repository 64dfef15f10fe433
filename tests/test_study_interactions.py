"""Tests of the syntax-interdependence study (jaxdyn.studies.interactions)."""

from __future__ import annotations

import csv
import dataclasses
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.config import DataConfig, ModelConfig
from jaxdyn.data.conllu import dependency_distance
from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.data.paths import CorpusNotFoundError
from jaxdyn.decompose.lstm.interdependence import all_pairs, interdependence
from jaxdyn.models.lstm import language_model
from jaxdyn.studies.interactions.compute import run_interactions
from jaxdyn.studies.interactions.config import InteractionsConfig
from jaxdyn.studies.interactions.findings import correlations, finding
from jaxdyn.studies.interactions.pairs import batch_di, make_batches, max_pairs, sentence_pairs
from tests.reference.study_di_old import old_batch_di

V, H = 25, 6


@pytest.fixture(scope="module")
def params():
    m = language_model(V, emb_dim=5, hidden=H, num_layers=2)
    p = m.init(jax.random.PRNGKey(3), jnp.zeros((1, 4), jnp.int32))["params"]
    return jax.tree_util.tree_map(lambda a: a * 2.0, p)


def _random_heads(rng, n):
    """A random single-rooted tree: word k > 0 attaches to an earlier word or the root word."""
    heads = [0] + [int(rng.integers(1, k + 1)) for k in range(1, n)]
    perm = rng.permutation(n)  # relabel positions so trees are not left-branching only
    inv = np.argsort(perm)
    return tuple(0 if heads[perm[i]] == 0 else int(inv[heads[perm[i]] - 1]) + 1 for i in range(n))


def test_sentence_pairs_enumerates_all_pairs_with_distances():
    heads = (2, 0, 2, 5, 3, 2)  # 0-based: 0->1, 1 root, 2->1, 3->4, 4->2, 5->1
    p = sentence_pairs(heads, 3)
    expected = [(i, j) for i in range(6) for j in range(i + 1, 6) if j - i <= 3]
    assert list(zip(p["i"].tolist(), p["j"].tolist())) == expected
    assert np.array_equal(p["seq_dist"], p["j"] - p["i"])
    d = dependency_distance(heads)
    assert np.array_equal(p["syn_dist"], d[p["i"], p["j"]])
    k = expected.index((0, 1))
    assert p["syn_dist"][k] == 1 and p["relation"][k] == 1  # head-dependent
    k = expected.index((1, 4))
    assert p["syn_dist"][k] == 2 and p["relation"][k] == 2  # ancestor
    k = expected.index((0, 2))
    assert p["syn_dist"][k] == 2 and p["relation"][k] == 0  # unconnected siblings
    for n in (1, 2, 5, 9):
        assert max_pairs(n, 3) == len(all_pairs(n, 3))


@pytest.mark.parametrize("width", [4, 8])
def test_padded_batches_match_unpadded_kernel(params, width):
    """Bucketed, padded, batched DI == the interdependence kernel on each bare sentence."""
    rng = np.random.default_rng(0)
    lens = [3, 7]
    ids = [rng.integers(0, V - 1, n).astype(np.int32) for n in lens]
    pair_sets = [sentence_pairs(_random_heads(rng, n), 4) for n in lens]
    eos = V - 1
    batches = make_batches(
        ids, pair_sets, eos_id=eos, max_seq_dist=4, bucket_width=width, hidden=H, batch_elems=2000
    )
    n_rows = sum(len(p["i"]) for p in pair_sets)
    got = {"hidden": np.full(n_rows, np.nan), "logits": np.full(n_rows, np.nan)}
    for b in batches:
        assert b.tokens.shape[1] % width == 0
        h, lg = batch_di(params, b)
        keep = b.rows >= 0
        got["hidden"][b.rows[keep]], got["logits"][b.rows[keep]] = h[keep], lg[keep]
        assert np.all(h[~keep] == 0)
    row = 0
    for s, p in zip(ids, pair_sets):
        toks = np.concatenate([[eos], s]).astype(np.int32)
        pairs = np.stack([p["i"] + 1, p["j"] + 1], axis=1)
        for space in ("hidden", "logits"):
            ref = interdependence(params, toks, pairs, pairs[:, 1], space=space)
            np.testing.assert_allclose(
                got[space][row : row + len(pairs)], ref, rtol=2e-4, atol=1e-6
            )
        row += len(pairs)
    assert np.all(np.isfinite(got["hidden"])) and got["hidden"].max() > 0


def test_same_bucket_shapes_do_not_retrace(params):
    from jaxdyn.decompose.lstm.di_packed import _di_packed_jit

    rng = np.random.default_rng(1)
    ids = [rng.integers(0, V, n).astype(np.int32) for n in (4, 5, 6)]
    pairs = [sentence_pairs(_random_heads(rng, len(s)), 3) for s in ids]
    b = make_batches(
        ids, pairs, eos_id=0, max_seq_dist=3, bucket_width=8, hidden=H, batch_elems=1 << 20
    )
    assert len(b) == 1
    batch_di(params, b[0])
    n = _di_packed_jit._cache_size()
    p2 = jax.tree_util.tree_map(lambda a: a * 0.5, params)
    batch_di(p2, b[0])  # the next checkpoint: same schedule, no new compile
    assert _di_packed_jit._cache_size() == n


def test_batch_di_equals_the_old_fixed_shape_path(params):
    """Old (study-local, fixed-shape) vs new (interdependence_batch, packed) DI, both
    spaces, on batches large enough for logit-space DI through the decoder factor."""
    rng = np.random.default_rng(7)
    lens = rng.integers(3, 19, 20)
    ids = [rng.integers(0, V - 1, n).astype(np.int32) for n in lens]
    pair_sets = [sentence_pairs(_random_heads(rng, int(n)), 5) for n in lens]
    batches = make_batches(
        ids, pair_sets, eos_id=V - 1, max_seq_dist=5, bucket_width=10, hidden=H, batch_elems=1 << 16
    )
    for b in batches:
        new, old = batch_di(params, b), old_batch_di(params, b)
        for space, n_, o_ in zip(("hidden", "logits"), new, old):
            np.testing.assert_allclose(n_, o_, rtol=1e-4, atol=1e-6, err_msg=space)
        assert np.all(new[0][b.rows < 0] == 0) and new[0].max() > 0


def _corr(rhos_by_epoch, member=0):
    return [
        {"member": member, "epoch": e, "seq_dist": d + 1, "rho": r, "p": 1e-15, "n": 10**5}
        for e, rhos in rhos_by_epoch.items()
        for d, r in enumerate(rhos)
    ]


def test_finding_rule():
    # issue 12's held-out treebank: trained vs untrained rho at sequential distance 1-5;
    # every untrained rho is "significant" at 10^5 pairs, yet only a margin beyond it counts
    trained = [-0.185, -0.270, -0.211, -0.168, -0.158]
    untrained = [-0.187, -0.118, -0.021, +0.013, +0.026]
    f = finding(_corr({0: untrained, 5: trained}), seeds=[1111], margin=0.05)
    assert f["verdict"] == "mixed (d=1 inconclusive, d=2 yes, d=3 yes, d=4 yes, d=5 yes)"
    v = f["per_distance"]["d=2"]
    assert v.n == 1 and v.lo is None and v.effect == pytest.approx(-0.152)
    # the untrained model on its own (as if it were the trained one) is not reproduced
    g = finding(_corr({0: [0.0] * 5, 5: untrained}), seeds=[1111], margin=0.05)
    assert g["per_distance"]["d=3"].label == "inconclusive"
    assert g["per_distance"]["d=1"].label == "reproduced"  # -0.187 is beyond the margin
    # two seeds: the second seed halves rho at distances 3-5; still beyond the margin there
    second = [-0.18, -0.25, -0.105, -0.084, -0.079]
    two = finding(_corr({0: untrained, 5: trained}) + _corr({0: untrained, 5: second}, 1),
                  seeds=[1111, 1112], margin=0.05)  # fmt: skip
    assert two["per_distance"]["d=2"].n == 2 and two["per_distance"]["d=2"].lo is not None
    assert two["per_distance"]["d=1"].label == "inconclusive"
    # judged over training: an epoch whose verdict differs is recorded
    h = finding(_corr({0: untrained, 1: untrained, 5: trained}), seeds=[1111], margin=0.05)
    assert h["by_epoch"]["d=3"] == {1: "inconclusive", 5: "reproduced"}
    assert finding([], seeds=[1], margin=0.05)["verdict"] == "inconclusive"
    cols = {
        "epoch": np.zeros(8, int),
        "seq_dist": np.ones(8, int),
        "syn_dist": np.arange(8),
        "di_hidden": -np.arange(8.0),
    }
    (r,) = correlations(cols, "di_hidden")
    assert r["rho"] == pytest.approx(-1.0) and r["n"] == 8


def _toy_corpus(n_sent, seed):
    rng = np.random.default_rng(seed)
    words = [f"w{k}" for k in range(30)]
    sents, heads = [], []
    for _ in range(n_sent):
        n = int(rng.integers(3, 12))
        sents.append([words[k] for k in rng.integers(0, 30, n)])
        heads.append(_random_heads(rng, n))
    return TaggedCorpus(sents, {}, heads)


TINY = InteractionsConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.2),
    data=DataConfig(corpus="ewt", lowercase=True),
    epochs=1,
    max_sentences=12,
    max_words=11,
    bucket_width=6,
    max_seq_dist=5,
)


def test_stage_end_to_end_on_toy_treebank(tmp_path):
    splits = {"train": _toy_corpus(300, 0), "valid": _toy_corpus(20, 1), "test": _toy_corpus(5, 2)}
    f = run_interactions(tmp_path, None, TINY, progress=False, corpus_splits=splits)
    assert f["final_epoch"] == 1 and f["sentences"] == 12
    with gzip.open(tmp_path / "interactions" / "di_pairs.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["epoch"] for r in rows} == {"0", "1"}
    assert len(rows) == 2 * f["pairs"]
    di = np.array([float(r["di_hidden"]) for r in rows] + [float(r["di_logits"]) for r in rows])
    assert np.all(np.isfinite(di)) and di.max() > 0
    assert {int(r["seq_dist"]) for r in rows} == {1, 2, 3, 4, 5}
    assert {r["relation"] for r in rows} <= {"head-dependent", "ancestor", "unconnected"}
    r0 = rows[0]
    sent = splits["valid"].sentences[int(r0["sentence"])]
    assert r0["word_i"] == sent[int(r0["i"])] and r0["word_j"] == sent[int(r0["j"])]
    rep = tmp_path / "report"
    for png in ("interactions_di_heatmap.png", "interactions_rho_over_epochs.png"):
        assert (rep / png).stat().st_size > 1000
    text = (rep / "sections" / "40-interactions.md").read_text()
    assert "## Interdependence and syntax" in text and "Spearman" in text
    # another treebank (interactions.eval_path), scored at the last checkpoint only
    conllu = tmp_path / "other.conllu"
    blocks = []
    for k in range(3):
        words, heads = splits["test"].sentences[k], splits["test"].heads[k]
        lines = [f"# sent_id = toy-{k}"]
        lines += [
            f"{i + 1}\t{w}\t{w}\tX\tX\t_\t{h}\tdep\t_\t_"
            for i, (w, h) in enumerate(zip(words, heads))
        ]
        blocks.append("\n".join(lines) + "\n")
    conllu.write_text("\n".join(blocks) + "\n")
    other = dataclasses.replace(TINY, eval_path=str(conllu), checkpoints="last")
    f2 = run_interactions(tmp_path / "o", None, other, progress=False, corpus_splits=splits)
    assert f2["sentences"] == 3 and f2["final_epoch"] == 1
    with gzip.open(tmp_path / "o" / "interactions" / "di_pairs.csv.gz", "rt") as fh:
        rows2 = list(csv.DictReader(fh))
    assert {r["epoch"] for r in rows2} == {"1"} and {r["split"] for r in rows2} == {"eval"}
    assert (
        str(conllu) in (tmp_path / "o" / "report" / "sections" / "40-interactions.md").read_text()
    )
    with pytest.raises(CorpusNotFoundError, match=r"interactions\.eval_path"):
        run_interactions(
            tmp_path / "o",
            None,
            dataclasses.replace(other, eval_path=str(tmp_path / "missing.conllu")),
            progress=False,
            corpus_splits=splits,
        )
    with pytest.raises(ValueError, match=r"no checkpoint for epochs \[7\]; available: \[0, 1\]"):
        run_interactions(
            tmp_path / "o",
            None,
            dataclasses.replace(TINY, checkpoints="7"),
            progress=False,
            corpus_splits=splits,
        )
    # a changed config cannot silently resume the trained LM
    with pytest.raises(ValueError, match="different config"):
        run_interactions(
            tmp_path,
            None,
            dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, hidden=9)),
            progress=False,
            corpus_splits=splits,
        )


def test_skipped_without_data_dir(tmp_path):
    assert run_interactions(tmp_path, None, TINY, progress=False) is None
    text = (tmp_path / "report" / "sections" / "40-interactions.md").read_text()
    assert "Skipped" in text and not (tmp_path / "interactions").exists()


def test_stages_registered():
    from jaxdyn.studies.run import STAGES

    names = list(STAGES)
    assert names.index("interactions") < names.index("bottom_up")
