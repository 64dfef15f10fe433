"""Streaming per-word-type aggregation of per-token statistics (Optax-like, pure).

A state holds, per statistic and word type ``v < V``: ``count``, and ``sum`` /
``sumsq`` of ``x - shift[v]`` where ``shift[v]`` is the type's first observed value
(shifted-data algorithm; avoids the float32 cancellation of ``sumsq - sum^2 / n``
when the variance is small next to the mean). Results do not depend on batch order
beyond float rounding. Updates are sparse scatters (O(tokens), not O(V)); jit the
caller's step with the state donated to update it in place.

Keys outside ``[0, V)`` at masked-in positions are *not* an error inside jit (that
would need a device->host sync per batch); they are excluded and counted in
``out_of_range`` so callers can assert it is 0. Masked-out positions contribute
nothing, even if their statistic is NaN.

Two levels of API:

* ``per_type_init / per_type_update / per_type_finalize`` for a flat mapping
  ``name -> (B, T)`` statistics keyed by one ``(B, T)`` key array;
* ``aggregate_init / aggregate_update / aggregate_finalize`` for any pytree of
  ``(B, T)`` statistics (e.g. ``stats[module][direction][statistic]``), keyed by the
  input word and/or the target word, in one jitted call; ``stats_from_trace``
  adapts the training trace layout ``trace["reduced"][direction][module][stat]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
KEYINGS = ("input", "target")


class TypeMoments(NamedTuple):
    """Per-type running moments of one statistic, or of L stacked statistics.

    Attributes:
        count: ``(V,)`` int32 number of tokens seen per type.
        shift: ``(V,)`` or ``(V, L)`` float reference value (the type's first
            observed value).
        sum: like ``shift``: ``sum(x - shift)``.
        sumsq: like ``shift``: ``sum((x - shift)^2)``.
        out_of_range: ``()`` int32 masked-in tokens whose key was outside ``[0, V)``.
    """

    count: Array
    shift: Array
    sum: Array
    sumsq: Array
    out_of_range: Array


def _moments_init(num_types: int, width: int | None = None) -> TypeMoments:
    dtype = jnp.result_type(float)  # float32, or float64 under enable_x64
    shape = (num_types,) if width is None else (num_types, width)
    # distinct buffers per field, so that a caller may donate the state
    return TypeMoments(
        jnp.zeros((num_types,), jnp.int32),
        jnp.zeros(shape, dtype),
        jnp.zeros(shape, dtype),
        jnp.zeros(shape, dtype),
        jnp.zeros((), jnp.int32),
    )


def _update_stacked(m: TypeMoments, keys: Array, values: Array, valid: Array) -> TypeMoments:
    """Adds ``values (N, L)`` keyed by ``keys (N,)`` at ``valid (N,)`` to (V, L) moments.

    Sparse: O(N L) gathers and scatters (in place when the caller donates the
    state), no O(V L) work per batch.
    """
    num_types = m.count.shape[0]
    n = keys.shape[0]
    in_range = (keys >= 0) & (keys < num_types)
    ok = valid & in_range
    n_bad = jnp.sum(valid & ~in_range).astype(jnp.int32)
    k = jnp.where(ok, keys, 0)  # safe gather index
    kd = jnp.where(ok, keys, num_types)  # scatter index; num_types is dropped
    values = values.astype(m.sum.dtype)
    # Shift of a type first seen in this batch: its value at its first position.
    first = jax.ops.segment_min(jnp.where(ok, jnp.arange(n), n), k, num_types)
    fpos = jnp.minimum(first[k], n - 1)
    shift = jnp.where((m.count[k] == 0)[:, None], values[fpos], m.shift[k])
    dev = jnp.where(ok[:, None], values - shift, 0.0)
    return TypeMoments(
        m.count.at[kd].add(1, mode="drop"),
        m.shift.at[kd].set(shift, mode="drop"),
        m.sum.at[kd].add(dev, mode="drop"),
        m.sumsq.at[kd].add(dev * dev, mode="drop"),
        m.out_of_range + n_bad,
    )


def _finalize_one(m: TypeMoments) -> dict[str, Array]:
    n = m.count if m.sum.ndim == 1 else m.count[:, None]
    seen = n > 0
    nf = jnp.maximum(n, 1).astype(m.sum.dtype)
    mean = jnp.where(seen, m.shift + m.sum / nf, 0.0)
    ss = jnp.maximum(m.sumsq - m.sum * m.sum / nf, 0.0)
    var = jnp.where(n > 1, ss / jnp.maximum(nf - 1.0, 1.0), 0.0)
    return {"mean": mean, "var": var, "std": jnp.sqrt(var)}


def _finalized(m: TypeMoments) -> list[dict[str, Array]]:
    """Finalized dicts: one for a (V,) state, one per column for a (V, L) state."""
    full = _finalize_one(m)
    common = {"count": m.count, "seen": m.count > 0, "out_of_range": m.out_of_range}
    if m.sum.ndim == 1:
        return [{**full, **common}]
    return [{**{f: a[:, i] for f, a in full.items()}, **common} for i in range(m.sum.shape[1])]


def _check_keys(keys) -> None:
    if not jnp.issubdtype(keys.dtype, jnp.integer):
        raise TypeError(f"keys must be integer word ids, got dtype {keys.dtype}")


def _check_bt(name: str, a, shape) -> None:
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape} (same as keys)")


def _flat_mask(mask, shape):
    if mask is None:
        return jnp.ones((_size(shape),), bool)
    _check_bt("mask", mask, shape)
    return mask.reshape(-1).astype(bool)


def _size(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# ---------------------------------------------------------------- flat API


def per_type_init(num_types: int, names: Sequence[str]) -> dict[str, TypeMoments]:
    """Empty per-type state for the statistics ``names``.

    Args:
        num_types: vocabulary size V (> 0).
        names: statistic names, e.g. ``("te", "l2")``.

    Returns:
        dict name -> :class:`TypeMoments` of ``(V,)`` arrays (float32, float64 under
        x64; counts int32).

    References: Chan, Golub & LeVeque (1983), "Algorithms for computing the sample
        variance", shifted-data algorithm (eq. 1.7).
    """
    if int(num_types) <= 0:
        raise ValueError(f"num_types must be > 0, got {num_types}")
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate statistic names in {names}")
    return {n: _moments_init(int(num_types)) for n in names}


@jax.jit
def per_type_update(
    state: dict[str, TypeMoments],
    keys: Array,
    stats: Mapping[str, Array],
    mask: Array | None = None,
) -> dict[str, TypeMoments]:
    """Adds one batch of per-token statistics to the per-type state.

    Args:
        state: from :func:`per_type_init` / a previous update.
        keys: ``(B, T)`` int word ids (any shape, shared by stats and mask).
        stats: name -> ``(B, T)`` per-token statistic; names must equal the state's.
        mask: ``(B, T)`` bool, True = token counts; None = all count.

    Returns:
        the new state (same structure).

    References: Chan, Golub & LeVeque (1983), shifted-data sums (eq. 1.7).
    """
    if set(stats) != set(state):
        raise ValueError(f"stats names {sorted(stats)} != state names {sorted(state)}")
    _check_keys(keys)
    for n, a in stats.items():
        _check_bt(f"stats[{n!r}]", a, keys.shape)
    valid = _flat_mask(mask, keys.shape)
    out = {}
    for n, m in state.items():
        col = TypeMoments(
            m.count, m.shift[:, None], m.sum[:, None], m.sumsq[:, None], m.out_of_range
        )
        new = _update_stacked(col, keys.reshape(-1), stats[n].reshape(-1, 1), valid)
        out[n] = TypeMoments(
            new.count, new.shift[:, 0], new.sum[:, 0], new.sumsq[:, 0], new.out_of_range
        )
    return out


@jax.jit
def per_type_finalize(state: dict[str, TypeMoments]) -> dict[str, dict[str, Array]]:
    """Per-type count, mean, unbiased variance and std.

    Args:
        state: per-type state.

    Returns:
        dict name -> {"count" (V,) int32, "mean" (V,), "var" (V,) (divisor n - 1;
        0 when n <= 1), "std" (V,), "seen" (V,) bool, "out_of_range" () int32}.
        Unseen types have count 0, mean 0, var 0 (never NaN).

    References: Chan, Golub & LeVeque (1983), eq. 1.7.
    """
    return {n: _finalized(m)[0] for n, m in state.items()}


# ---------------------------------------------------------------- tree API


@dataclasses.dataclass(frozen=True)
class AggregateState:
    """State of the tree aggregator (a pytree; ``treedef`` is static).

    Attributes:
        moments: keying -> :class:`TypeMoments` with ``(V, L)`` shift/sum/sumsq, one
            column per leaf of the statistics tree (in ``jax.tree.leaves`` order),
            and one ``(V,)`` count shared by all leaves (they share keys and mask).
        treedef: structure of the statistics tree.
    """

    moments: dict[str, TypeMoments]
    treedef: Any


jax.tree_util.register_dataclass(AggregateState, data_fields=["moments"], meta_fields=["treedef"])


def aggregate_init(
    num_types: int, stats_example_tree: Any, keyings: Sequence[str] = KEYINGS
) -> AggregateState:
    """Empty state for a pytree of per-token statistics, for each keying.

    Args:
        num_types: vocabulary size V.
        stats_example_tree: pytree whose leaves are the ``(B, T)`` statistics (only
            the structure is used; leaves may be arrays, ShapeDtypeStructs or numbers).
        keyings: subset of ``("input", "target")``: key tokens by the input word
            and/or by the target (next) word.

    Returns:
        :class:`AggregateState`.

    References: Saphra & Lopez (2019), per-word-type TE by input and target word.
    """
    keyings = tuple(keyings)
    if not keyings or len(set(keyings)) != len(keyings) or set(keyings) - set(KEYINGS):
        raise ValueError(f"keyings must be distinct names from {KEYINGS}, got {keyings}")
    if int(num_types) <= 0:
        raise ValueError(f"num_types must be > 0, got {num_types}")
    treedef = jax.tree.structure(stats_example_tree)
    width = treedef.num_leaves
    return AggregateState({kg: _moments_init(int(num_types), width) for kg in keyings}, treedef)


@jax.jit
def aggregate_update(
    state: AggregateState,
    stats_tree: Any,
    inputs: Array | None = None,
    targets: Array | None = None,
    mask: Array | None = None,
) -> AggregateState:
    """Adds one batch of a whole statistics tree, for every keying, in one call.

    Args:
        state: from :func:`aggregate_init`.
        stats_tree: pytree of ``(B, T)`` statistics with the init tree's structure.
        inputs: ``(B, T)`` int input word ids (needed for keying "input").
        targets: ``(B, T)`` int target word ids (needed for keying "target").
        mask: ``(B, T)`` bool, True = token counts; None = all.

    Returns:
        the new state. Jit the caller's step with ``donate_argnums`` on the state to
        update it in place.

    References: Saphra & Lopez (2019), per-word-type aggregation.
    """
    treedef = jax.tree.structure(stats_tree)
    if treedef != state.treedef:
        raise ValueError(f"stats tree structure {treedef} != state structure {state.treedef}")
    keys_by = {"input": inputs, "target": targets}
    paths_leaves = jax.tree_util.tree_flatten_with_path(stats_tree)[0]
    out = {}
    for kg, m in state.moments.items():
        keys = keys_by[kg]
        if keys is None:
            raise ValueError(f"keying {kg!r} needs the {kg}s array, got None")
        _check_keys(keys)
        for path, leaf in paths_leaves:
            _check_bt(f"stats leaf {jax.tree_util.keystr(path)}", leaf, keys.shape)
        valid = _flat_mask(mask, keys.shape)
        cols = [leaf.reshape(-1) for _, leaf in paths_leaves]
        values = jnp.stack(cols, axis=1) if cols else jnp.zeros((keys.size, 0), m.sum.dtype)
        out[kg] = _update_stacked(m, keys.reshape(-1), values, valid)
    return AggregateState(out, state.treedef)


@jax.jit
def aggregate_finalize(state: AggregateState) -> dict[str, Any]:
    """Per-type statistics for every leaf and keying.

    Args:
        state: from :func:`aggregate_update`.

    Returns:
        dict keying -> pytree (the statistics tree's structure) whose leaves are the
        dicts of :func:`per_type_finalize` (count, mean, var, std, seen, out_of_range).

    References: Chan, Golub & LeVeque (1983), eq. 1.7.
    """
    out = {}
    for kg, m in state.moments.items():
        out[kg] = state.treedef.unflatten(_finalized(m))
    return out


def stats_from_trace(trace: Mapping[str, Any], directions: Sequence[str] | None = None):
    """Re-keys ``trace["reduced"][direction][module][stat]`` as ``[module][direction][stat]``.

    Args:
        trace: dict with a ``"reduced"`` entry, e.g. ``{"act": {...}, "act_grad":
            {...}}``, each ``module -> stat -> (B, T)`` array.
        directions: which directions to take (default: all in ``trace["reduced"]``).

    Returns:
        nested dict ``module -> direction -> stat -> (B, T)`` ready for
        :func:`aggregate_init` / :func:`aggregate_update` (modules missing a
        direction simply lack that entry).

    References: Saphra & Lopez (2019), forward output and backward gradient of each
        module.
    """
    if "reduced" not in trace:
        raise KeyError("trace has no 'reduced' entry (expected trace['reduced'][dir][module])")
    reduced = trace["reduced"]
    directions = tuple(reduced) if directions is None else tuple(directions)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    shape = None
    for d in directions:
        if d not in reduced:
            raise KeyError(f"direction {d!r} not in trace['reduced'] ({sorted(reduced)})")
        for module, stats in reduced[d].items():
            for stat, arr in stats.items():
                if getattr(arr, "ndim", None) != 2 or (shape is not None and arr.shape != shape):
                    raise ValueError(
                        f"trace['reduced'][{d!r}][{module!r}][{stat!r}] has shape "
                        f"{getattr(arr, 'shape', None)}; expected one common (B, T)"
                    )
                shape = arr.shape
                out.setdefault(module, {}).setdefault(d, {})[stat] = arr
    return out
