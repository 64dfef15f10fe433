"""Diagnostic probes of the similarity study: one-hidden-layer MLPs on frozen activations.

Standardised with the probe-training statistics, trained full batch with AdamW,
many at once with ``vmap``; accuracy is measured on disjoint held-out positions.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


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
