"""All-pairs similarity over stacks of activation matrices in one compiled call.

Algorithm (factor once, pair cheaply): each activation matrix ``(N, D)`` is factored
once (for CCA-family metrics an orthonormal basis of its centred, kept subspace
via a ``D x D`` Gram eigendecomposition + CholeskyQR2, O(N D^2 + D^3); for linear
CKA its centred, HSIC-normalised features). A pair then costs one ``D x D`` cross
product (O(N D^2), a batched GEMM) plus an O(D^3) singular-value step, instead of
re-centring and re-decomposing both matrices per pair. Pairs are enumerated
statically (one triangle with diagonal for symmetric metrics, all ordered pairs
for PWCCA) or given as an explicit list (``pairs=``, a runtime array: a new list of
the same length reuses the compiled call), processed ``chunk_size`` at a time with
``lax.map`` (memory bounded by ``chunk_size`` pairs), so cost is linear in the
number of pairs. With
``shard=True`` the matrices and pairs are split across all local devices
(``shard_map`` over one mesh axis; factors are all-gathered once).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdyn.analysis import cca_blocks as _cca_blocks
from jaxdyn.analysis import cka as _cka
from jaxdyn.analysis import cka_gram as _cka_gram
from jaxdyn.analysis import google_svcca as _google
from jaxdyn.analysis import similarity as _sim
from jaxdyn.analysis._linalg import float_dtype, sample_weights
from jaxdyn.analysis._sim_checks import check_convention, check_google, check_keep


class _Spec(NamedTuple):
    factor: Callable  # (x (N, D), weights (N,) | None) -> pytree
    pair: Callable  # (fx, fy) -> array
    symmetric: bool


def _cca_like(pair_fn, symmetric, keep, method):
    def factor(x, weights):
        return _sim.cca_factor(x, _weighted(x, weights), keep, method)

    return _Spec(factor, pair_fn, symmetric)


def _callable_spec(metric, symmetric):
    def pair(fx, fy):
        (x, w), (y, _) = fx, fy
        return metric(x, y) if w is None else metric(x, y, weights=w)

    return _Spec(lambda x, w: (x, w), pair, symmetric)


def _weighted(x, weights):
    return sample_weights(x.shape[0], weights, float_dtype(x))


def _spec(metric, options: dict, method: str) -> _Spec:
    opts = dict(options)

    def take(name, default):
        return opts.pop(name, default)

    if callable(metric):
        spec = _callable_spec(metric, bool(take("symmetric", False)))
    elif metric == "cca":
        spec = _cca_like(_sim.cca_pair, True, None, method)
    elif metric == "svcca":
        keep = take("keep", 0.99)
        check_keep(keep, "pairwise svcca")
        spec = _cca_like(_sim.svcca_pair, True, keep, method)
    elif metric == "pwcca":
        keep, conv, eps = take("keep", None), take("convention", "paper"), take("epsilon", 0.0)
        check_keep(keep, "pairwise pwcca")
        check_convention(conv, keep, "pairwise pwcca", eps)
        check_google(eps, 1.0, "pairwise pwcca")
        if conv == "google":

            def gfactor(x, weights):
                return _google.google_factor(x, _weighted(x, weights), eps)

            spec = _Spec(gfactor, _google.google_pwcca_pair, False)
        else:
            spec = _cca_like(_sim.pwcca_pair, False, keep, method)
    elif metric == "google":
        eps, thr = take("epsilon", 0.0), take("threshold", 0.98)
        check_google(eps, thr, "pairwise google")

        def gfactor(x, weights):
            return _google.google_factor(x, _weighted(x, weights), eps)

        spec = _Spec(gfactor, functools.partial(_google.google_pair, threshold=thr), True)
    elif metric == "linear_cka":
        deb = bool(take("debiased", False))
        spec = _Spec(
            functools.partial(_cka.linear_cka_factor, debiased=deb),
            functools.partial(_cka.linear_cka_pair, debiased=deb),
            True,
        )
    elif metric == "rbf_cka":
        sigma, deb = take("sigma", 0.8), bool(take("debiased", False))
        pair = functools.partial(_rbf_pair, sigma=sigma, debiased=deb)
        spec = _Spec(lambda x, w: (x, w), pair, True)
    else:
        raise ValueError(
            "metric must be a callable or one of 'cca', 'svcca', 'pwcca', 'google', "
            f"'linear_cka', 'rbf_cka'; got {metric!r}"
        )
    if opts:
        raise ValueError(f"unknown options for metric {metric!r}: {sorted(opts)}")
    return spec


def _takes_weights(fn) -> bool:
    """Whether a metric callable accepts a ``weights=`` keyword (True if unknowable)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "weights" or p.kind is p.VAR_KEYWORD for p in params)


