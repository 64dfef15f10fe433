"""All-pairs CCA-family similarity from block cross products of the factored views.

Every view is factored once into a :class:`~jaxdyn.analysis._linalg.Basis`
``q = a @ w`` (``a: (N, A)`` the view itself or an explicit basis, ``w`` small). A
pair needs ``q_i^T q_j = w_i^T (a_i^T a_j) w_j``: the ``N``-long part is a cross
product of the ``a`` factors. As for linear CKA (:mod:`jaxdyn.analysis.cka_gram`),
the ``a`` of ``b`` views are laid side by side, ``Z_I: (N, b A)``, and one GEMM
``Z_I^T Z_J`` gives the cross products of all ``b x b`` pairs of two blocks; the rest
(``w`` products, the small SVD) is O(A^3) per pair. No per-pair copies of the
``N x A`` factors, and large GEMMs near the machine's peak rate.

For a symmetric metric within one stack only the needed products are formed: the
off-diagonal blocks ``I < J`` as above; inside a diagonal block, view ``a`` against
the views after it (``b - 1`` GEMMs, ``b (b - 1) / 2`` products instead of ``b^2``);
and no product at all for a view with itself, whose ``q^T q`` is the identity on its
kept directions by construction (the value from the identity is exact: 1 for a view
with any kept direction, 0 for a constant view).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.cka_gram import _block_pairs, _blocked


def _take(f, layer, idx):
    return jax.tree.map(lambda t: t[layer, idx], f)


def _diagonal_blocks(zx, small, pair_fn, b: int, c: int, lay: int):
    """Pairs ``a < c'`` inside each diagonal block: ``(L * nb, b (b - 1) / 2, *out)``."""
    ai, ci = np.triu_indices(b, 1)
    a_dim = zx.shape[-1] // b

    def one(idx):
        layer, blk = idx
        z = zx[layer, blk]
        views = jnp.minimum(blk * b + jnp.arange(b), c - 1)  # padded views: any valid one
        f = _take(small, layer, views)
        ms = []
        for a in range(b - 1):  # view a against views a+1..b-1: one GEMM each
            g = z[:, a * a_dim : (a + 1) * a_dim].T @ z[:, (a + 1) * a_dim :]
            g = g.reshape(a_dim, b - 1 - a, a_dim)
            ms.append(jnp.einsum("ak,ayb,ybl->ykl", f.w[a], g, f.w[a + 1 :]))
        m = jnp.concatenate(ms)
        fa, fc = jax.tree.map(lambda t: t[ai], f), jax.tree.map(lambda t: t[ci], f)
        return jax.vmap(pair_fn)(fa, fc, m)

    li = np.repeat(np.arange(lay, dtype=np.int32), zx.shape[1])
    bi = np.tile(np.arange(zx.shape[1], dtype=np.int32), lay)
    vals = jax.lax.map(one, (jnp.asarray(li), jnp.asarray(bi)))
    rows = bi[:, None] * b + ai[None, :]
    cols = bi[:, None] * b + ci[None, :]
    return li, rows, cols, vals


def _self_pairs(small, pair_fn):
    """Each view with itself, ``q^T q = diag(mask)``: ``(L, C, *out)``."""
    flat = jax.tree.map(lambda t: t.reshape((-1, *t.shape[2:])), small)
    eye = jax.vmap(lambda m: jnp.diag(m.astype(flat.w.dtype)))(flat.mask)
    vals = jax.vmap(pair_fn)(flat, flat, eye)
    return vals.reshape((*small.mask.shape[:2], *vals.shape[1:]))


