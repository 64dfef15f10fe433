"""Tests of the synthetic bottom-up study (jaxdyn.studies.bottom_up)."""

from __future__ import annotations

import copy
import csv
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.config import ModelConfig
from jaxdyn.data.synthetic import CLOSE, OPEN, BracketConfig, generate_brackets
from jaxdyn.decompose.lstm.cd import cd_batch
from jaxdyn.models.lstm import language_model, lm_apply
from jaxdyn.studies.bottom_up.compute import bracket_task, closing_measures, run_bottom_up
from jaxdyn.studies.bottom_up.config import MEASURES, BottomUpConfig
from jaxdyn.studies.bottom_up.findings import across_seeds, findings, half_rise_epoch, summarise
from tests.reference.study_di_old import old_closing_measures

L = 3
DATA = generate_brackets(
    BracketConfig(
        vocab_size=16,
        num_tokens=3000,
        rule_length=L,
        num_rules=100,
        bank_size=5,
        familiar_repeats=4,
        num_eval=7,
        eval_length=10,
        seed=3,
    )
)


@pytest.fixture(scope="module")
def params():
    m = language_model(18, emb_dim=6, hidden=5, num_layers=2)
    p = m.init(jax.random.PRNGKey(0), jnp.zeros((1, 4), jnp.int32))["params"]
    return jax.tree_util.tree_map(lambda a: a * 3.0, p)


def test_bracket_task_streams():
    task = bracket_task(DATA, batch_size=4)
    assert len(task.vocab) == 18 and task.vocab.itos[:2] == ("(", ")")
    assert task.train.inputs.shape == (4, 750)
    np.testing.assert_array_equal(task.train.inputs.reshape(-1), DATA.tokens)
    np.testing.assert_array_equal(task.valid.inputs.reshape(-1), DATA.eval_familiar.reshape(-1))
    np.testing.assert_array_equal(task.test.inputs.reshape(-1), DATA.eval_fresh.reshape(-1))


