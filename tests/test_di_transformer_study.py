"""The syntax-interdependence study on a Transformer language model (CD-T's DI)."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from jaxdyn.config import ConfigError, DataConfig, ModelConfig, OptimConfig
from jaxdyn.decompose import transformer as cdt
from jaxdyn.studies.interactions.compute import batch_kernel, run_interactions
from jaxdyn.studies.interactions.config import InteractionsConfig
from jaxdyn.studies.interactions.pairs import batch_di
from jaxdyn.train.trajectory import iter_checkpoints, run_model
from tests.test_study_interactions import _toy_corpus

TINY_TFM = InteractionsConfig(
    model=ModelConfig(kind="transformer", emb_dim=8, hidden=8, num_layers=2, heads=2, dropout=0.1),
    data=DataConfig(corpus="ewt", lowercase=True, bptt=12),  # context 12 = 11 words + <eos>
    optim=OptimConfig(name="adam", lr=1e-3, clip=1.0),
    epochs=1,
    max_sentences=6,
    max_words=11,
    bucket_width=5,  # buckets up to 15 > 12: the padding beyond the context is cut
    max_seq_dist=4,
)


@pytest.mark.slow  # ~12 s: the stage end to end; CD-T DI itself is tested in test_di_transformer.py
def test_interactions_stage_on_a_transformer(tmp_path):
    splits = {"train": _toy_corpus(80, 0), "valid": _toy_corpus(20, 1), "test": _toy_corpus(5, 2)}
    f = run_interactions(tmp_path, None, TINY_TFM, progress=False, corpus_splits=splits)
    assert f["final_epoch"] == 1 and f["sentences"] == 6
    with gzip.open(tmp_path / "interactions" / "di_pairs.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["epoch"] for r in rows} == {"0", "1"} and len(rows) == 2 * f["pairs"]
    di = np.array([float(r["di_hidden"]) for r in rows] + [float(r["di_logits"]) for r in rows])
    assert np.all(np.isfinite(di)) and di.max() > 0
    # the table's values are the CD-T kernel's on the bare sentence at that checkpoint
    lm = tmp_path / "interactions" / "lm"
    _, model, vocab, _ = run_model(lm)
    assert batch_kernel("lstm", model) is batch_di
    last = list(iter_checkpoints(lm))[-1]
    k = int(rows[-1]["sentence"])
    mine = [r for r in rows if r["epoch"] == str(last.epoch) and int(r["sentence"]) == k]
    words = splits["valid"].sentences[k]
    tokens = np.array([vocab.eos_id, *vocab.encode(words)], np.int32)
    pairs = np.array([[int(r["i"]) + 1, int(r["j"]) + 1] for r in mine], np.int32)
    got = cdt.interdependence(
        last.params, tokens, pairs, pairs[:, 1], heads=model.heads, space=("hidden", "logits")
    )
    np.testing.assert_allclose([float(r["di_hidden"]) for r in mine], got["hidden"], atol=1e-6)
    np.testing.assert_allclose([float(r["di_logits"]) for r in mine], got["logits"], atol=1e-6)


def test_sentences_longer_than_the_context_fail_clearly(tmp_path):
    import dataclasses

    short = dataclasses.replace(TINY_TFM, data=dataclasses.replace(TINY_TFM.data, bptt=6))
    splits = {"train": _toy_corpus(40, 0), "valid": _toy_corpus(20, 1), "test": _toy_corpus(5, 2)}
    with pytest.raises(ConfigError, match=r"context of 6 \(interactions\.data\.bptt\)"):
        run_interactions(tmp_path, None, short, progress=False, corpus_splits=splits)
    assert not (tmp_path / "interactions" / "lm").exists()  # before training
