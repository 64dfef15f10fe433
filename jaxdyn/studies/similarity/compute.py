"""Comparisons and diagnostic probes of the similarity study.

Comparisons are sparse lists of pairs over one corpus's activation matrices
(every run x checkpoint of one layer): the language model against each tagger
at the same epoch, each model against its own final checkpoint, and taggers of
different tasks against each other at the same epoch. :func:`paired_similarity`
factors every matrix once (``cca_factor`` / ``linear_cka_factor``) and
evaluates only the listed pairs (``svcca_pair``, ``pwcca_pair``,
``linear_cka_pair``), ``chunk`` pairs at a time, in one compiled call.

Probes: one-hidden-layer MLPs on frozen activations (standardised with the
probe-training statistics), trained full batch with AdamW, many at once with
``vmap``; accuracy is measured on disjoint held-out positions.
"""

from __future__ import annotations

import csv
import functools
import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

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
    from jaxdyn.studies.similarity import layer_order

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


def _mlp(params, x):
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def _probe_one(x_tr, y_tr, m_tr, x_te, y_te, m_te, key, *, classes, hidden, steps, lr, wd):
    mu = jnp.sum(x_tr * m_tr[:, None], 0) / jnp.maximum(jnp.sum(m_tr), 1)
    var = jnp.sum(((x_tr - mu) ** 2) * m_tr[:, None], 0) / jnp.maximum(jnp.sum(m_tr), 1)
    sd = jnp.where(var > 0, jnp.sqrt(var), 1)
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    d = x_tr.shape[1]
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (d, hidden)) * jnp.sqrt(2.0 / d),
        "b1": jnp.zeros((hidden,)),
        "w2": jax.random.normal(k2, (hidden, classes)) * jnp.sqrt(1.0 / hidden),
        "b2": jnp.zeros((classes,)),
    }
    tx = optax.adamw(lr, weight_decay=wd)
    wsum = jnp.maximum(jnp.sum(m_tr), 1)

    def loss(p):
        ce = optax.softmax_cross_entropy_with_integer_labels(_mlp(p, x_tr), y_tr)
        return jnp.sum(ce * m_tr) / wsum

    def step(carry, _):
        p, s = carry
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)

    def acc(x, y, m):
        hit = (jnp.argmax(_mlp(params, x), -1) == y).astype(x.dtype)
        return jnp.sum(hit * m) / jnp.maximum(jnp.sum(m), 1)

    return acc(x_tr, y_tr, m_tr), acc(x_te, y_te, m_te)


@functools.partial(jax.jit, static_argnames=("classes", "hidden", "steps", "lr", "wd"))
def _probes(x_tr, y_tr, m_tr, x_te, y_te, m_te, key, *, classes, hidden, steps, lr, wd):
    f = functools.partial(
        _probe_one, classes=classes, hidden=hidden, steps=steps, lr=lr, wd=wd, key=key
    )
    return jax.vmap(lambda a, b: f(a, y_tr, m_tr, b, y_te, m_te))(x_tr, x_te)


def probe_accuracy(
    feats,
    labels,
    mask,
    train_sel,
    *,
    classes: int,
    hidden: int = 64,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Train one MLP probe per activation matrix and measure its accuracy.

    Args:
      feats: (P, N, D) frozen activations (P probes, e.g. layers x checkpoints).
      labels: (N,) int labels in ``[0, classes)``.
      mask: (N,) bool, samples that count (e.g. not ``eos``).
      train_sel: (N,) bool, probe-training samples; the rest are the test samples.
      classes: number of classes (static).
      hidden, steps, lr, weight_decay: the MLP and its full-batch AdamW training.

    Returns:
      ``(train_acc (P,), test_acc (P,))`` as NumPy arrays.

    References: Hupkes et al. 2018 (diagnostic classifiers); Saphra & Lopez 2019, Sec. 5.
    """
    feats = jnp.asarray(feats, jnp.float32)
    labels, mask, train_sel = (
        np.asarray(labels),
        np.asarray(mask, bool),
        np.asarray(train_sel, bool),
    )
    if feats.ndim != 3 or labels.shape != (feats.shape[1],) or mask.shape != labels.shape:
        raise ValueError(
            f"feats (P, N, D), labels (N,), mask (N,): got {feats.shape}, {labels.shape}, {mask.shape}"
        )
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"labels must lie in [0, {classes})")
    tr, te = np.nonzero(train_sel)[0], np.nonzero(~train_sel)[0]
    if not (mask[tr].any() and mask[te].any()):
        raise ValueError("probe needs unmasked samples in both the training and the test split")
    a, b = _probes(
        feats[:, tr],
        jnp.asarray(labels[tr]),
        jnp.asarray(mask[tr], jnp.float32),
        feats[:, te],
        jnp.asarray(labels[te]),
        jnp.asarray(mask[te], jnp.float32),
        jax.random.PRNGKey(seed),
        classes=int(classes),
        hidden=int(hidden),
        steps=int(steps),
        lr=float(lr),
        wd=float(weight_decay),
    )
    return np.asarray(a), np.asarray(b)


def majority_accuracy(labels, mask, train_sel) -> float:
    """Test accuracy of always predicting the most frequent probe-training label."""
    labels, mask, train_sel = (
        np.asarray(labels),
        np.asarray(mask, bool),
        np.asarray(train_sel, bool),
    )
    tr = labels[train_sel & mask]
    te = labels[~train_sel & mask]
    if tr.size == 0 or te.size == 0:
        return float("nan")
    return float(np.mean(te == np.bincount(tr).argmax()))


def row_split(rows: int, cols: int, frac: float) -> np.ndarray:
    """(rows * cols,) bool: the first ``frac`` of every row's positions train the probe.

    Contiguous spans keep neighbouring (correlated) tokens on one side of the split.
    """
    if not 0 < frac < 1:
        raise ValueError(f"probe_train_frac must be in (0, 1), got {frac}")
    cut = min(max(round(cols * frac), 1), cols - 1) if cols > 1 else 0
    if cut == 0:
        raise ValueError(f"need at least 2 held-out positions per row, got {cols}")
    return np.tile(np.arange(cols) < cut, rows)
