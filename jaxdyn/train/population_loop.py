"""A population's part of the host loop (``cfg.seeds > 1``): one state, one step, one checkpoint.

:func:`jaxdyn.train.loop.train` runs the one host loop for single models and
populations; :class:`Population` is its strategy for ``seeds = P > 1`` (the
single model's is :class:`jaxdyn.train.loop.Single`). Same files, same exact
resume, same config check, with these differences:

* member ``m`` has seed ``cfg.seed + m``; with ``data_order = "shared"`` (default)
  all members see the same chunks in the same order; with ``"per_member"`` each
  member starts every epoch at its own chunk offset (drawn from its seed and the
  epoch, :func:`jaxdyn.train.loop.chunk_offset`), so member ``m`` sees what a
  single run with seed ``seed + m`` and the same option sees; the step then
  takes ``(P, B, T)`` batches;
* every checkpoint holds the whole population (leading ``(P,)`` axis on every
  leaf) plus ``meta["population"] = {"size": P, "seeds": [...]}``;
  :func:`jaxdyn.train.trajectory.iter_checkpoints` reads one member back
  (``member=m``) as an ordinary model's parameters;
* metric rows carry ``member`` (and ``seed`` in ``epochs.*``): ``epochs.csv`` has
  one row per member per epoch, ``steps.jsonl``/``traces.jsonl`` one row per
  member per logged/captured step;
* the plateau rule decides per member (the injected learning rate is ``(P,)``);
* a member whose training loss becomes non-finite is reported by index on stderr
  and in its rows (``finite: false``) and recorded in the checkpoint metadata
  (``failed_members``); the others keep training (members are independent). Only
  when every member has failed does training stop with ``FloatingPointError``.
* trace sinks receive the population trace (leading ``(P,)`` axis).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.trace.records import batch_means
from jaxdyn.train.logs import epoch_row
from jaxdyn.train.optim import PlateauState, plateau_update, set_learning_rate
from jaxdyn.train.population import (
    host_array,
    init_population,
    learning_rates,
    member_seeds,
    place_batch,
    population_carry,
    population_mesh,
    population_steps,
    shard_population,
    take_member,
)
from jaxdyn.train.single import _meta as single_meta
from jaxdyn.train.single import chunk_offset
from jaxdyn.train.tasks import Stream


def evaluate_population(eval_step, params, stream: Stream, bptt: int, *, model) -> np.ndarray:
    """Per-member mean token cross-entropy ``(P,)`` of stacked ``params`` on a stream."""
    carry = population_carry(model, params, stream.inputs.shape[0])
    total = count = None
    for k in range(stream.num_chunks(bptt)):
        t, c, carry = eval_step(params, carry, stream.chunk(k, bptt))
        total, count = (t, c) if total is None else (total + t, count + c)
    if total is None:
        raise ValueError("evaluation stream has no tokens")
    total, count = (host_array(x).astype(np.float64) for x in (total, count))
    if not (count > 0).all():
        raise ValueError("evaluation stream has no tokens")
    return total / count


def resolve_mesh(mesh: Any, size: int, batch_size: int):
    """``"auto"``: a :func:`population_mesh` over the visible devices when there are several."""
    if mesh != "auto":
        return mesh
    devices = jax.devices()
    if len(devices) < 2:
        return None
    m = population_mesh(size, devices)
    if batch_size % m.shape["data"]:  # no data parallelism for this batch size
        m = population_mesh(size, devices[: math.gcd(size, len(devices))])
    return None if m.devices.size < 2 else m


class Population:
    """The host loop's strategy for ``cfg.seeds = P > 1`` members (see the module docstring).

    Args:
      cfg, model, tx, spec, batch_size, init_params: as in the loop.
      mesh: a :func:`~jaxdyn.train.population.population_mesh`, ``"auto"`` (every
        visible device when there are several) or None (the default device).
    """

    def __init__(self, cfg, model, tx, spec, batch_size: int, init_params, mesh):
        self.cfg, self.model, self.batch_size = cfg, model, batch_size
        self.seeds = member_seeds(cfg.seed, cfg.seeds)
        self.size = len(self.seeds)
        self.per_member = cfg.data_order != "shared"
        self.mesh = resolve_mesh(mesh, self.size, batch_size)
        steps = population_steps(model, tx, spec, self.mesh, per_member_batch=self.per_member)
        self.step_plain, self.step_capture, self.eval_step = steps
        state = init_population(model, tx, self.seeds, batch_size, params=init_params)
        self.first = take_member(state, 0)
        self.state = state if self.mesh is None else shard_population(state, self.mesh)
        self.failed: set[int] = set()

    def describe(self) -> str:
        return f" ({self.size} members)"

    def _place(self, state):
        return state if self.mesh is None else shard_population(state, self.mesh)

    def reset_carry(self, state):
        return self._place(
            state._replace(carry=population_carry(self.model, state.params, self.batch_size))
        )

    def batch(self, stream: Stream, position: int, epoch: int, bptt: int):
        if not self.per_member:
            return place_batch(stream.chunk(position, bptt), self.mesh)
        n = stream.num_chunks(bptt)
        chunks = [
            stream.chunk((position + chunk_offset(s, epoch, n)) % n, bptt) for s in self.seeds
        ]
        stacked = {k: np.stack([np.asarray(c[k]) for c in chunks]) for k in chunks[0]}
        return place_batch(stacked, self.mesh, per_member=True)

    def host_step(self, state) -> int:
        return int(host_array(state.step).reshape(-1)[0])

    def evaluate(self, params, stream, bptt):
        return evaluate_population(self.eval_step, params, stream, bptt, model=self.model)

    def lrs(self, opt_state):
        return learning_rates(opt_state)

    def mean(self, losses):
        return host_array(jnp.mean(jnp.stack(losses), axis=0))

    def empty_loss(self):
        return np.full(self.size, np.nan)

    def check_finite(self, recent, step_no):
        bad = [m for m in np.flatnonzero(~np.isfinite(recent)) if m not in self.failed]
        for m in bad:
            self.failed.add(int(m))
            print(
                f"member {m} (seed {self.seeds[m]}) has a non-finite training loss "
                f"({recent[m]}) at step {step_no}; the other members continue",
                file=sys.stderr,
            )
        if len(self.failed) == self.size:
            raise FloatingPointError(
                f"every member's training loss is non-finite at step {step_no}"
            )

    def postfix(self, recent) -> float:
        ok = recent[np.isfinite(recent)]
        return float(ok.mean())

    def step_rows(self, step, epoch, recent):
        return [
            {"step": step, "epoch": epoch, "member": m, "loss": float(recent[m])}
            for m in range(self.size)
        ]

    def init_plateau(self):
        return [PlateauState() for _ in self.seeds]

    def plateau(self, state, plateaus, val, lrs, on):
        if not on:
            return state, [PlateauState(min(p.best, float(v))) for p, v in zip(plateaus, val)]
        new, plateaus = lrs.copy(), list(plateaus)
        for m in range(self.size):
            plateaus[m], new[m], _ = plateau_update(
                plateaus[m], float(val[m]), float(lrs[m]), self.cfg.optim.plateau_factor
            )
        if (new != lrs).any():
            state = self._place(
                state._replace(opt_state=set_learning_rate(state.opt_state, jnp.asarray(new)))
            )
        return state, plateaus

    def first_rows(self, val, lrs):
        return self.epoch_rows(0, 0, np.full(self.size, np.nan), val, lrs, 0.0)

    def epoch_rows(self, epoch, step, train_loss, val, lrs, seconds):
        rows = []
        for m, s in enumerate(self.seeds):
            lr = None if lrs is None else float(lrs[m])
            row = epoch_row(epoch, step, float(train_loss[m]), float(val[m]), lr, seconds)
            rows.append({"member": m, "seed": s, **row, "finite": m not in self.failed})
        return rows

    def epoch_line(self, rows, train_loss) -> str:
        vp = " ".join(f"{r['valid_ppl']:.1f}" for r in rows)
        return (
            f"epoch {rows[0]['epoch']:3d} | step {rows[0]['step']:6d} | valid ppl per member "
            f"{vp} | {rows[0]['seconds']:.1f}s"
        )

    def meta(self, cfg, data, epoch, chunk, plateaus, history, kind, losses):
        meta = single_meta(cfg, data, epoch, chunk, PlateauState(), history, kind)
        meta["plateau_best"] = [p.best if math.isfinite(p.best) else 1e30 for p in plateaus]
        meta["population"] = {"size": self.size, "seeds": list(self.seeds)}
        meta["failed_members"] = sorted(self.failed)
        meta["epoch_losses"] = [host_array(x).tolist() for x in losses]
        return meta

    def restore(self, meta):
        self.failed = set(meta.get("failed_members", []))
        losses = [np.asarray(x, np.float32) for x in meta.get("epoch_losses", [])]
        return [PlateauState(best=float(b)) for b in meta["plateau_best"]], losses

    def emit(self, trace, sinks, writer, step_no, epoch):
        _emit_population(trace, sinks, writer, step_no, epoch)


def _emit_population(trace, sinks, writer, step_no, epoch):
    means = jax.tree_util.tree_map(host_array, jax.vmap(batch_means)(trace))
    pg = jax.tree_util.tree_map(host_array, trace["reduced"].get("param_grad", {}))
    size = next(iter(jax.tree_util.tree_leaves(trace))).shape[0]
    for m in range(size):
        row = {"step": step_no, "epoch": epoch, "member": m}
        row.update({k: float(v[m]) for k, v in means.items()})
        for path, stats in pg.items():
            row[f"param_grad/{path}/te"] = float(stats["te"][m]) if "te" in stats else None
        writer.jsonl("traces.jsonl", row)
    for sink in sinks:
        sink(step_no, epoch, trace)


def train_population(cfg, workdir, data, **kwargs):
    """:func:`jaxdyn.train.loop.train` for a population (kept for older callers)."""
    from jaxdyn.train.loop import train

    if cfg.seeds < 2:
        raise ValueError(f"train_population needs seeds > 1, got {cfg.seeds}")
    return train(cfg, workdir, data, **kwargs)
