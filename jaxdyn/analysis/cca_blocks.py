"""All-pairs CCA-family similarity from block cross products of the factored views.

Every view is factored once into a :class:`~jaxdyn.analysis._linalg.Basis`
``q = a @ w`` (``a: (N, A)`` the view itself or an explicit basis, ``w`` small). A
pair needs ``q_i^T q_j = w_i^T (a_i^T a_j) w_j``: the ``N``-long part is a cross
product of the ``a`` factors. As for linear CKA (:mod:`jaxdyn.analysis.cka_gram`),
the ``a`` of ``b`` views are laid side by side, ``Z_I: (N, b A)``, and one GEMM
``Z_I^T Z_J`` gives the cross products of all ``b x b`` pairs of two blocks; the rest
(``w`` products, the small SVD) is O(A^3) per pair. No per-pair copies of the
``N x A`` factors, and large GEMMs near the machine's peak rate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.cka_gram import _block_pairs, _blocked


def blocked_all_pairs(fx, fy, pair_fn, *, block: int, symmetric: bool):
    """``pair_fn(f_i, f_j, m_ij)`` for all pairs of two stacks of factors.

    Args:
      fx: Basis with leading (L, C) axes (``a: (L, C, N, A)``).
      fy: None (pairs within ``fx``) or a Basis with leading (L, C').
      pair_fn: ``(fi, fj, m) -> out`` with ``m = q_i^T q_j`` (e.g. ``svcca_pair``).
      block: views per block (peak memory ``(block A)^2`` floats per block pair).
      symmetric: the metric is symmetric; with ``fy`` None only blocks ``I <= J`` are
        formed and the result mirrored.

    Returns:
      (L, C, C', *out).

    References: Bjoerck & Golub 1973 (CCA from orthonormal bases); Raghu et al. 2017.
    """
    same = fy is None
    fy = fx if same else fy
    lay, cx = fx.a.shape[:2]
    cy = fy.a.shape[1]
    bx, by = min(block, cx), min(block, cy)
    zx = _blocked(fx.a, bx)
    zy = zx if same and bx == by else _blocked(fy.a, by)
    ax, ay = fx.a.shape[-1], fy.a.shape[-1]
    mirror = symmetric and same
    bi, bj = _block_pairs(zx.shape[1], zy.shape[1], mirror)
    small_x = fx._replace(a=jnp.zeros(fx.a.shape[:2], fx.a.dtype))
    small_y = fy._replace(a=jnp.zeros(fy.a.shape[:2], fy.a.dtype))

    def views(f, layer, blk, b, c):
        idx = jnp.minimum(blk * b + jnp.arange(b), c - 1)  # padded views: any valid one
        return jax.tree.map(lambda t: t[layer, idx], f)

    def one(idx):
        layer, i, j = idx
        g = (zx[layer, i].T @ zy[layer, j]).reshape(bx, ax, by, ay)
        fi, fj = views(small_x, layer, i, bx, cx), views(small_y, layer, j, by, cy)
        m = jnp.einsum("xak,xayb,ybl->xykl", fi.w, g, fj.w)
        row = jax.vmap(pair_fn, in_axes=(None, 0, 0))
        return jax.vmap(row, in_axes=(0, None, 0))(fi, fj, m)

    li = np.repeat(np.arange(lay, dtype=np.int32), bi.size)
    ii, jj = np.tile(bi, lay), np.tile(bj, lay)
    vals = jax.lax.map(one, (jnp.asarray(li), jnp.asarray(ii), jnp.asarray(jj)))
    out_shape = vals.shape[3:]
    cpx, cpy = zx.shape[1] * bx, zy.shape[1] * by
    rows = (ii[:, None] * bx + np.arange(bx)[None, :])[:, :, None]
    cols = (jj[:, None] * by + np.arange(by)[None, :])[:, None, :]
    full = jnp.zeros((lay, cpx, cpy, *out_shape), vals.dtype)
    full = full.at[li[:, None, None], rows, cols].set(vals)
    if mirror:
        r, c = np.triu_indices(cpx)
        up = full[:, r, c]
        full = full.at[:, c, r].set(up)
    return full[:, :cx, :cy]
