"""Weight metrics of one tensor, and of a whole parameter tree in one compiled call.

The coordinates Hu et al. (2023) map training with: norms and moments of each
weight tensor and statistics of each weight matrix's singular values. For a
matrix ``W`` (``(m, n)``) with singular values ``s_1 >= ... >= s_r``
(``r = min(m, n)``):

- ``l1 = sum |W_ij|``, ``l2 = ||W||_F = sqrt(sum W_ij^2)`` (``frobenius`` is the same
  number, kept under its own name), ``l1_l2 = l1 / l2`` (weight sparsity: between
  1 for one non-zero entry and ``sqrt(mn)`` for equal magnitudes);
- ``mean``, ``var`` (population variance) of the entries;
- ``spectral = s_1``, ``nuclear = sum s_i`` (trace norm), ``sv_mean``, ``sv_var`` of
  the singular values, ``stable_rank = l2^2 / s_1^2``, ``effective_rank =
  exp(-sum p_i log p_i)`` with ``p_i = s_i / sum s`` (Roy & Vetterli 2007).

A vector (bias) gets the entry metrics only (``l1``, ``l2``, ``l1_l2``, ``mean``,
``var``). Ratios of an all-zero tensor are defined as 0 (not NaN): a zero bias at
initialisation is common.

References: Hu, Chen, Saphra & Cho 2023, "Latent state models of training
dynamics" (TMLR), Sec. 3 (the metrics); Roy & Vetterli 2007, "The effective rank",
Eq. (3); Rudelson & Vershynin 2007 (stable rank).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

#: Metrics of a vector (any tensor's entries).
ENTRY_METRICS = ("l1", "l2", "l1_l2", "mean", "var")
#: Metrics of a matrix: the entry metrics plus the singular-value statistics.
MATRIX_METRICS = (
    *ENTRY_METRICS,
    "frobenius",
    "spectral",
    "nuclear",
    "sv_mean",
    "sv_var",
    "stable_rank",
    "effective_rank",
)


def _safe_div(a, b):
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def entry_metrics(x: jax.Array) -> dict[str, jax.Array]:
    """Norms and moments of a tensor's entries (any shape, flattened).

    Args:
      x: any array (float).

    Returns:
      ``{name: scalar}`` for :data:`ENTRY_METRICS`.
    """
    x = jnp.ravel(x).astype(jnp.float32)
    l1 = jnp.sum(jnp.abs(x))
    l2 = jnp.sqrt(jnp.sum(x * x))
    mean = jnp.mean(x)
    return {"l1": l1, "l2": l2, "l1_l2": _safe_div(l1, l2), "mean": mean, "var": jnp.var(x)}


def matrix_metrics(w: jax.Array) -> dict[str, jax.Array]:
    """All metrics of one matrix (:data:`MATRIX_METRICS`).

    Args:
      w: ``(m, n)`` weight matrix.

    Returns:
      ``{name: scalar}``.

    References: Hu et al. 2023 (Sec. 3); Roy & Vetterli 2007 Eq. (3).
    """
    if w.ndim != 2:
        raise ValueError(f"matrix_metrics: expected a (m, n) matrix, got shape {w.shape}")
    out = entry_metrics(w)
    s = jnp.linalg.svd(w.astype(jnp.float32), compute_uv=False)
    top, total = s[0], jnp.sum(s)
    p = _safe_div(s, total)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    out.update(
        frobenius=out["l2"],
        spectral=top,
        nuclear=total,
        sv_mean=jnp.mean(s),
        sv_var=jnp.var(s),
        stable_rank=_safe_div(out["l2"] ** 2, top**2),
        effective_rank=jnp.where(total > 0, jnp.exp(entropy), 0.0),
    )
    return out


def tensor_metrics(x: jax.Array) -> dict[str, jax.Array]:
    """:func:`matrix_metrics` for a matrix, :func:`entry_metrics` otherwise.

    A tensor of more than two dimensions is treated as ``(shape[0], -1)`` (rows =
    output units, as for convolution kernels in PyTorch layout)."""
    if x.ndim == 2:
        return matrix_metrics(x)
    if x.ndim > 2:
        return matrix_metrics(x.reshape(x.shape[0], -1))
    return entry_metrics(x)


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def tree_metrics_eager(tree, batch_dims: int = 0) -> dict[str, dict[str, jax.Array]]:
    """:func:`tree_metrics` without ``jax.jit`` (for checking jit == eager)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        fn = tensor_metrics
        for _ in range(batch_dims):
            fn = jax.vmap(fn)
        if leaf.ndim < batch_dims:
            raise ValueError(
                f"tree_metrics: leaf {_path_name(path)} has shape {leaf.shape}, fewer than "
                f"batch_dims={batch_dims} dimensions"
            )
        out[_path_name(path)] = fn(leaf)
    return out


@partial(jax.jit, static_argnames="batch_dims")
def tree_metrics(tree, batch_dims: int = 0) -> dict[str, dict[str, jax.Array]]:
    """Metrics of every leaf of a parameter (or gradient) tree, in one compiled call.

    Args:
      tree: a pytree of arrays (e.g. a model's parameters).
      batch_dims: leading axes mapped with ``vmap`` (1 for a population's
        ``(P, ...)`` parameters: one value per member).

    Returns:
      ``{"path/of/leaf": {metric: (*batch,)}}``, matrices with
      :data:`MATRIX_METRICS`, vectors with :data:`ENTRY_METRICS`.

    References: Hu et al. 2023, Sec. 3.
    """
    return tree_metrics_eager(tree, batch_dims)


@jax.jit
def tree_l2(tree) -> dict[str, jax.Array]:
    """The L2 norm of every leaf, in one compiled call (the ``l2`` entry of
    :func:`tree_metrics` without the spectra): ``{"path/of/leaf": ()}``.

    References: Hu et al. 2023, Sec. 3.
    """
    return {
        _path_name(path): jnp.sqrt(jnp.sum(jnp.square(leaf.astype(jnp.float32))))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def global_l2(tree) -> jax.Array:
    """``sqrt(sum over leaves of sum x^2)``: the global norm of a tree (e.g. a gradient)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError("global_l2: empty tree")
    return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves))
