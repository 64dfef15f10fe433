"""Populations: P models trained as one state with a leading member axis, one compiled step.

Training dynamics are a property of a distribution of runs. A *population* is P
members of the same architecture and optimizer (different seeds, or different
tasks of the same shapes sharing one initialisation) held as one
:class:`~jaxdyn.train.state.TrainState` whose every leaf has a leading member
axis ``(P, ...)``: ``step (P,)``, ``params``, ``opt_state`` (an injected learning
rate becomes ``(P,)``), ``rng (P, 2)`` and the recurrent ``carry`` (the LSTM's
``(P, B, H)`` per layer and state). One step is ``jax.vmap`` of the ordinary
train step (:func:`jaxdyn.train.step.make_train_step`) over that axis, jitted
once: every member draws its own dropout masks from its own key, and its update
is exactly what the single-model step computes (up to XLA reassociating batched
GEMMs; see ``tests/test_population.py``).

Member ``m`` of a population started from ``seed`` is initialised exactly as a
single run with seed ``seed + m`` (:func:`member_seeds`), so member 0 of a
population is the single run of the same config.

Sharding: :func:`population_mesh` builds a ``jax.sharding.Mesh`` with axes
``("pop", "data")``: members are spread over the ``pop`` axis and, when there
are more devices than members, each member's batch rows over ``data`` (data
parallelism within a member; XLA inserts the gradient all-reduce).
:func:`shard_population` places a state on it with ``NamedSharding``; the step
keeps that placement (:func:`make_population_step` with ``mesh=``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from jaxdyn.models.taps import initial_carry
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.optim import learning_rate_of
from jaxdyn.train.state import TrainState, init_train_state
from jaxdyn.train.step import make_eval_step, make_train_step

#: Mesh axis names: members, and batch rows within a member.
POP, DATA = "pop", "data"


def member_seeds(seed: int, size: int) -> list[int]:
    """Seeds of a population's members: member ``m`` uses ``seed + m``."""
    if size < 1:
        raise ValueError(f"a population needs at least one member, got seeds={size}")
    return [seed + m for m in range(size)]


def stack_members(trees: Sequence[Any]) -> Any:
    """Stack P pytrees of equal structure into one with a leading ``(P, ...)`` axis."""
    if not trees:
        raise ValueError("stack_members needs at least one tree")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def take_member(tree: Any, member: int) -> Any:
    """Member ``member`` of a stacked pytree (leading axis removed): an ordinary model's tree.

    ``None`` leaves (e.g. a model without carry) stay None.

    Raises:
      IndexError: ``member`` is outside ``[0, P)``.
    """
    size = population_size(tree)
    if not 0 <= member < size:
        raise IndexError(f"member {member} is outside the population of {size} (0..{size - 1})")
    return jax.tree_util.tree_map(lambda x: x[member], tree)


def population_size(tree: Any) -> int:
    """P, the leading axis shared by every leaf of a stacked pytree."""
    sizes = {int(np.shape(x)[0]) for x in jax.tree_util.tree_leaves(tree) if np.ndim(x) > 0}
    if len(sizes) != 1:
        raise ValueError(f"not a stacked population: leading axes {sorted(sizes)}")
    return sizes.pop()


def init_population(
    model,
    tx: optax.GradientTransformation,
    seeds: Sequence[int],
    batch_size: int,
    *,
    params: Any = None,
) -> TrainState:
    """A population state: member ``m`` is ``init_train_state(model, tx, seeds[m], batch_size)``.

    Args:
      model: a Flax module following ``jaxdyn.models.taps``'s protocol.
      tx: any Optax transformation (shared by the members; its state is per member).
      seeds: one integer seed per member (see :func:`member_seeds`).
      batch_size: B of the training batches.
      params: shared initial parameters for every member (e.g. taggers of several
        tasks from one initialisation); the seeds then only choose dropout.

    Returns:
      A :class:`TrainState` whose leaves have a leading ``(P,)`` axis.
    """
    if len(seeds) < 1:
        raise ValueError("init_population needs at least one seed")
    states = [init_train_state(model, tx, s, batch_size, params=params) for s in seeds]
    return stack_members(states)


