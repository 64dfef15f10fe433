"""Training maps (jaxdyn.studies.phases): HMM validation on synthetic trajectories, the
pieces of the map, and the stage on a tiny real run."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxdyn.config import (
    CaptureConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    ModelConfig,
    PhasesConfig,
    RunConfig,
    override,
)
from jaxdyn.studies.phases.findings import coincidence, family_change, metric_matrix
from jaxdyn.studies.phases.hmm import (
    change_points,
    characterise,
    fit_hmm,
    num_parameters,
    principal_components,
    select_states,
    standardise,
    transition_counts,
)


def _piecewise(rng, switches, t=30, d=4, sep=3.0):
    """S sequences of T points: Gaussian segments with state means ``sep`` sd apart."""
    k = len(switches[0]) + 1
    means = sep * np.eye(k, d) - sep * np.eye(k, d, 1)  # states >= 2 sep apart per axis
    x, truth = np.zeros((len(switches), t, d)), np.zeros((len(switches), t), int)
    for s, pts in enumerate(switches):
        for p in pts:
            truth[s, p:] += 1
        x[s] = means[truth[s]] + rng.normal(0, 1, (t, d))
    return x, truth


def test_synthetic_switch_points_recovered_and_bic_picks_true_states():
    rng = np.random.default_rng(0)
    switches = [(9, 20), (7, 18), (11, 23)]
    x, truth = _piecewise(rng, switches)
    z = standardise(x, [f"m{i}" for i in range(4)]).z
    best, fits = select_states(z, range(1, 5), key=jax.random.PRNGKey(0), restarts=2, em_iters=60)
    assert [f.num_states for f in fits] == [1, 2, 3, 4]
    assert best.num_states == 3, [(f.num_states, f.bic) for f in fits]
    found = change_points(best.states, range(z.shape[1]))
    for pts, true in zip(found, switches, strict=True):
        assert len(pts) == len(true)
        for (step, _, _), t in zip(pts, true, strict=True):
            assert abs(step - t) <= 1
    # states are numbered by first visit, so they match the truth's order here
    assert (best.states == truth).mean() > 0.9


def test_one_state_model_is_the_gaussian_mle():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(2, 10, 3)) * [1.0, 2.0, 0.5]
    f = fit_hmm(y, 1, key=jax.random.PRNGKey(0))
    flat = y.reshape(-1, 3)
    mu, var = flat.mean(0), flat.var(0)
    ll = sum(
        -0.5 * np.log(2 * np.pi * var[j]) - (v[j] - mu[j]) ** 2 / (2 * var[j])
        for v in flat
        for j in range(3)
    )
    np.testing.assert_allclose(f.loglik, ll, rtol=1e-10)
    np.testing.assert_allclose(f.bic, -2 * ll + num_parameters(1, 3, "diag") * np.log(20))
    assert (f.states == 0).all()


def test_standardise_pca_and_parameter_counts():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 3))
    x[..., 1] = 7.0  # constant: dropped
    st = standardise(x, ["a", "b", "c"])
    assert st.names == ["a", "c"] and st.dropped == ["b"]
    np.testing.assert_allclose(st.z.reshape(-1, 2).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(st.z.reshape(-1, 2).std(0), 1, atol=1e-12)
    y, ratio = principal_components(st.z, 1)
    assert y.shape == (2, 8, 1) and 0.5 <= ratio[0] <= 1
    # the first component's variance is the top eigenvalue of the covariance
    ev = np.linalg.eigvalsh(np.cov(st.z.reshape(-1, 2).T, bias=True))[-1]
    np.testing.assert_allclose(y.reshape(-1).var(), ev, rtol=1e-10)
    assert num_parameters(3, 2, "diag") == 2 + 6 + 6 + 6
    assert num_parameters(2, 3, "full") == 1 + 2 + 6 + 12
    with pytest.raises(ValueError, match="constant"):
        standardise(np.ones((1, 4, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="non-finite"):
        standardise(np.full((1, 4, 1), np.nan), ["a"])


def test_transitions_characterised_by_the_metric_that_moves():
    states = np.array([[0, 0, 1, 1, 2], [0, 1, 1, 1, 1]])
    z = np.zeros((2, 5, 3))
    z[..., 1] = np.where(states >= 1, 2.0, -1.0)  # moves on 0 -> 1
    z[..., 2] = np.where(states == 2, -3.0, 0.0)  # moves on 1 -> 2
    chars = characterise(z, ["a", "b", "c"], states, top=1)
    assert chars == {(0, 1): [("b", 3.0)], (1, 2): [("c", -3.0)]}
    assert transition_counts(states) == {(0, 1): 2, (1, 2): 1}
    assert change_points(states, [0, 1, 2, 4, 8]) == [[(2, 0, 1), (8, 1, 2)], [(1, 0, 1)]]


def _rows(seed, family, metric, values):
    return [
        {"seed": seed, "step": s, "family": family, "metric": metric, "value": v}
        for s, v in values.items()
    ]


def test_metric_matrix_and_coincidence_rule():
    rows = _rows(1, "te", "lstm_0/act/te", {0: 1.0, 1: 1.0, 2: 5.0, 3: 5.1})
    rows += _rows(1, "sim", "lstm_0/cka_prev", {1: 0.99, 2: 0.5, 3: 0.98})
    rows += _rows(1, "loss", "valid", {0: 3.0, 1: 2.0, 2: 1.5, 3: 1.4})
    mm = metric_matrix(rows, ("te", "loss"))
    assert mm.names == ["loss/valid", "te/lstm_0/act/te"] and mm.values.shape == (1, 4, 2)
    mm = metric_matrix(rows, ("te", "sim"))  # sim is absent at step 0: left out, named
    assert mm.names == ["te/lstm_0/act/te"] and mm.missing == ["sim/lstm_0/cka_prev"]
    te = coincidence({1: [(2, 0, 1)]}, family_change(rows, "te"), 0.75)
    sim = coincidence({1: [(2, 0, 1), (3, 1, 2)]}, family_change(rows, "sim", "cka_prev"), 0.75)
    assert te[0]["coincides"] and te[0]["rank"] == 1.0
    assert sim[0]["coincides"] and not sim[1]["coincides"]
    with pytest.raises(ValueError, match="no metrics"):
        metric_matrix(rows, ("grad",))


@pytest.mark.parametrize(
    "assignment",
    ["phases.max_states=0", "phases.hmm_families=weights,foo", "phases.covariance=tied"],
)
def test_bad_phases_keys(assignment):
    with pytest.raises(ConfigError, match="phases"):
        override(RunConfig(), [assignment])


SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(160)]
SPLITS = {"train": SENTS, "valid": SENTS[:60], "test": SENTS[40:80]}
CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=1, dropout=0.2),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    capture=CaptureConfig(every=5, reductions=("te",)),
    epochs=2,
    log_every=5,
    checkpoint=CheckpointConfig(schedule="log", every=8, log_until=8, kind="params"),
    phases=PhasesConfig(
        max_chunks=2, grad_chunks=1, sim_tokens=60, max_states=2, restarts=2, em_iters=30
    ),
)


@pytest.mark.slow  # trains a tiny run and compiles an HMM (~70 s on 2 loaded cores)
def test_phases_stage_on_a_real_run(tmp_path):
    import jax.numpy as jnp

    from jaxdyn.analysis.weight_metrics import tree_metrics
    from jaxdyn.studies.phases.compute import ALL_KINDS, read_rows
    from jaxdyn.studies.run import run_study
    from jaxdyn.train import lm_task
    from jaxdyn.train.loop import evaluate
    from jaxdyn.train.step import make_eval_step
    from jaxdyn.train.tasks import Stream
    from jaxdyn.train.trajectory import iter_checkpoints, run_model

    data = lm_task(SPLITS, CFG.data)
    report = run_study(CFG, tmp_path, stages=["phases"], progress=False, data=data)
    text = report.read_text()
    assert "## Training map: latent phases" in text and "phases_loss.png" in text
    rows = read_rows(tmp_path / "phases" / "metrics.csv")
    cks = list(iter_checkpoints(tmp_path, kinds=ALL_KINDS))
    steps = sorted({r["step"] for r in rows})
    assert steps == [c.step for c in cks] and len(steps) > 8  # the dense schedule, all kinds
    sim_steps = {r["step"] for r in rows if r["family"] == "sim"}
    assert sim_steps == set(steps[1:])  # similarity to the previous checkpoint
    assert all(0 <= r["value"] <= 1 + 1e-5 for r in rows if r["family"] == "sim")
    # independent checks at one checkpoint: weights and the held-out loss
    ck = cks[3]
    at = {(r["family"], r["metric"]): r["value"] for r in rows if r["step"] == ck.step}
    w = np.asarray(ck.params["decoder"]["weight"], np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(at[("weights", "decoder/weight/spectral")], s[0], rtol=1e-5)
    np.testing.assert_allclose(at[("weights", "decoder/weight/l1")], np.abs(w).sum(), rtol=1e-5)
    tm = jax.device_get(tree_metrics(ck.params))
    assert at[("weights", "encoder/weight/nuclear")] == pytest.approx(
        float(tm["encoder/weight"]["nuclear"]), rel=1e-6
    )
    _, model, _, _ = run_model(tmp_path)
    bptt = CFG.data.bptt
    part = Stream(data.valid.inputs[:, : 2 * bptt + 1], data.valid.labels[:, : 2 * bptt + 1])
    assert part.num_chunks(bptt) == 2  # phases.max_chunks
    ref = evaluate(make_eval_step(model), ck.params, part, bptt, model=model)
    np.testing.assert_allclose(at[("loss", "valid")], ref, rtol=1e-5)
    assert at[("grad", "global_l2")] > 0 and jnp.isfinite(at[("grad", "global_l2")])
    for name in ("bic.csv", "states.csv", "transitions.csv", "coincidence.csv"):
        assert (tmp_path / "phases" / name).exists()
    # the population: one sequence per member (seed)
    pop = dataclasses.replace(CFG, seeds=2, epochs=1)
    run_study(pop, tmp_path / "pop", stages=["phases"], progress=False, data=data)
    rows = read_rows(tmp_path / "pop" / "phases" / "metrics.csv")
    assert {r["seed"] for r in rows} == {CFG.seed, CFG.seed + 1}
