"""Comparisons of the similarity study.

Comparisons are sparse lists of pairs over one corpus's activation matrices
(every run x checkpoint of one layer): the language model against each tagger
at the same epoch, each model against its own final checkpoint, and taggers of
different tasks against each other at the same epoch. :func:`paired_similarity`
factors every matrix once (``cca_factor`` / ``linear_cka_factor``) and
evaluates only the listed pairs (``svcca_pair``, ``pwcca_pair``,
``linear_cka_pair``), ``chunk`` pairs at a time, in one compiled call.
"""

from __future__ import annotations

import csv
import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis._linalg import float_dtype, sample_weights
from jaxdyn.analysis.cka import linear_cka_factor, linear_cka_pair
from jaxdyn.analysis.similarity import cca_factor, pwcca_pair, svcca_pair

METRICS = ("svcca", "pwcca", "cka")
COLUMNS = ("corpus", "comparison", "task", "init", "other", "layer", "epoch", "metric", "value")


def _metric(metric: str, keep: float, method: str):
    if metric in ("svcca", "pwcca"):
        k = keep if metric == "svcca" else None

        def factor(x):
            return cca_factor(x, sample_weights(x.shape[0], None, float_dtype(x)), k, method)

        return factor, svcca_pair if metric == "svcca" else pwcca_pair
    if metric == "cka":
        return (lambda x: linear_cka_factor(x, None)), linear_cka_pair
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


@functools.partial(jax.jit, static_argnames=("metric", "keep", "method", "chunk"))
def _paired(mats, left, right, *, metric, keep, method, chunk):
    factor, pair = _metric(metric, keep, method)
    factors = jax.lax.map(factor, mats)
    p = left.shape[0]
    pad = (-p) % chunk
    li = jnp.concatenate([left, jnp.zeros((pad,), left.dtype)]).reshape(-1, chunk)
    ri = jnp.concatenate([right, jnp.zeros((pad,), right.dtype)]).reshape(-1, chunk)

    def one(idx):
        a = jax.tree.map(lambda t: t[idx[0]], factors)
        b = jax.tree.map(lambda t: t[idx[1]], factors)
        return jax.vmap(pair)(a, b)

    return jax.lax.map(one, (li, ri)).reshape(-1)[:p]


def paired_similarity(
    mats,
    left,
    right,
    metric: str,
    *,
    keep: float = 0.99,
    method: str = "svd",
    chunk: int = 32,
) -> np.ndarray:
    """Similarity of listed pairs of activation matrices, each matrix factored once.

    Args:
      mats: (M, N, D) activation matrices (samples first).
      left, right: (P,) indices into ``mats``; pair p compares ``mats[left[p]]``
        with ``mats[right[p]]`` (PWCCA weights come from the left one).
      metric: ``svcca`` (variance fraction ``keep``), ``pwcca`` (full rank) or
        ``cka`` (linear, biased HSIC).
      method: CCA factorisation, ``svd`` or ``gram``.
      chunk: pairs evaluated together.

    Returns:
      (P,) similarities as a NumPy array.

    References: Raghu et al. 2017 (SVCCA, Sec. 2); Morcos et al. 2018 (PWCCA,
    Sec. 2.2); Kornblith et al. 2019 (linear CKA, Eq. 3-4).
    """
    mats = jnp.asarray(mats)
    left, right = np.asarray(left, np.int32), np.asarray(right, np.int32)
    if mats.ndim != 3 or mats.shape[1] < 2:
        raise ValueError(f"paired_similarity: mats must be (M, N >= 2, D), got {mats.shape}")
    if left.shape != right.shape or left.ndim != 1:
        raise ValueError(f"left {left.shape} and right {right.shape} must be equal (P,) arrays")
    if left.size == 0:
        return np.zeros((0,), np.float32)
    if min(left.min(), right.min()) < 0 or max(left.max(), right.max()) >= mats.shape[0]:
        raise ValueError(f"pair indices out of range for {mats.shape[0]} matrices")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = _paired(
        mats,
        jnp.asarray(left),
        jnp.asarray(right),
        metric=metric,
        keep=keep,
        method=method,
        chunk=int(min(chunk, left.size)),
    )
    out = np.asarray(jax.device_get(out))
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{metric}: non-finite similarity in {out}")
    return out


def comparison_pairs(runs, epochs: list[int], pos_like: tuple[str, ...] = ()) -> list[dict]:
    """The study's comparisons as pairs of (run index, checkpoint index).

    Args:
      runs: :class:`~jaxdyn.studies.similarity.RunSpec` list, language model first.
      epochs: checkpoint epochs shared by all runs.

    Returns:
      Dicts with ``comparison`` (``lm-vs-tagger``, ``vs-own-final``,
      ``tagger-vs-tagger``), ``task``, ``init``, ``other``, ``epoch``, ``a``, ``b``
      (matrix indices ``run * C + checkpoint``).
    """
    c = len(epochs)
    out = []
    lm = next(i for i, r in enumerate(runs) if r.task == "lm")
    for i, r in enumerate(runs):
        for k, e in enumerate(epochs):
            if r.task != "lm":
                out.append(_row("lm-vs-tagger", r.task, r.init, "lm", e, lm * c + k, i * c + k))
            out.append(_row("vs-own-final", r.task, r.init, "final", e, i * c + k, i * c + c - 1))
    for (i, r), (j, s) in itertools.combinations(enumerate(runs), 2):
        if "lm" in (r.task, s.task) or r.init != s.init or r.task == s.task:
            continue
        for k, e in enumerate(epochs):
            out.append(_row("tagger-vs-tagger", r.task, r.init, s.task, e, i * c + k, j * c + k))
    return out


def _row(comparison, task, init, other, epoch, a, b):
    return {
        "comparison": comparison,
        "task": task,
        "init": init,
        "other": other,
        "epoch": epoch,
        "a": a,
        "b": b,
    }


def compare_runs(corpus: str, runs, epochs, acts, cfg) -> list[dict]:
    """All comparisons of one corpus, every layer and metric, as tidy rows.

    Args:
      corpus: corpus name.
      runs: run specs (language model first).
      epochs: shared checkpoint epochs.
      acts: ``{run name: {layer: (C, N, D)}}``.
      cfg: :class:`~jaxdyn.studies.similarity.SimilarityConfig`.
    """
    from jaxdyn.studies.similarity.runs import layer_order

    pairs = comparison_pairs(runs, epochs)
    left = np.array([p["a"] for p in pairs])
    right = np.array([p["b"] for p in pairs])
    rows = []
    for layer in layer_order(acts[runs[0].name]):
        mats = np.concatenate([acts[r.name][layer] for r in runs])
        for metric in METRICS:
            vals = paired_similarity(
                mats,
                left,
                right,
                metric,
                keep=cfg.svcca_keep,
                method=cfg.cca_method,
                chunk=cfg.pair_chunk,
            )
            for p, v in zip(pairs, vals):
                rows.append(
                    {
                        "corpus": corpus,
                        **{k: p[k] for k in ("comparison", "task", "init", "other", "epoch")},
                        "layer": layer,
                        "metric": metric,
                        "value": float(v),
                    }
                )
    return rows


def write_rows(path: Path, rows: list[dict], columns) -> None:
    """Write tidy rows as CSV (floats with 6 significant digits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in columns])


# ----------------------------------------------------------------------------- probes