def _state_spec(state: TrainState) -> TrainState:
    """PartitionSpecs of a population state: members over ``pop``, carry rows over ``data``."""
    pop = lambda x: PS(POP)  # noqa: E731
    rows = lambda x: PS(POP, DATA) if np.ndim(x) >= 2 else PS(POP)  # noqa: E731
    return TrainState(
        step=PS(POP),
        params=jax.tree_util.tree_map(pop, state.params),
        opt_state=jax.tree_util.tree_map(pop, state.opt_state),
        rng=PS(POP),
        carry=jax.tree_util.tree_map(rows, state.carry),
    )


def population_mesh(size: int, devices: Sequence[Any] | None = None) -> Mesh:
    """A ``("pop", "data")`` mesh for a population of ``size`` members.

    With ``n`` devices: if ``size`` is a multiple of ``n``, all devices hold
    ``size / n`` members each (``data`` axis 1); if ``n`` is a multiple of
    ``size``, each member gets ``n / size`` devices for its batch rows (data
    parallelism; the batch size must be divisible by it); otherwise the first
    ``gcd(size, n)`` devices hold the members.

    Args:
      size: P.
      devices: the devices to use (default ``jax.devices()``, all processes).
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if size % n == 0:
        shape = (n, 1)
    elif n % size == 0:
        shape = (size, n // size)
    else:
        shape = (math.gcd(size, n), 1)
    used = np.asarray(devices[: shape[0] * shape[1]], dtype=object).reshape(shape)
    return Mesh(used, (POP, DATA))


def host_array(x: Any) -> np.ndarray:
    """``x`` as a NumPy array on this host; a global array of a multi-process run (one
    not fully addressable here) is gathered from every process first."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))


def spans_processes(mesh: Mesh | None) -> bool:
    """Whether ``mesh`` has devices of other processes (a ``jax.distributed`` run)."""
    return mesh is not None and any(
        d.process_index != jax.process_index() for d in mesh.devices.flat
    )


def _shardings(mesh: Mesh, specs: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PS)
    )


def shard_population(state: TrainState, mesh: Mesh) -> TrainState:
    """``state`` placed on ``mesh``: members over ``pop``, carry batch rows over ``data``.

    Raises:
      ValueError: P is not divisible by the ``pop`` axis, or B by the ``data`` axis.
    """
    size, n_pop, n_data = population_size(state.params), mesh.shape[POP], mesh.shape[DATA]
    if size % n_pop:
        raise ValueError(f"{size} members cannot be spread evenly over {n_pop} devices")
    for x in jax.tree_util.tree_leaves(state.carry):
        if np.ndim(x) >= 2 and np.shape(x)[1] % n_data:
            raise ValueError(
                f"batch size {np.shape(x)[1]} is not divisible by the mesh's data axis ({n_data})"
            )
    if spans_processes(mesh):  # every process holds the same host values; each keeps its shards
        state = jax.tree_util.tree_map(host_array, state)
    return jax.device_put(state, _shardings(mesh, _state_spec(state)))


def batch_sharding(mesh: Mesh, *, per_member: bool = False) -> NamedSharding:
    """Sharding of a batch leaf: ``(B, T)`` rows over ``data`` (``(P, B, T)`` also over ``pop``)."""
    return NamedSharding(mesh, PS(POP, DATA) if per_member else PS(DATA))


def place_batch(batch: Any, mesh: Mesh | None, *, per_member: bool = False) -> Any:
    """A batch (dict of arrays) put on ``mesh`` (unchanged without one)."""
    if mesh is None:
        return batch
    if spans_processes(mesh):
        batch = jax.tree_util.tree_map(np.asarray, batch)
    return jax.device_put(batch, batch_sharding(mesh, per_member=per_member))


