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

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
KEYINGS = ("input", "target")


class TypeMoments(NamedTuple):
    """Per-type running moments of one statistic (all ``(V,)`` except ``out_of_range``).

    Attributes:
        count: ``(V,)`` int32 number of tokens seen per type.
        shift: ``(V,)`` float reference value (first observed value of the type).
        sum: ``(V,)`` float ``sum(x - shift)``.
        sumsq: ``(V,)`` float ``sum((x - shift)^2)``.
        out_of_range: ``()`` int32 masked-in tokens whose key was outside ``[0, V)``.
    """

    count: Array
    shift: Array
    sum: Array
    sumsq: Array
    out_of_range: Array


def _moments_init(num_types: int, dtype) -> TypeMoments:
    z = jnp.zeros((num_types,), dtype)
    return TypeMoments(jnp.zeros((num_types,), jnp.int32), z, z, z, jnp.zeros((), jnp.int32))


def _float_dtype():
    return jnp.result_type(float)  # float32, or float64 under enable_x64


def _is_moments(t) -> bool:
    return isinstance(t, TypeMoments)


def _update_many(moments: Sequence[TypeMoments], keys, values, valid):
    """Adds ``values (N, L)`` keyed by ``keys (N,)`` where ``valid (N,)`` to L moments.

    Sparse: O(N L) gathers and scatters into the state (in place when the caller
    donates it), not O(V L) dense work per batch.
    """
    if not moments:
        return []
    num_types = moments[0].count.shape[0]
    dtype = moments[0].sum.dtype
    n = keys.shape[0]
    in_range = (keys >= 0) & (keys < num_types)
    ok = valid & in_range
    n_bad = jnp.sum(valid & ~in_range).astype(jnp.int32)
    k = jnp.where(ok, keys, 0)  # safe gather index
    kd = jnp.where(ok, keys, num_types)  # scatter index; num_types is dropped
    # Shift of a type first seen in this batch: its value at its first position.
    first = jax.ops.segment_min(jnp.where(ok, jnp.arange(n), n), k, num_types)
    fpos = jnp.minimum(first[k], n - 1)
    values = values.astype(dtype)
    out = []
    for i, m in enumerate(moments):
        v = values[:, i]
        shift = jnp.where(m.count[k] == 0, v[fpos], m.shift[k])
        dev = jnp.where(ok, v - shift, 0.0)
        out.append(
            TypeMoments(
                m.count.at[kd].add(1, mode="drop"),
                m.shift.at[kd].set(shift, mode="drop"),
                m.sum.at[kd].add(dev, mode="drop"),
                m.sumsq.at[kd].add(dev * dev, mode="drop"),
                m.out_of_range + n_bad,
            )
        )
    return out


def _finalize_one(m: TypeMoments) -> dict[str, Array]:
    n = m.count
    seen = n > 0
    nf = jnp.maximum(n, 1).astype(m.sum.dtype)
    mean = jnp.where(seen, m.shift + m.sum / nf, 0.0)
    ss = jnp.maximum(m.sumsq - m.sum * m.sum / nf, 0.0)
    var = jnp.where(n > 1, ss / jnp.maximum(nf - 1.0, 1.0), 0.0)
    return {
        "count": n,
        "mean": mean,
        "var": var,
        "std": jnp.sqrt(var),
        "seen": seen,
        "out_of_range": m.out_of_range,
    }


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
    dtype = _float_dtype()
    return {n: _moments_init(int(num_types), dtype) for n in names}


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
    for n, a in stats.items():
        _check_bt(f"stats[{n!r}]", a, keys.shape)
    _check_keys(keys)
    names = list(state)
    valid = _flat_mask(mask, keys.shape)
    values = (
        jnp.stack([stats[n].reshape(-1) for n in names], axis=1)
        if names
        else jnp.zeros((keys.size, 0))
    )
    new = _update_many([state[n] for n in names], keys.reshape(-1), values, valid)
    return dict(zip(names, new))


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
    return {n: _finalize_one(m) for n, m in state.items()}


# ---------------------------------------------------------------- tree API


def aggregate_init(
    num_types: int, stats_example_tree: Any, keyings: Sequence[str] = KEYINGS
) -> dict[str, Any]:
    """Empty state for a pytree of per-token statistics, for each keying.

    Args:
        num_types: vocabulary size V.
        stats_example_tree: pytree whose leaves are the ``(B, T)`` statistics (only
            the structure is used; leaves may be arrays or ShapeDtypeStructs).
        keyings: subset of ``("input", "target")``: key tokens by the input word
            and/or by the target (next) word.

    Returns:
        dict keying -> pytree of :class:`TypeMoments`, same structure as the stats.

    References: Saphra & Lopez (2019), per-word-type TE by input and target word.
    """
    keyings = tuple(keyings)
    if not keyings or len(set(keyings)) != len(keyings) or set(keyings) - set(KEYINGS):
        raise ValueError(f"keyings must be distinct names from {KEYINGS}, got {keyings}")
    if int(num_types) <= 0:
        raise ValueError(f"num_types must be > 0, got {num_types}")
    leaves, treedef = jax.tree.flatten(stats_example_tree)
    dtype = _float_dtype()
    return {
        kg: jax.tree.unflatten(treedef, [_moments_init(int(num_types), dtype) for _ in leaves])
        for kg in keyings
    }


@jax.jit
def aggregate_update(
    state: dict[str, Any],
    stats_tree: Any,
    inputs: Array | None = None,
    targets: Array | None = None,
    mask: Array | None = None,
) -> dict[str, Any]:
    """Adds one batch of a whole statistics tree, for every keying, in one call.

    Args:
        state: from :func:`aggregate_init`.
        stats_tree: pytree of ``(B, T)`` statistics with the init tree's structure.
        inputs: ``(B, T)`` int input word ids (needed for keying "input").
        targets: ``(B, T)`` int target word ids (needed for keying "target").
        mask: ``(B, T)`` bool, True = token counts; None = all.

    Returns:
        the new state.

    References: Saphra & Lopez (2019), per-word-type aggregation.
    """
    keys_by = {"input": inputs, "target": targets}
    leaves, treedef = jax.tree.flatten(stats_tree)
    out = {}
    for kg, tree in state.items():
        keys = keys_by[kg]
        if keys is None:
            raise ValueError(f"keying {kg!r} needs the {kg}s array, got None")
        _check_keys(keys)
        moments, mdef = jax.tree.flatten(tree, is_leaf=_is_moments)
        if mdef != treedef:
            raise ValueError(f"stats tree structure {treedef} != state structure {mdef}")
        for path, leaf in zip(jax.tree_util.tree_flatten_with_path(stats_tree)[0], leaves):
            _check_bt(f"stats leaf {jax.tree_util.keystr(path[0])}", leaf, keys.shape)
        valid = _flat_mask(mask, keys.shape)
        values = (
            jnp.stack([a.reshape(-1) for a in leaves], axis=1)
            if leaves
            else jnp.zeros((keys.size, 0))
        )
        out[kg] = jax.tree.unflatten(mdef, _update_many(moments, keys.reshape(-1), values, valid))
    return out


@jax.jit
def aggregate_finalize(state: dict[str, Any]) -> dict[str, Any]:
    """Per-type statistics for every leaf and keying.

    Args:
        state: from :func:`aggregate_update`.

    Returns:
        dict keying -> pytree (stats structure) whose leaves are the dicts of
        :func:`per_type_finalize` (count, mean, var, std, seen, out_of_range).

    References: Chan, Golub & LeVeque (1983), eq. 1.7.
    """
    return jax.tree.map(_finalize_one, state, is_leaf=_is_moments)


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
