"""The sparsity study's per-type table equals a direct NumPy computation."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.config import CaptureConfig, DataConfig, ModelConfig, RunConfig
from jaxdyn.studies.sparsity.compute import per_type_trajectory, token_weighted_mean
from jaxdyn.studies.sparsity.findings import findings, frequency_correlations, member_statistics
from jaxdyn.train import lm_task, train
from jaxdyn.train.tasks import Stream
from jaxdyn.train.trajectory import iter_checkpoints, run_model

SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(300)]
CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.0),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    capture=CaptureConfig(enabled=False),
    epochs=2,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("sp")
    data = lm_task({"train": SENTS, "valid": SENTS[:40], "test": SENTS[:10]}, CFG.data)
    train(CFG, work, data, progress=False)
    return work, data


def _te(x):
    x = np.asarray(x, np.float64)
    l1, l2 = np.abs(x).sum(-1), np.sqrt((x * x).sum(-1))
    return np.where(l2 > 0, l1 / np.where(l2 > 0, l2, 1), 0)


def test_per_type_means_match_direct_computation(run):
    work, data = run
    traj = per_type_trajectory(work, data.valid, progress=False)
    assert sorted(traj) == [0, 1, 2]
    _, model, _, _ = run_model(work)
    ck = list(iter_checkpoints(work))[-1]
    stream, bptt = data.valid, CFG.data.bptt
    carry = None
    sums, counts = {}, {}
    for k in range(stream.num_chunks(bptt)):
        b = stream.chunk(k, bptt)
        _, carry, acts = model.apply(
            {"params": ck.params}, jnp.asarray(b["inputs"]), carry, return_acts=True
        )
        te = _te(acts["lstm_1"]["h"])
        for w, v in zip(b["targets"].ravel(), te.ravel()):
            sums[w] = sums.get(w, 0.0) + v
            counts[w] = counts.get(w, 0) + 1
    got = traj[2]["target"]["lstm_1"]["act"]["te"]
    for w, n in counts.items():
        assert int(got["count"][w]) == n
        np.testing.assert_allclose(float(got["mean"][w]), sums[w] / n, rtol=1e-5)
    total = sum(sums.values()) / sum(counts.values())
    np.testing.assert_allclose(
        token_weighted_mean(traj, 2, "target", "lstm_1", "act", "te"), total, rtol=1e-5
    )


def test_findings_are_computed_from_the_table(run):
    work, data = run
    traj = per_type_trajectory(work, data.valid, progress=False)
    corr = frequency_correlations(traj, data.vocab, min_count=1)
    f = findings([member_statistics(traj, corr, {})], seeds=[CFG.seed])
    assert set(f["f1"]["per_layer"]) == {"embedding", "lstm_0", "lstm_1"}
    assert f["f3"]["verdict"] == "skipped"  # no POS classes given
    assert len(f["f4"]["te"]["lstm_0"]) == 3 and f["base_epoch"] == 0
    rho = {r["module"]: r["rho"] for r in corr if r["epoch"] == 2 and r["keying"] == "input"
           and r["direction"] == "act"}  # fmt: skip
    v = f["f1"]["per_layer"]["lstm_1"]
    assert v.n == 1 and v.lo is None and v.mean == pytest.approx(rho["lstm_1"])


def test_out_of_vocabulary_ids_reported_once_per_position(run):
    work, data = run
    inputs = np.array(data.valid.inputs)
    inputs[0, 2] = len(data.vocab) + 3  # one bad input id; the targets stay valid
    bad = Stream(inputs, np.array(data.valid.labels), data.valid.target)
    with pytest.raises(ValueError, match="1 input and 0 target positions"):
        per_type_trajectory(work, bad, max_chunks=1, progress=False)


def _member(rho_in, rho_t_act, rho_t_grad, fc, te):
    """One seed's statistics: epochs 0-2, layers lstm_0/lstm_1 (constructed numbers)."""
    rho = {}
    for m in ("lstm_0", "lstm_1"):
        rho[("input", m, "act")] = dict(enumerate(rho_in[m]))
        rho[("target", m, "act")] = dict(enumerate(rho_t_act[m]))
        rho[("target", m, "act_grad")] = dict(enumerate(rho_t_grad[m]))
    # fc: {layer: {epoch: diff}}, or (last, epoch 0) with epoch 1 equal to the last
    fc = {m: v if isinstance(v, dict) else {0: v[1], 1: v[0], 2: v[0]} for m, v in fc.items()}
    return {"epochs": [0, 1, 2], "rho": rho, "fc": fc, "te": te}