def make_population_step(
    model,
    tx: optax.GradientTransformation,
    spec: CaptureSpec | None = None,
    *,
    per_member_batch: bool = False,
    mesh: Mesh | None = None,
    unroll: bool = False,
):
    """A jitted ``step(pop_state, batch) -> (pop_state, metrics, trace)`` over all members.

    ``jax.vmap`` of :func:`jaxdyn.train.step.make_train_step`'s step over the
    member axis, compiled once.

    Args:
      model, tx, spec: as for ``make_train_step``.
      per_member_batch: batches are ``(P, B, T)`` (each member its own data, e.g.
        another task or order); default: one ``(B, T)`` batch shared by all.
      mesh: a :func:`population_mesh`; the new state keeps the placement of
        :func:`shard_population` (members over ``pop``, carry rows over ``data``).
      unroll: instead of ``vmap``, trace the single step once per member into the
        same program (P copies of the single model's ops, which XLA may run
        concurrently); the update is then the single model's bit for bit. Not
        with ``mesh`` (sharding partitions the vmapped member axis).

    Returns:
      The jitted step. ``metrics`` values are ``(P,)`` (``loss``, ``grad_norm``,
      ``tokens``, ``lr``); the trace, if any, has a leading ``(P,)`` axis on every leaf.
    """
    one = make_train_step(model, tx, spec)
    if unroll:
        if mesh is not None:
            raise ValueError("unroll=True cannot be sharded; use the vmapped step with a mesh")

        def unrolled(state, batch):
            size = population_size(state.params)
            outs = [
                one(
                    jax.tree_util.tree_map(lambda x, m=m: x[m], state),
                    jax.tree_util.tree_map(lambda x, m=m: x[m], batch)
                    if per_member_batch
                    else batch,
                )
                for m in range(size)
            ]
            return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)

        return jax.jit(unrolled)
    vstep = jax.vmap(one, in_axes=(0, 0 if per_member_batch else None))

    def step(state: TrainState, batch):
        new, metrics, trace = vstep(state, batch)
        if mesh is not None:
            new = jax.lax.with_sharding_constraint(new, _shardings(mesh, _state_spec(new)))
        return new, metrics, trace

    return jax.jit(step)


def make_population_eval_step(model, *, per_member_batch: bool = False):
    """A jitted ``eval(params, carry, batch) -> (loss_sum (P,), count (P,), carry)`` (no dropout)."""
    return jax.jit(jax.vmap(make_eval_step(model), in_axes=(0, 0, 0 if per_member_batch else None)))


def _build_population_steps(model, tx, spec, mesh, per_member_batch=False):
    kw = {"mesh": mesh, "per_member_batch": per_member_batch}
    capture = make_population_step(model, tx, spec, **kw) if spec is not None else None
    return (
        make_population_step(model, tx, None, **kw),
        capture,
        make_population_eval_step(model),
    )


_cached_population_steps = functools.lru_cache(maxsize=16)(_build_population_steps)


def population_steps(
    model, tx, spec: CaptureSpec | None, mesh: Mesh | None = None, *, per_member_batch=False
):
    """``(step, capture_step, eval_step)`` of a population, memoised like ``compiled_steps``.

    Runs of the same shapes in one process (resumed runs, tests) reuse the jitted
    functions and their compiled programs; an unhashable model is compiled afresh.
    ``per_member_batch``: the train steps take ``(P, B, T)`` batches (evaluation
    stays shared).
    """
    try:
        hash((model, tx, spec, mesh))
    except TypeError:
        return _build_population_steps(model, tx, spec, mesh, per_member_batch)
    return _cached_population_steps(model, tx, spec, mesh, per_member_batch)


def population_carry(model, params: Any, batch_size: int) -> Any:
    """The members' initial carries, stacked ``(P, ...)`` (None for a model without one)."""
    return jax.vmap(lambda p: initial_carry(model, p, batch_size))(params)


def learning_rates(opt_state: Any) -> np.ndarray | None:
    """The members' injected learning rates as a float ``(P,)`` array, or None."""
    lr = learning_rate_of(opt_state)
    return None if lr is None else host_array(lr).astype(np.float64).reshape(-1)


def finite_members(values: Any) -> np.ndarray:
    """Boolean ``(P,)``: which members' values (e.g. losses ``(P,)`` or ``(n, P)``) are finite."""
    v = np.asarray(jax.device_get(values), dtype=np.float64)
    v = v.reshape(-1, v.shape[-1]) if v.ndim else v.reshape(1, 1)
    return np.isfinite(v).all(axis=0)