def _rbf_pair(fx, fy, sigma, debiased):
    return _cka.rbf_cka(fx[0], fy[0], sigma, debiased, weights=fx[1])


def _pair_indices(cx: int, cy: int, triangle: bool):
    if triangle:
        i, j = np.triu_indices(cx)
    else:
        i, j = np.meshgrid(np.arange(cx), np.arange(cy), indexing="ij")
    return i.ravel(), j.ravel()


@functools.lru_cache(maxsize=64)
def _compiled(
    metric,
    opts: tuple,
    method: str,
    xshape,
    yshape,
    chunk: int,
    shard: bool,
    gram_cols: int = 0,
    n_listed: int = -1,
):
    """One jitted ``run(xs, ys, weights, pairs)``; ``n_listed >= 0``: explicit pairs."""
    spec = _spec(metric, dict(opts), method)
    if metric == "linear_cka" and not shard and gram_cols > 0 and n_listed < 0:
        return _cka_gram.compiled_gram(
            bool(dict(opts).get("debiased", False)), xshape, yshape, gram_cols
        )
    if _blockable(metric, dict(opts)) and not shard and gram_cols > 0 and n_listed < 0:
        return _cca_blocks.compiled_blocked(spec, xshape, yshape, gram_cols)
    lead, cx = xshape[:-3], xshape[-3]
    cy = cx if yshape is None else yshape[-3]
    n_layers = int(np.prod(lead, dtype=int))
    triangle = spec.symmetric and yshape is None and n_listed < 0
    if n_listed < 0:
        pi, pj = _pair_indices(cx, cy, triangle)
    else:
        pi = pj = np.zeros(n_listed, int)  # unused: the pair list arrives as a runtime argument
    li = np.repeat(np.arange(n_layers), pi.size)
    n_pairs = li.size
    devices = np.array(jax.devices()) if shard else None
    ndev = devices.size if shard else 1
    block = chunk * ndev
    pad = (-n_pairs) % block
    mpad_x = (-(n_layers * cx)) % ndev
    mpad_y = (-(n_layers * cy)) % ndev

    def body(xs_l, ys_l, ii, jj, weights):
        fx = jax.lax.map(lambda x: spec.factor(x, weights), xs_l)
        fy = fx if ys_l is None else jax.lax.map(lambda y: spec.factor(y, weights), ys_l)
        if shard:
            gather = functools.partial(jax.lax.all_gather, axis_name="p", tiled=True)
            fx = jax.tree.map(gather, fx)
            fy = fx if ys_l is None else jax.tree.map(gather, fy)

        def one_chunk(idx):
            a = jax.tree.map(lambda t: t[idx[0]], fx)
            b = jax.tree.map(lambda t: t[idx[1]], fy)
            return jax.vmap(spec.pair)(a, b)

        out = jax.lax.map(one_chunk, (ii.reshape(-1, chunk), jj.reshape(-1, chunk)))
        return out.reshape((-1, *out.shape[2:]))

    def indices(pairs):
        if n_listed < 0:
            gi, gj = li * cx + np.tile(pi, n_layers), li * cy + np.tile(pj, n_layers)
        else:
            layer = jnp.asarray(li, jnp.int32)
            gi = layer * cx + jnp.tile(pairs[:, 0], n_layers)
            gj = layer * cy + jnp.tile(pairs[:, 1], n_layers)
        fill = jnp.zeros((pad,), jnp.int32)
        return (
            jnp.concatenate([jnp.asarray(gi, jnp.int32), fill]),
            jnp.concatenate([jnp.asarray(gj, jnp.int32), fill]),
        )

    def run(xs, ys, weights, pairs):
        xf = xs.reshape((-1, *xs.shape[-2:]))
        yf = None if ys is None else ys.reshape((-1, *ys.shape[-2:]))
        if mpad_x:
            xf = jnp.concatenate([xf, jnp.zeros((mpad_x, *xf.shape[1:]), xf.dtype)])
        if yf is not None and mpad_y:
            yf = jnp.concatenate([yf, jnp.zeros((mpad_y, *yf.shape[1:]), yf.dtype)])
        ii, jj = indices(pairs)
        if shard:
            mesh = Mesh(devices, ("p",))
            p, r = PartitionSpec("p"), PartitionSpec()
            f = jax.shard_map(
                body,
                mesh=mesh,
                in_specs=(p, None if yf is None else p, p, p, r),
                out_specs=p,
                check_vma=False,
            )
            vals = f(xf, yf, ii, jj, weights)
            vals = jax.lax.with_sharding_constraint(vals, NamedSharding(mesh, r))
        else:
            vals = body(xf, yf, ii, jj, weights)
        vals = vals[:n_pairs]
        if n_listed >= 0:
            return vals.reshape((*lead, n_listed, *vals.shape[1:]))
        out = jnp.zeros((n_layers, cx, cy, *vals.shape[1:]), vals.dtype)
        li_, pi_, pj_ = li, np.tile(pi, n_layers), np.tile(pj, n_layers)
        out = out.at[li_, pi_, pj_].set(vals)
        if triangle:
            out = out.at[li_, pj_, pi_].set(vals)
        return out.reshape((*lead, cx, cy, *vals.shape[1:]))

    return jax.jit(run)


