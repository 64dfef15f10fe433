"""Populations (issue 12): P members as one vmapped state equal P separate runs."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyn.config import ConfigError, RunConfig, override
from jaxdyn.models import language_model
from jaxdyn.train import (
    init_train_state,
    iter_checkpoints,
    lm_task,
    make_optimizer,
    make_train_step,
    set_learning_rate,
    train,
)
from jaxdyn.train.population import (
    finite_members,
    init_population,
    learning_rates,
    make_population_step,
    member_seeds,
    population_size,
    take_member,
)
from tests.test_checkpoint import CFG, SPLITS

V, E, H, B, T = 30, 8, 6, 4, 5
ATOL = 2e-6  # float32: vmapped (batched) GEMMs may round differently from single ones


def _close(a, b, atol=ATOL):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)


def _equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _setup(dropout=0.3):
    model = language_model(V, emb_dim=E, hidden=H, num_layers=2, dropout=dropout)
    tx = make_optimizer("sgd", lr=1.0, clip=0.25)
    rng = np.random.default_rng(0)
    batches = [
        {
            "inputs": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
            "targets": jnp.asarray(rng.integers(0, V, (B, T)), jnp.int32),
        }
        for _ in range(4)
    ]
    return model, tx, batches


def test_population_step_equals_separate_runs():
    model, tx, batches = _setup()
    seeds = member_seeds(7, 3)
    assert seeds == [7, 8, 9]
    pop = init_population(model, tx, seeds, B)
    singles = [init_train_state(model, tx, s, B) for s in seeds]
    for m in range(3):  # initialisation is the single runs' exactly
        _equal(take_member(pop, m), singles[m])
    step, one = make_population_step(model, tx), make_train_step(model, tx)
    for b in batches:
        pop, metrics, trace = step(pop, b)
        outs = [one(s, b) for s in singles]
        singles = [o[0] for o in outs]
    assert trace is None and population_size(pop.params) == 3
    assert metrics["loss"].shape == (3,) and metrics["lr"].shape == (3,)
    for m in range(3):
        _close(take_member(pop, m), singles[m])
        np.testing.assert_allclose(float(metrics["loss"][m]), float(outs[m][1]["loss"]), atol=ATOL)
    _equal(pop.step, np.asarray([4, 4, 4]))
    _equal(pop.rng, jnp.stack([s.rng for s in singles]))  # per-member keys, untouched
    # per-member dropout: different seeds give different updates from the same batch
    assert not np.allclose(np.asarray(metrics["loss"][0]), np.asarray(metrics["loss"][1]))
    assert step._cache_size() == 1


def test_unrolled_population_step_is_the_single_step_bit_for_bit():
    model, tx, batches = _setup()
    seeds = [3, 4]
    pop = init_population(model, tx, seeds, B)
    singles = [init_train_state(model, tx, s, B) for s in seeds]
    step, one = make_population_step(model, tx, unroll=True), make_train_step(model, tx)
    for b in batches[:2]:
        pop, metrics, _ = step(pop, b)
        singles = [one(s, b)[0] for s in singles]
    assert metrics["loss"].shape == (2,)
    for m in range(2):
        _equal(take_member(pop, m), singles[m])
    with pytest.raises(ValueError, match="cannot be sharded"):
        make_population_step(model, tx, unroll=True, mesh=object())


def test_per_member_learning_rate_and_per_member_batches():
    model, tx, batches = _setup(dropout=0.0)
    pop = init_population(model, tx, [0, 1], B)
    np.testing.assert_array_equal(learning_rates(pop.opt_state), [1.0, 1.0])
    pop = pop._replace(opt_state=set_learning_rate(pop.opt_state, jnp.asarray([0.0, 0.5])))
    step = make_population_step(model, tx, per_member_batch=True)
    both = jax.tree.map(lambda a, b: jnp.stack([a, b]), batches[0], batches[1])
    new, metrics, _ = step(pop, both)
    np.testing.assert_array_equal(np.asarray(metrics["lr"]), [0.0, 0.5])
    _equal(take_member(new, 0).params, take_member(pop, 0).params)  # lr 0: no move
    one = make_train_step(model, tx)
    ref, _, _ = one(take_member(pop, 1), batches[1])
    _close(take_member(new, 1).params, ref.params)


def test_a_failing_member_is_reported_by_index_and_others_are_unaffected():
    model, tx, batches = _setup(dropout=0.0)
    pop = init_population(model, tx, [0, 1, 2], B)
    bad = jax.tree.map(lambda x: x, pop.params)
    bad["decoder"]["bias"] = bad["decoder"]["bias"].at[1].set(jnp.nan)
    pop = pop._replace(params=bad)
    new, metrics, _ = make_population_step(model, tx)(pop, batches[0])
    np.testing.assert_array_equal(finite_members(metrics["loss"]), [True, False, True])
    ref, _, _ = make_train_step(model, tx)(take_member(pop, 2), batches[0])
    _close(take_member(new, 2).params, ref.params)
    with pytest.raises(IndexError, match="member 3 is outside the population of 3"):
        take_member(new, 3)


def test_seeds_config_key_and_cli_flag():
    cfg = override(RunConfig(), ["seeds=3"])
    assert cfg.seeds == 3 and "seeds" in cfg.training_dict() and RunConfig().seeds == 1
    with pytest.raises((ConfigError, ValueError), match="seeds"):
        override(RunConfig(), ["seeds=0"])
    from jaxdyn.cli import build_parser, config_from_args

    for cmd in ("run", "train"):
        args = build_parser().parse_args([cmd, "--preset", "smoke", "--seeds", "4"])
        assert config_from_args(args)[0].seeds == 4


# small and gentle (lr 2): float32 rounding differences between batched and single
# GEMMs are amplified by training, so the comparison runs few steps (2 x 26)
POP_CFG = dataclasses.replace(CFG, seeds=2, epochs=2, optim=dataclasses.replace(CFG.optim, lr=2.0))
SMALL = {"train": SPLITS["train"][:150], "valid": SPLITS["valid"][:20], "test": SPLITS["test"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 2-member population and the two separate runs with its members' seeds."""
    root = tmp_path_factory.mktemp("pop")
    data = lm_task(SMALL, CFG.data)
    pop = train(POP_CFG, root / "pop", data, progress=False, mesh=None)
    singles = [
        train(dataclasses.replace(POP_CFG, seeds=1, seed=s), root / f"s{s}", data, progress=False)
        for s in member_seeds(POP_CFG.seed, 2)
    ]
    return root, data, pop, singles