def test_findings_across_seeds_name_the_layers_that_disagree():
    seeds = [1, 2, 3]
    members = []
    for k in range(3):
        j = 0.01 * k  # small seed-to-seed variation
        members.append(
            _member(
                # lstm_0 concentrates (rho falls well below its untrained value); lstm_1 has the
                # opposite sign at the end, and lstm_0 is the other way round at epoch 1
                {"lstm_0": [0.0, 0.3 + j, -0.4 - j], "lstm_1": [0.0, 0.0, 0.3 + j]},
                {"lstm_0": [0.0, 0.2, 0.3 + j], "lstm_1": [0.0, 0.2, 0.3 + j]},
                {"lstm_0": [0.0, -0.2, -0.3 - j], "lstm_1": [0.0, -0.01, -0.02 + j]},
                {"lstm_0": (-0.5 - j, 0.0), "lstm_1": (-0.01 - j, 0.0)},
                {"lstm_0": [3.0, 2.5, 2.0 + j], "lstm_1": [3.0, 3.0, 3.0 - j]},
            )
        )
    f = findings(members, seeds=seeds, rho_margin=0.05, te_margin=0.05, drop_margin=0.02)
    assert f["f1"]["verdict"] == "mixed (lstm_0 yes, lstm_1 no)"
    assert f["f1"]["by_epoch"]["lstm_0"] == {1: "contradicted", 2: "reproduced"}
    v = f["f1"]["per_layer"]["lstm_0"]
    assert v.n == 3 and v.lo < v.mean < v.hi and v.baseline == 0.0
    np.testing.assert_allclose(v.mean, np.mean([-0.4, -0.41, -0.42]))
    # finding 2: lstm_0 has both halves; lstm_1's gradients stay within the margin
    assert f["f2"]["verdict"] == "mixed (lstm_0 yes, lstm_1 inconclusive)"
    assert f["f3"]["verdict"] == "mixed (lstm_0 yes, lstm_1 inconclusive)"
    assert f["f4"]["verdict"] == "mixed (lstm_0 yes, lstm_1 inconclusive)"
    assert f["f4"]["half_drop_epoch"]["lstm_0"] == [1, 1, 1]
    assert f["f4"]["half_drop_epoch"]["lstm_1"] == [None, 2, 2]  # never: no drop for seed 1
    # one seed: no interval, the seed decides (single-seed)
    one = findings(members[:1], seeds=[1])
    assert one["f1"]["per_layer"]["lstm_0"].lo is None
    assert one["f1"]["per_layer"]["lstm_0"].label == "reproduced"
    with pytest.raises(ValueError, match="different epochs"):
        findings([members[0], {**members[1], "epochs": [0, 2]}], seeds=[1, 2])


def test_finding_2_is_judged_at_every_trained_epoch():
    from jaxdyn.studies.sparsity.report import _f2_text

    members = [
        _member(
            {"lstm_0": [0.0, -0.3, -0.3], "lstm_1": [0.0, -0.3, -0.3]},
            # lstm_0: target activations dispersed at the end but concentrated at epoch 1
            {"lstm_0": [0.0, -0.2 - j, 0.3 + j], "lstm_1": [0.0, 0.2, 0.3 + j]},
            {"lstm_0": [0.0, -0.2, -0.3 - j], "lstm_1": [0.0, -0.2 - j, -0.3]},
            {"lstm_0": (-0.5, 0.0), "lstm_1": (-0.5, 0.0)},
            {"lstm_0": [3.0, 2.5, 2.0], "lstm_1": [3.0, 2.5, 2.0]},
        )
        for j in (0.0, 0.01, 0.02)
    ]
    f = findings(members, seeds=[1, 2, 3])
    assert f["f2"]["verdict"] == "reproduced"
    assert f["f2"]["by_epoch"] == {
        "lstm_0": {1: "contradicted", 2: "reproduced"},
        "lstm_1": {1: "reproduced", 2: "reproduced"},
    }
    text = _f2_text(f["f2"])
    assert (
        "lstm_0: activations" in text
        and "(both halves over training: contradicted at epoch 1)" in text
    )
    assert text.count("over training") == 1  # lstm_1 agrees at every epoch


def test_finding_3_is_judged_at_every_trained_epoch():
    from jaxdyn.studies.sparsity.report import _f3_text

    flat = {"lstm_0": [0.0, -0.3, -0.3], "lstm_1": [0.0, -0.3, -0.3]}
    members = [
        _member(
            flat,
            flat,
            flat,
            # lstm_0: function words' gradients more concentrated at the end, not at epoch 1
            {"lstm_0": {0: 0.0, 1: 0.2 + j, 2: -0.5 - j}, "lstm_1": {0: 0.0, 1: -0.4, 2: -0.5 + j}},
            {"lstm_0": [3.0, 2.5, 2.0], "lstm_1": [3.0, 2.5, 2.0]},
        )
        for j in (0.0, 0.01, 0.02)
    ]
    f = findings(members, seeds=[1, 2, 3])
    assert f["f3"]["verdict"] == "reproduced"
    assert f["f3"]["by_epoch"] == {
        "lstm_0": {1: "contradicted", 2: "reproduced"},
        "lstm_1": {1: "reproduced", 2: "reproduced"},
    }
    text = _f3_text(f["f3"])
    assert "lstm_0 reproduced" in text and "(over training: contradicted at epoch 1)" in text
    assert text.count("over training") == 1
    # without gold POS the finding is skipped, not decided
    f = findings([{**m, "fc": {}} for m in members], seeds=[1, 2, 3])
    assert f["f3"]["verdict"] == "skipped" and "skipped" in _f3_text(f["f3"])