def _blockable(metric, opts: dict) -> bool:
    """Metrics whose factors are Bases (pairs from block cross products)."""
    return metric in ("cca", "svcca") or (
        metric == "pwcca" and opts.get("convention", "paper") == "paper"
    )


def _check_pairs(pairs, cx: int, cy: int) -> np.ndarray:
    try:
        arr = np.asarray(pairs)
    except Exception as e:  # e.g. a tracer: the list must be concrete to be checked
        raise ValueError(f"pairwise: pairs must be a concrete (P, 2) int array ({e})") from e
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"pairwise: pairs must be a (P, 2) int array, got {arr.shape} {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr[:, 0].max() >= cx or arr[:, 1].max() >= cy):
        raise ValueError(f"pairwise: pairs hold indices out of range for C={cx} and C'={cy}")
    return arr.astype(np.int32)


def pairwise(
    metric: str | Callable,
    xs,
    ys=None,
    *,
    pairs=None,
    weights=None,
    chunk_size: int = 16,
    method: str = "gram",
    shard: bool = False,
    gram_cols: int = 2048,
    **options,
):
    """Similarity of all pairs (or of listed pairs) of activation matrices, in one compiled call.

    Args:
      metric: "cca" (vector of correlations per pair), "svcca" (option ``keep``),
        "pwcca" (``keep``, ``convention`` "paper" or "google", ``epsilon`` for google;
        asymmetric, weights from the ``xs`` side in the paper's convention), "google"
        (``epsilon``, ``threshold``; google/svcca's summary), "linear_cka"
        (``debiased``), "rbf_cka" (``sigma``, ``debiased``; no factoring, N x N
        Grams per pair), or a kernel ``f(x, y) -> array`` (option ``symmetric``;
        called as ``f(x, y, weights=weights)`` when ``weights`` are given, so it must
        accept that keyword then).
      xs: (..., C, N, D) stack, e.g. (checkpoints, N, D) or (layers, checkpoints, N, D).
      ys: None (pairs within ``xs``: one triangle for symmetric metrics, mirrored)
        or (..., C', N, D') with the same leading dims (all C x C' pairs).
      pairs: optional (P, 2) int array (concrete): pair p compares ``xs[..., i, :, :]``
        with ``ys[..., j, :, :]`` (``xs`` again when ``ys`` is None) for
        ``(i, j) = pairs[p]``; only those are evaluated (each matrix still factored
        once) and the result is ``(..., P, *out)``. A new list of the same length
        reuses the compiled call; "linear_cka" then takes the per-pair path.
      weights: optional (N,) per-sample weights / 0-1 mask shared by all matrices.
      chunk_size: pairs processed together (peak memory ~ chunk_size * 2 * N * D).
      method: factorisation for CCA metrics, "gram" (D x D, for N >> D) or "svd".
      shard: split matrices and pairs across all local devices (``jax.devices()``).
      gram_cols: without ``shard`` or ``pairs``, for "linear_cka", "cca", "svcca" and
        "pwcca" (paper convention): views are factored once, laid side by side in
        blocks of at most ``gram_cols`` columns (checkpoints x units; at most 4 views
        for the CCA family) and each block pair's cross products come from one large
        GEMM (peak memory ~ gram_cols^2 floats); ``chunk_size`` is then unused.
        0: per-pair path.

    Returns:
      (..., C, C', *out), or (..., P, *out) with ``pairs``; out = () for scalar
      metrics, (min(D, D'),) for "cca".

    References: Raghu et al. 2017 (SVCCA); Morcos et al. 2018 (PWCCA); Kornblith et
    al. 2019 (CKA); Bjoerck & Golub 1973 (CCA via orthonormal bases).
    """
    xs = jnp.asarray(xs)
    if xs.ndim < 3:
        raise ValueError(f"pairwise: xs must be (..., C, N, D), got {xs.shape}")
    if ys is not None:
        ys = jnp.asarray(ys)
        if ys.ndim != xs.ndim or ys.shape[:-3] != xs.shape[:-3] or ys.shape[-2] != xs.shape[-2]:
            raise ValueError(f"pairwise: ys {ys.shape} incompatible with xs {xs.shape}")
    if chunk_size < 1:
        raise ValueError(f"pairwise: chunk_size must be >= 1, got {chunk_size}")
    if gram_cols < 0:
        raise ValueError(f"pairwise: gram_cols must be >= 0, got {gram_cols}")
    n_min = 4 if metric in ("linear_cka", "rbf_cka") and options.get("debiased") else 2
    if not callable(metric) and xs.shape[-2] < n_min:
        # as the single-pair kernels: no silent all-zero result for too few samples
        raise ValueError(f"pairwise {metric}: needs at least {n_min} samples, got N={xs.shape[-2]}")
    if weights is not None and jnp.shape(weights) != (xs.shape[-2],):
        raise ValueError(f"pairwise: weights must be ({xs.shape[-2]},), got {jnp.shape(weights)}")
    if weights is not None and callable(metric) and not _takes_weights(metric):
        raise ValueError(
            "pairwise: weights were given but the metric callable takes no `weights` "
            "keyword, so they would be ignored; accept `weights=` in the callable "
            "(e.g. lambda x, y, weights: f(x, y, weights=weights)) or drop weights"
        )
    listed = None
    if pairs is not None:
        listed = _check_pairs(pairs, xs.shape[-3], (xs if ys is None else ys).shape[-3])
        if listed.shape[0] == 0:  # evaluate one pair for the output's shape and dtype
            out = pairwise(
                metric,
                xs,
                ys,
                pairs=np.zeros((1, 2), np.int32),
                weights=weights,
                chunk_size=1,
                method=method,
                shard=shard,
                **options,
            )
            return out[..., :0, *([slice(None)] * (out.ndim - xs.ndim + 2))]
        chunk_size = min(chunk_size, listed.shape[0])
    fast_gram = (
        (metric == "linear_cka" or (isinstance(metric, str) and _blockable(metric, options)))
        and gram_cols
        and not shard
        and listed is None
    )
    fn = _compiled(
        metric,
        tuple(sorted(options.items())),
        method,
        xs.shape,
        None if ys is None else ys.shape,
        int(chunk_size),
        bool(shard),
        # only a fast-path call carries gram_cols (other metrics keep one cache key)
        *((int(gram_cols),) if fast_gram else ()),
        **({} if listed is None else {"n_listed": int(listed.shape[0])}),
    )
    if fast_gram:
        return fn(xs, ys, weights)
    return fn(xs, ys, weights, None if listed is None else jnp.asarray(listed))