def test_population_run_equals_separate_runs(runs):
    root, _, pop, singles = runs
    assert pop.finished and pop.seeds == [POP_CFG.seed, POP_CFG.seed + 1]
    assert singles[0].seeds is None and np.ndim(singles[0].state.step) == 0
    for m, single in enumerate(singles):
        _close(take_member(pop.state, m).params, single.state.params, atol=1e-5)
        rows = [r for r in pop.history if r["member"] == m]
        assert [r["seed"] for r in rows] == [POP_CFG.seed + m] * 3
        for key in ("valid_loss", "train_loss", "lr", "step"):
            np.testing.assert_allclose(
                [r[key] for r in rows[1:]], [r[key] for r in single.history[1:]], rtol=1e-5
            )
    # metric files carry the member; one checkpoint per save holds the population
    steps = [json.loads(x) for x in (root / "pop/metrics/steps.jsonl").read_text().splitlines()]
    assert {r["member"] for r in steps} == {0, 1}
    traces = (root / "pop/metrics/traces.jsonl").read_text().splitlines()
    assert {json.loads(x)["member"] for x in traces} == {0, 1}
    assert "member,seed" in (root / "pop/metrics/epochs.csv").read_text().splitlines()[0]


def test_one_member_read_back_equals_the_separate_run(runs):
    root, _, pop, _ = runs
    for m in range(2):
        got = list(iter_checkpoints(root / "pop", member=m))
        ref = list(iter_checkpoints(root / f"s{POP_CFG.seed + m}"))
        assert [c.step for c in got] == [c.step for c in ref] and [c.member for c in got] == [m] * 3
        assert ref[0].member is None
        _equal(got[0].params, ref[0].params)  # the initialisation: bit for bit
        _close(got[-1].params, ref[-1].params, atol=1e-5)
        _equal(got[-1].params, take_member(pop.state, m).params)
    assert next(iter_checkpoints(root / "pop")).member == 0  # default: member 0, stated
    with pytest.raises(IndexError, match="outside the run's population of 2"):
        next(iter_checkpoints(root / "pop", member=2))


