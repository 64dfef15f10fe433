"""All-pairs linear CKA through one large block Gram per block of checkpoints.

Each view is factored once (``linear_cka_factor``: centred, weighted, scaled to unit
self-HSIC). The factors of a block of ``b`` checkpoints are laid side by side as
``Z (N, b D)``; one GEMM ``G = Z_I^T Z_J`` gives every cross product ``X_i^T Y_j`` of
the two blocks at once, and ``HSIC_ij = ||G_ij||_F^2`` is a reshape
``(b, D, b', D')`` plus a sum over the feature axes. One large GEMM per block pair
runs near peak throughput, unlike thousands of small ``D x D`` products. For
symmetric all-pairs only blocks ``I <= J`` are formed and the result is mirrored.
The debiased (unbiased HSIC) form adds per-view statistics through (C, C) products.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis import cka as _cka


def _block_pairs(nbx: int, nby: int, symmetric: bool):
    if symmetric:
        i, j = np.triu_indices(nbx)
    else:
        i, j = np.meshgrid(np.arange(nbx), np.arange(nby), indexing="ij")
    return i.ravel().astype(np.int32), j.ravel().astype(np.int32)


def _factors(xs, weights, debiased):
    """(L, C, N, D) -> stacked CKAFactor with leading (L, C) (factored one at a time)."""
    flat = xs.reshape((-1, *xs.shape[-2:]))
    f = jax.lax.map(lambda x: _cka.linear_cka_factor(x, weights, debiased), flat)
    return jax.tree.map(lambda t: t.reshape((*xs.shape[:2], *t.shape[1:])), f)


def _blocked(z, block: int):
    """(L, C, N, D) -> (L, nb, N, block * D), zero-padding C to a multiple of block."""
    lay, c, n, d = z.shape
    pad = (-c) % block
    if pad:
        z = jnp.concatenate([z, jnp.zeros((lay, pad, n, d), z.dtype)], axis=1)
    nb = z.shape[1] // block
    z = z.reshape(lay, nb, block, n, d)
    return jnp.transpose(z, (0, 1, 3, 2, 4)).reshape(lay, nb, n, block * d)


def gram_cka_all_pairs(xs, ys=None, weights=None, *, debiased: bool = False, block: int = 40):
    """Linear CKA of all pairs via blocked Grams of concatenated, normalised views.

    Args:
      xs: (L, C, N, D) stacks (L layers of C matrices).
      ys: None (all pairs within ``xs``, exactly symmetric result) or (L, C', N, D').
      weights: optional (N,) sample weights / 0-1 mask shared by all views (read as a
        0/1 mask when ``debiased``, as in ``linear_cka``).
      debiased: unbiased HSIC estimator (Song et al. 2012).
      block: checkpoints per block; peak Gram memory ``(block D) x (block D')`` floats.

    Returns:
      (L, C, C') CKA values, equal to ``linear_cka(x_i, y_j)`` (feature form) per pair;
      0 for degenerate (constant) views.

    References: Kornblith et al. 2019, Eq. (3)-(5) (linear CKA, ``||X^T Y||_F^2``);
    Song et al. 2012, Eq. (5) (unbiased HSIC).
    """
    symmetric = ys is None
    fx = _factors(xs, weights, debiased)
    fy = fx if symmetric else _factors(ys, weights, debiased)
    lay, cx = xs.shape[:2]
    cy = cx if symmetric else ys.shape[1]
    bx, by = min(block, cx), min(block, cy)
    zx = _blocked(fx.z, bx)
    zy = zx if symmetric else _blocked(fy.z, by)
    dx, dy = fx.z.shape[-1], fy.z.shape[-1]
    bi, bj = _block_pairs(zx.shape[1], zy.shape[1], symmetric)
    nbp = bi.size

    def one(idx):
        layer, i, j = idx
        g = zx[layer, i].T @ zy[layer, j]
        g = g.reshape(bx, dx, by, dy)
        return jnp.sum(g * g, axis=(1, 3))

    li = np.repeat(np.arange(lay, dtype=np.int32), nbp)
    ii, jj = np.tile(bi, lay), np.tile(bj, lay)
    vals = jax.lax.map(one, (jnp.asarray(li), jnp.asarray(ii), jnp.asarray(jj)))
    cpx, cpy = zx.shape[1] * bx, zy.shape[1] * by
    # scatter block (layer, i, j) into rows i*bx.., cols j*by..
    rows = (ii[:, None] * bx + np.arange(bx)[None, :])[:, :, None]
    cols = (jj[:, None] * by + np.arange(by)[None, :])[:, None, :]
    frob = jnp.zeros((lay, cpx, cpy), vals.dtype).at[li[:, None, None], rows, cols].set(vals)
    if symmetric:
        up = jnp.triu(frob)
        frob = up + jnp.swapaxes(jnp.triu(frob, 1), 1, 2)
    frob = frob[:, :cx, :cy]
    if not debiased:
        return frob
    kdl = jnp.einsum("lin,ljn->lij", fx.kd, fy.kd)
    k1x, k1y = jnp.sum(fx.k1, axis=-1), jnp.sum(fy.k1, axis=-1)
    k1k1 = jnp.einsum("lin,ljn->lij", fx.k1, fy.k1)
    h, _ = _cka._unbiased_terms(
        frob - kdl,
        k1x[:, :, None],
        k1y[:, None, :],
        k1k1,
        fx.n[:, :, None],
        frob + kdl,
    )
    if symmetric:
        h = jnp.triu(h) + jnp.swapaxes(jnp.triu(h, 1), 1, 2)
    return h


def _gram_block(c: int, d: int, gram_cols: int) -> int:
    """Checkpoints per Gram block: at most ``gram_cols`` columns, blocks balanced."""
    most = max(1, gram_cols // max(d, 1))
    nb = -(-c // most)
    return -(-c // nb)


def compiled_gram(debiased: bool, xshape, yshape, gram_cols: int):
    """Jitted ``run(xs, ys, weights)``: linear CKA of all pairs of ``pairwise`` stacks
    ``(..., C, N, D)`` via :func:`gram_cka_all_pairs`, blocks of <= ``gram_cols`` columns."""
    lead, c, n, d = xshape[:-3], *xshape[-3:]
    cy = c if yshape is None else yshape[-3]
    dy = d if yshape is None else yshape[-1]
    block = _gram_block(max(c, cy), max(d, dy), gram_cols)

    def run(xs, ys, weights):
        xf = xs.reshape((-1, c, n, d))
        yf = None if ys is None else ys.reshape((-1, cy, n, dy))
        out = gram_cka_all_pairs(xf, yf, weights, debiased=debiased, block=block)
        return out.reshape((*lead, c, cy))

    return jax.jit(run)