def blocked_all_pairs(fx, fy, pair_fn, *, block: int, symmetric: bool):
    """``pair_fn(f_i, f_j, m_ij)`` for all pairs of two stacks of factors.

    Args:
      fx: Basis with leading (L, C) axes (``a: (L, C, N, A)``).
      fy: None (pairs within ``fx``) or a Basis with leading (L, C').
      pair_fn: ``(fi, fj, m) -> out`` with ``m = q_i^T q_j`` (e.g. ``svcca_pair``).
      block: views per block (peak memory ``(block A)^2`` floats per block pair).
      symmetric: the metric is symmetric; with ``fy`` None only the products of
        distinct views ``i < j`` are formed and the result mirrored.

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
    if mirror:  # diagonal blocks are handled apart
        off = bi < bj
        bi, bj = bi[off], bj[off]
    small_x = fx._replace(a=jnp.zeros(fx.a.shape[:2], fx.a.dtype))
    small_y = fy._replace(a=jnp.zeros(fy.a.shape[:2], fy.a.dtype))

    def views(f, layer, blk, b, c):
        return _take(f, layer, jnp.minimum(blk * b + jnp.arange(b), c - 1))

    def one(idx):
        layer, i, j = idx
        g = (zx[layer, i].T @ zy[layer, j]).reshape(bx, ax, by, ay)
        fi, fj = views(small_x, layer, i, bx, cx), views(small_y, layer, j, by, cy)
        m = jnp.einsum("xak,xayb,ybl->xykl", fi.w, g, fj.w)
        row = jax.vmap(pair_fn, in_axes=(None, 0, 0))
        return jax.vmap(row, in_axes=(0, None, 0))(fi, fj, m)

    cpx, cpy = zx.shape[1] * bx, zy.shape[1] * by
    selfs = _self_pairs(small_x, pair_fn) if mirror else None
    if bi.size:
        li = np.repeat(np.arange(lay, dtype=np.int32), bi.size)
        ii, jj = np.tile(bi, lay), np.tile(bj, lay)
        vals = jax.lax.map(one, (jnp.asarray(li), jnp.asarray(ii), jnp.asarray(jj)))
        rows = (ii[:, None] * bx + np.arange(bx)[None, :])[:, :, None]
        cols = (jj[:, None] * by + np.arange(by)[None, :])[:, None, :]
        full = jnp.zeros((lay, cpx, cpy, *vals.shape[3:]), vals.dtype)
        full = full.at[li[:, None, None], rows, cols].set(vals)
    else:  # one block: its pairs are all in the diagonal block
        full = jnp.zeros((lay, cpx, cpy, *selfs.shape[2:]), selfs.dtype)
    if not mirror:
        return full[:, :cx, :cy]
    if bx > 1:
        li, rows, cols, vals = _diagonal_blocks(zx, small_x, pair_fn, bx, cx, lay)
        full = full.at[li[:, None], rows, cols].set(vals)
    up_r, up_c = np.triu_indices(cpx, 1)
    full = full.at[:, up_c, up_r].set(full[:, up_r, up_c])
    diag = np.arange(cx)
    full = full.at[:, diag, diag].set(selfs)
    return full[:, :cx, :cx]


def compiled_blocked(spec, xshape, yshape, gram_cols: int):
    """Jitted ``run(xs, ys, weights)``: CCA-family all pairs of ``pairwise`` stacks.

    ``spec``: ``pairwise``'s metric spec (``factor(x, weights) -> Basis``, ``pair``,
    ``symmetric``); at most 4 views per block (little triangle waste) and at most
    ``gram_cols`` columns.
    """
    lead, c, d = xshape[:-3], xshape[-3], xshape[-1]
    cy = c if yshape is None else yshape[-3]
    dy = d if yshape is None else yshape[-1]
    block = max(1, min(4, gram_cols // max(d, dy, 1)))

    def stack(zs, cc, weights):
        flat = zs.reshape((-1, *zs.shape[-2:]))
        f = jax.lax.map(lambda x: spec.factor(x, weights), flat)
        return jax.tree.map(lambda t: t.reshape((-1, cc, *t.shape[1:])), f)

    def run(xs, ys, weights):
        fx = stack(xs, c, weights)
        fy = None if ys is None else stack(ys, cy, weights)
        out = blocked_all_pairs(fx, fy, spec.pair, block=block, symmetric=spec.symmetric)
        return out.reshape((*lead, c, cy, *out.shape[3:]))

    return jax.jit(run)