def test_population_resume_is_exact(runs, tmp_path):
    root, data, pop, _ = runs
    n = data.train.num_chunks(CFG.data.bptt)
    part = train(POP_CFG, tmp_path, data, progress=False, max_steps=n // 2, mesh=None)
    assert not part.finished
    part = train(POP_CFG, tmp_path, data, progress=False, max_steps=n, mesh=None)
    part = train(POP_CFG, tmp_path, data, progress=False, mesh=None)
    assert part.finished
    _equal(part.state, pop.state)

    def rows(h):  # JSON compares NaN (epoch 0's train loss) equal to itself
        return json.dumps([{k: v for k, v in r.items() if k != "seconds"} for r in h])

    assert rows(part.history) == rows(pop.history)
    for name in ("steps.jsonl", "traces.jsonl"):
        assert (tmp_path / "metrics" / name).read_text() == (
            root / "pop" / "metrics" / name
        ).read_text()
    with pytest.raises(ConfigError, match="seeds: 2 in the run, 3 now"):
        train(dataclasses.replace(POP_CFG, seeds=3), tmp_path, data, progress=False)


def test_run_study_says_what_each_stage_does_with_a_population(runs, capsys):
    from jaxdyn.studies.run import _population_notice, run_study

    root, data, _, _ = runs
    report = run_study(POP_CFG, root / "pop", stages=["train"], progress=False, data=data)
    text = report.read_text()
    assert "Population of 2 members" in text and "shows member 0 (seed 1111)" in text
    assert "stage train trains all 2 members" in capsys.readouterr().err
    _population_notice(root / "pop", POP_CFG, ["train", "sparsity", "interactions"])
    err = capsys.readouterr().err
    assert "stage sparsity analyses every member (seeds 1111..1112)" in err
    assert "stage interactions trains its own models as populations of 2" in err
    section = (root / "pop" / "report" / "sections" / "11-population.md").read_text()
    assert "analyses every member" in section


_SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jaxdyn.models import language_model
    from jaxdyn.train import make_optimizer
    from jaxdyn.train.population import (init_population, make_population_step,
        place_batch, population_mesh, shard_population)
    assert len(jax.devices()) == 4
    V, B, T = 30, 4, 5
    model = language_model(V, emb_dim=8, hidden=6, num_layers=2, dropout=0.3)
    tx = make_optimizer("sgd", lr=1.0, clip=0.25)
    rng = np.random.default_rng(0)
    batches = [{"inputs": rng.integers(0, V, (B, T)).astype(np.int32),
                "targets": rng.integers(0, V, (B, T)).astype(np.int32)} for _ in range(3)]
    worst = {}
    for size in (4, 2):  # 4 members on 4 devices; 2 members x 2-way data parallel
        mesh = population_mesh(size)
        plain, sharded = make_population_step(model, tx), make_population_step(model, tx, mesh=mesh)
        a = init_population(model, tx, list(range(size)), B)
        b = shard_population(a, mesh)
        for batch in batches:
            a = plain(a, batch)[0]
            b = sharded(b, place_batch(batch, mesh))[0]
        leaf = b.params["decoder"]["weight"]
        assert len(leaf.sharding.device_set) == 4, leaf.sharding
        want = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pop", "data"))
        assert b.carry[0][0].sharding.is_equivalent_to(want, 3), b.carry[0][0].sharding
        worst[f"{size}x{dict(mesh.shape)['data']}"] = max(
            float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    print("MAXDIFF", worst)
    """
)


def test_sharded_population_equals_unsharded_on_four_host_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("MAXDIFF"))
    worst = eval(line.split(" ", 1)[1])
    assert set(worst) == {"4x1", "2x2"}
    assert max(worst.values()) < 1e-5, worst


_SHARDED_RUN = textwrap.dedent(
    """
    import dataclasses, pathlib, tempfile
    import jax, numpy as np
    from jaxdyn.train import iter_checkpoints, lm_task, train
    from jaxdyn.train.population import take_member
    from tests.test_population import POP_CFG, SMALL
    assert len(jax.devices()) == 4
    cfg = dataclasses.replace(POP_CFG, seeds=4, epochs=1)
    data = lm_task(SMALL, cfg.data)
    n = data.train.num_chunks(cfg.data.bptt)
    d = pathlib.Path(tempfile.mkdtemp())
    ref = train(cfg, d / "ref", data, progress=False, mesh=None)
    part = train(cfg, d / "sh", data, progress=False, max_steps=n // 2)  # mesh="auto": 4 devices
    assert len(part.state.params["decoder"]["weight"].sharding.device_set) == 4
    sh = train(cfg, d / "sh", data, progress=False)
    assert sh.finished and len(sh.state.params["decoder"]["weight"].sharding.device_set) == 4
    got = list(iter_checkpoints(d / "sh", member=3))[-1].params
    np.testing.assert_array_equal(
        np.asarray(got["decoder"]["bias"]), np.asarray(take_member(sh.state, 3).params["decoder"]["bias"]))
    print("MAXDIFF", max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(jax.tree.leaves(ref.state.params), jax.tree.leaves(sh.state.params))))
    """
)


@pytest.mark.slow
def test_sharded_population_run_checkpoints_and_resumes_on_four_host_devices():
    """The host loop on a 4-device mesh (auto), interrupted and resumed, vs one device."""
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    }
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED_RUN], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("MAXDIFF"))
    assert float(line.split()[1]) < 1e-4, line


def test_host_loop_reports_a_failing_member_by_index_and_trains_the_others(tmp_path, capsys):
    import flax.linen as nn
    import optax

    from jaxdyn.checkpoint import Trajectory

    class Flaky(nn.Module):
        """A bigram model whose loss is NaN when its scalar ``trigger`` equals ``bad``."""

        vocab: int
        bad: float

        @nn.compact
        def __call__(self, x, *, train=False):
            logits = nn.Dense(self.vocab)(nn.Embed(self.vocab, 8)(x))
            trigger = self.param("trigger", nn.initializers.normal(1.0), ())
            return logits + jnp.where(trigger == self.bad, jnp.nan, 0.0)

    data = lm_task(SMALL, CFG.data)
    cfg = dataclasses.replace(
        POP_CFG, epochs=1, capture=dataclasses.replace(CFG.capture, enabled=False)
    )
    probe = Flaky(len(data.vocab), 0.0)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), 0)  # member 1's init key
    bad = float(probe.init(key, jnp.zeros((1, 1), jnp.int32))["params"]["trigger"])
    res = train(
        cfg,
        tmp_path,
        data,
        progress=False,
        model=Flaky(len(data.vocab), bad),
        tx=optax.sgd(0.1),
        mesh=None,
    )
    err = capsys.readouterr().err
    assert f"member 1 (seed {cfg.seed + 1}) has a non-finite training loss" in err
    assert "member 0" not in err
    last = {r["member"]: r for r in res.history if r["epoch"] == 1}
    assert last[0]["finite"] and not last[1]["finite"]
    assert (
        np.isfinite(last[0]["valid_loss"]) and last[0]["valid_loss"] < res.history[0]["valid_loss"]
    )
    with Trajectory(tmp_path, read_only=True) as traj:
        assert traj.restore_meta(traj.latest_step())["failed_members"] == [1]


@pytest.mark.slow  # three more trainings, one more compiled step (about 40 s on 2 loaded cores)
def test_per_member_data_order_equals_separate_runs_with_that_order(runs, tmp_path):
    """data_order=per_member: member m starts each epoch at its own chunk offset (from
    seed + m), exactly as a single run with that seed and option; shared order differs."""
    from jaxdyn.train.loop import chunk_offset

    _, data, shared, _ = runs
    n = data.train.num_chunks(CFG.data.bptt)
    cfg = dataclasses.replace(POP_CFG, epochs=1, data_order="per_member")
    offsets = [chunk_offset(s, 0, n) for s in member_seeds(cfg.seed, 2)]
    assert offsets[0] != offsets[1]  # the members really see different orders
    pop = train(cfg, tmp_path / "pop", data, progress=False, mesh=None)
    for m, s in enumerate(member_seeds(cfg.seed, 2)):
        one = train(
            dataclasses.replace(cfg, seeds=1, seed=s), tmp_path / f"s{s}", data, progress=False
        )
        _close(take_member(pop.state, m).params, one.state.params, atol=1e-5)
    first = [r for r in shared.history if r["epoch"] == 1]
    mine = [r for r in pop.history if r["epoch"] == 1]
    assert all(a["valid_loss"] != b["valid_loss"] for a, b in zip(first, mine))
    with pytest.raises(ConfigError, match="data_order: 'per_member' in the run, 'shared' now"):
        train(dataclasses.replace(cfg, data_order="shared"), tmp_path / "pop", data, progress=False)


_TWO_PROCESS = textwrap.dedent(
    """
    import dataclasses, sys
    import jax
    port, pid, work, max_steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid)
    from tests.test_population import POP_CFG, SMALL, CFG
    from jaxdyn.train import lm_task, train
    assert len(jax.devices()) == 2 and len(jax.local_devices()) == 1
    res = train(POP_CFG, work, lm_task(SMALL, CFG.data), progress=False,
                max_steps=max_steps or None)
    print("DONE", pid, res.finished, flush=True)
    """
)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _two_processes(work, max_steps):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("XLA_FLAGS", None)
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TWO_PROCESS, port, str(i), str(work), str(max_steps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=root,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [o for o, _ in outs], [e for _, e in outs]


@pytest.mark.slow  # four processes that each start jax and compile (about 1-2 min on 2 cores)
def test_two_processes_train_checkpoint_and_resume_a_population(runs, tmp_path):
    """jax.distributed on localhost: two processes (one CPU device each, members sharded
    over them) train a 2-member population, checkpoint it (Orbax multi-process), are
    stopped, and resume; the result equals the single-process population."""
    root, data, pop, _ = runs
    n = data.train.num_chunks(CFG.data.bptt)
    work = tmp_path / "mp"
    outs, _ = _two_processes(work, n // 2 + 3)
    assert all("DONE" in o and "False" in o for o in outs)  # stopped mid-epoch
    outs, errs = _two_processes(work, 0)
    assert all("True" in o for o in outs), outs
    assert f"from step {n // 2 + 3}" in errs[0]
    for m in range(2):
        got = list(iter_checkpoints(work, member=m))
        ref = list(iter_checkpoints(root / "pop", member=m))
        assert [c.step for c in got] == [c.step for c in ref]
        _close(got[-1].params, take_member(pop.state, m).params, atol=1e-5)
    rows = [json.loads(x) for x in (work / "metrics/epochs.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["member"]) for r in rows] == [(e, m) for e in range(3) for m in range(2)]