@pytest.mark.parametrize("which", ["eval_familiar", "eval_fresh"])
def test_closing_measures_consistent_with_forward_and_cd(params, which):
    seqs, op = getattr(DATA, which), DATA.eval_open
    n = len(seqs)
    got = closing_measures(params, seqs, op, L)
    t = op + L
    assert np.all(seqs[np.arange(n), t + 1] == CLOSE) and np.all(seqs[np.arange(n), op] == OPEN)
    # full model == the plain forward pass of the model
    logits, _ = lm_apply(params, jnp.asarray(seqs))
    lp = np.asarray(jax.nn.log_softmax(logits, -1))[np.arange(n), t, CLOSE]
    np.testing.assert_allclose(got["full_logp"], lp, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got["correct"], (np.exp(lp) > 0.5).astype(float))
    # CD pieces == the full CD kernel (beta logits through the softmax, bias apart)
    pos = np.arange(seqs.shape[1])
    m_open = pos[None] == op[:, None]
    m_cond = (pos[None] > op[:, None]) & (pos[None] <= t[:, None])
    masks = np.stack([m_open, m_cond, m_open | m_cond], axis=1)
    cd = cd_batch(params, seqs, masks)
    beta = np.asarray(cd.beta_logits)[np.arange(n), :, t]  # (n, 3, V)
    ref = np.asarray(jax.nn.log_softmax(beta, -1))[..., CLOSE]
    for k, key in enumerate(("cd_open", "cd_conduit", "cd_both")):
        np.testing.assert_allclose(got[key], ref[:, k], rtol=1e-4, atol=1e-5)
    # beta + gamma + bias == the forward logits, at the measured position
    full = (
        beta[:, 2]
        + np.asarray(cd.gamma_logits)[np.arange(n), 2, t]
        + np.asarray(cd.bias_logits)[:, 2]
    )
    np.testing.assert_allclose(full, np.asarray(logits)[np.arange(n), t], rtol=1e-4, atol=1e-4)
    bh = np.asarray(cd.beta_h)[np.arange(n), :, -1, t]  # top layer, (n, 3, H)
    di = np.linalg.norm(bh[:, 2] - bh[:, 0] - bh[:, 1], axis=-1) / np.linalg.norm(bh[:, 2], axis=-1)
    np.testing.assert_allclose(got["di_hidden"], di, rtol=1e-3, atol=1e-5)
    dl = np.linalg.norm(beta[:, 2] - beta[:, 0] - beta[:, 1], axis=-1) / np.linalg.norm(
        beta[:, 2], axis=-1
    )
    np.testing.assert_allclose(got["di_logits"], dl, rtol=1e-3, atol=1e-5)
    # chunked (last call padded) == one call
    chunked = closing_measures(params, seqs, op, L, chunk=3)
    for k in got:
        np.testing.assert_allclose(chunked[k], got[k], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rule_length", [1, L])
def test_closing_measures_equal_the_old_path(params, rule_length):
    """Old (span_beta + own ratio + second forward pass) vs new (interdependence_batch
    with span pairs, parts and the forward logits): equal to float32 rounding."""
    data = DATA if rule_length == L else generate_brackets(
        BracketConfig(
            vocab_size=16, num_tokens=2000, rule_length=rule_length, num_rules=50,
            bank_size=5, familiar_repeats=4, num_eval=9, eval_length=8, seed=5,
        )
    )  # fmt: skip
    for seqs in (data.eval_familiar, data.eval_fresh):
        new = closing_measures(params, seqs, data.eval_open, rule_length)
        old = old_closing_measures(params, seqs, data.eval_open, rule_length)
        assert set(new) == set(MEASURES)
        for k in MEASURES:
            np.testing.assert_allclose(new[k], old[k], rtol=1e-5, atol=2e-6, err_msg=k)
        assert new["di_hidden"].max() > 1e-3


def test_closing_measures_rejects_misplaced_close(params):
    with pytest.raises(ValueError, match="open_pos"):
        closing_measures(params, DATA.eval_familiar, DATA.eval_open, L + 1)


def test_half_rise_epoch():
    ep = np.arange(5)
    assert half_rise_epoch(ep, np.array([0.0, 0.1, 0.3, 0.6, 0.5]), 0.1) == 2
    assert half_rise_epoch(ep, np.array([0.2, 0.2, 0.25, 0.2, 0.2]), 0.1) is None
    # a non-finite value is no evidence of learning (was: "learned at epoch 0")
    assert half_rise_epoch(ep, np.array([0.0, np.nan, 0.3, 0.6, 0.5]), 0.1) is None


def _condition(acc_fam, acc_fre, di, rule_length, repeats):
    epochs = {}
    for e, (a, b, d) in enumerate(zip(acc_fam, acc_fre, di)):
        sets = {}
        for s, acc in (("familiar", a), ("fresh", b)):
            m = {k: np.full(3, -1.0) for k in MEASURES}
            m["correct"], m["di_hidden"] = np.full(3, acc), np.full(3, d)
            sets[s] = m
        epochs[e] = sets
    return {"rule_length": rule_length, "familiar_repeats": repeats, "epochs": epochs}


def test_findings_tied_vote_and_nan_are_inconclusive():
    cfg = BottomUpConfig(rule_lengths=(2, 4))
    up, low = [0.1, 0.2, 0.3], [0.1, 0.1, 0.1]
    res = {  # L2: higher DI with the larger gap (for (b)); L4: higher DI, smaller gap (against)
        "L2-unfamiliar": _condition([0, 0.5, 0.9], [0, 0.3, 0.5], low, 2, 0),
        "L2-familiar": _condition([0, 0.5, 0.9], [0, 0.3, 0.3], up, 2, 5),
        "L4-unfamiliar": _condition([0, 0.5, 0.9], [0, 0.3, 0.3], low, 4, 0),
        "L4-familiar": _condition([0, 0.5, 0.9], [0, 0.3, 0.5], up, 4, 5),
    }
    f = findings(res, summarise(res), cfg)
    assert (f["b_detail"]["L2"]["ok"], f["b_detail"]["L4"]["ok"]) == (True, False)
    # one for, one against: named per rule length, not voted away (one seed decides alone)
    one = across_seeds([f], [7], cfg)
    assert one["b"]["verdict"] == "mixed (L2 yes, L4 no)"
    assert one["b"]["per_rule_length"]["L2"].n == 1 and one["b"]["per_rule_length"]["L2"].lo is None
    two = across_seeds([f, f], [7, 8], cfg)["b"]["per_rule_length"]
    assert (two["L2"].label, two["L4"].label) == ("reproduced", "contradicted")
    flipped = copy.deepcopy(f)  # a second seed where L2's gaps are the other way round
    d = flipped["b_detail"]["L2"]
    d["gap_familiar_cond"], d["gap_unfamiliar_cond"] = (
        d["gap_unfamiliar_cond"],
        d["gap_familiar_cond"],
    )
    assert across_seeds([f, flipped], [7, 8], cfg)["b"]["per_rule_length"]["L2"].label == (
        "inconclusive"
    )
    res.pop("L4-familiar"), res.pop("L4-unfamiliar")
    assert across_seeds([findings(res, summarise(res), cfg)], [7], cfg)["b"]["verdict"] == (
        "reproduced"
    )
    nan = [0.1, np.nan, np.nan]
    res["L2-familiar"] = _condition([0, np.nan, np.nan], [0, 0.3, 0.3], nan, 2, 5)
    f = findings(res, summarise(res), cfg)
    assert f["b_detail"]["L2"]["ok"] is None and f["a_detail"]["L2-familiar"]["ok"] is None


TINY = BottomUpConfig(
    rule_lengths=(2,),
    familiar_repeats=5,
    vocab_size=12,
    num_tokens=3000,
    num_rules=150,
    bank_size=5,
    num_eval=12,
    eval_length=8,
    model=ModelConfig(emb_dim=6, hidden=6, num_layers=2, dropout=0.0),
    epochs=1,
)


def test_stage_end_to_end_tiny(tmp_path):
    f = run_bottom_up(tmp_path, TINY, progress=False)
    one = f["per_seed"][0]
    assert set(one["a_detail"]) == {"L2-unfamiliar", "L2-familiar"} and "L2" in one["b_detail"]
    assert f["seeds"] == [TINY.seed + 1111]
    labels = ("reproduced", "contradicted", "inconclusive")
    assert f["a"]["verdict"] in labels or f["a"]["verdict"].startswith("mixed (")
    with gzip.open(tmp_path / "bottom_up" / "closing.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2 * 12  # conditions x epochs x sets x sequences
    vals = np.array(
        [[float(r[k]) for k in ("full_logp", "cd_open", "cd_both", "di_hidden")] for r in rows]
    )
    assert np.all(np.isfinite(vals)) and np.all(vals[:, :3] <= 0)
    assert (tmp_path / "bottom_up" / "summary.csv").stat().st_size > 100
    for png in ("bottom_up_accuracy.png", "bottom_up_logp.png", "bottom_up_di.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
    text = (tmp_path / "report" / "sections" / "50-bottom_up.md").read_text()
    assert "## Bottom-up learning" in text and "(b) high interdependence" in text
    assert "single-seed" in text and "no interval across seeds is available" in text
    assert "None" not in text and "nan" not in text.replace("nats", "")


def test_closing_measures_of_a_transformer_use_cd_t():
    """model.kind=transformer: the measures come from CD-T (jaxdyn.decompose.engine) and
    the full-model log p from the Transformer's own forward pass."""
    from jaxdyn.decompose.transformer.cd import cd_batch as cdt_batch
    from jaxdyn.models import transformer as tfm

    seqs, op = DATA.eval_fresh, DATA.eval_open
    n, S = seqs.shape
    model = tfm.language_model(16, d_model=8, num_layers=1, heads=2, d_ff=16, context=S)
    p = model.init(jax.random.PRNGKey(1), jnp.zeros((1, S), jnp.int32))["params"]
    cfg = ModelConfig(kind="transformer", emb_dim=8, hidden=8, num_layers=1, heads=2, d_ff=16)
    got = closing_measures(p, seqs, op, L, model=cfg)
    t = op + L
    logits = tfm.lm_apply(p, jnp.asarray(seqs), heads=2)
    lp = np.asarray(jax.nn.log_softmax(logits, -1))[np.arange(n), t, CLOSE]
    np.testing.assert_allclose(got["full_logp"], lp, rtol=1e-5, atol=1e-5)
    pos = np.arange(S)
    both = (pos[None] >= op[:, None]) & (pos[None] <= t[:, None])
    cd = cdt_batch(p, jnp.asarray(seqs), jnp.asarray(both[:, None]), heads=2)
    beta = np.asarray(cd.beta_logits)[np.arange(n), 0, t]
    ref = np.asarray(jax.nn.log_softmax(beta, -1))[:, CLOSE]
    np.testing.assert_allclose(got["cd_both"], ref, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(got["di_hidden"])) and np.all(got["di_hidden"] >= 0)
