"""Syntactic attention structure: attachment scores of attention heads against a parse.

For one sentence of ``T`` positions, head ``h``'s attention probabilities ``A_h``
``(T_query, T_key)`` and the dependency parse as ``heads[i]`` (the position of word
``i``'s syntactic head, ``-1`` for the root, padding and positions that are not
words), the arcs are ``E = {(i, heads[i]) : heads[i] >= 0}``. With the argmax of each
query's attention over the valid keys, ``a_h(i) = argmax_{j valid} A_h[i, j]``, an arc
``(d, g)`` (dependent ``d``, head ``g``) is recovered

* from the dependent to its head when ``a_h(d) = g``,
* from the head to its dependent when ``a_h(g) = d``,
* in either direction (Chen et al.'s undirected arcs) when either holds.

The unlabeled attachment score of a head is the fraction of arcs it recovers:
``UAS_h = |{(d, g) in E : a_h(d) = g or a_h(g) = d}| / |E|``. Over a corpus the scores
are pooled over arcs (counts summed over sentences, then divided), so kernels return
counts. In a causal model only the later word of an arc can attend to the earlier one,
so the either-direction score is the one that can reach 1 for arcs pointing both ways.
Ties in the argmax go to the first (leftmost) key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["argmax_keys", "attachment_counts", "attachment_scores", "previous_token_pattern"]


def argmax_keys(probs: jax.Array, valid: jax.Array) -> jax.Array:
    """The key each query attends to most, among valid keys.

    Args:
      probs: ``(H, T, T)`` attention probabilities of one sentence (query, key).
      valid: ``(T,)`` bool, the sentence's positions (False: padding).

    Returns:
      ``(H, T)`` int32 key positions (ties: the leftmost).

    References:
      Clark et al. (2019), "What does BERT look at?", sec. 4 (the most-attended word).
    """
    scores = jnp.where(valid[None, None, :], probs, -jnp.inf)
    return jnp.argmax(scores, axis=-1).astype(jnp.int32)


def attachment_counts(probs: jax.Array, heads: jax.Array, valid: jax.Array) -> dict[str, jax.Array]:
    """Arcs of one sentence recovered by each attention head's argmax (counts).

    Args:
      probs: ``(H, T, T)`` attention probabilities (query, key) of one sentence.
      heads: ``(T,)`` int, the position of each word's syntactic head; ``-1`` for the
        root, padding and non-words (positions are 0-based within the ``T`` inputs).
      valid: ``(T,)`` bool, the sentence's real positions. An arc counts only when both
        its ends are valid.

    Returns:
      ``{"either": (H,), "dep_to_head": (H,), "head_to_dep": (H,)}`` int32 arcs
      recovered per head, and ``"arcs"``: () int32, the number of arcs. Batch
      sentences with ``jax.vmap`` and sum the counts.

    References:
      Chen et al. (2024), "Sudden drops in the loss", sec. 2.2 (UAS of an attention
      head, arcs in both directions); Clark et al. (2019), sec. 4.2.
    """
    t = probs.shape[-1]
    g = jnp.clip(heads, 0, t - 1)
    arc = (heads >= 0) & valid & valid[g]
    best = argmax_keys(probs, valid)  # (H, T)
    pos = jnp.arange(t, dtype=jnp.int32)
    dep_to_head = (best == g[None, :]) & arc[None, :]
    head_to_dep = (best[:, g] == pos[None, :]) & arc[None, :]
    either = dep_to_head | head_to_dep
    return {
        "either": either.sum(-1, dtype=jnp.int32),
        "dep_to_head": dep_to_head.sum(-1, dtype=jnp.int32),
        "head_to_dep": head_to_dep.sum(-1, dtype=jnp.int32),
        "arcs": arc.sum(dtype=jnp.int32),
    }


def attachment_scores(probs: jax.Array, heads: jax.Array, valid: jax.Array) -> dict[str, jax.Array]:
    """Pooled UAS of each head over a padded batch of sentences (host-level helper).

    Counts come from a jitted ``vmap`` of :func:`attachment_counts`; the division is
    checked on the host, so call this outside ``jit`` (inside, sum the counts).

    Args:
      probs: ``(N, H, T, T)``; heads: ``(N, T)`` int (``-1``: no arc); valid: ``(N, T)``.

    Returns:
      ``{"either", "dep_to_head", "head_to_dep"}``: ``(H,)`` UAS (recovered arcs over all
      arcs), and ``"arcs"``: the number of arcs.

    Raises:
      ValueError: the batch has no arc (the score would be undefined), or bad shapes.
    """
    if probs.ndim != 4 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"probs must be (N, H, T, T), got {probs.shape}")
    n, _, t, _ = probs.shape
    if heads.shape != (n, t) or valid.shape != (n, t):
        raise ValueError(f"heads and valid must be {(n, t)}, got {heads.shape}, {valid.shape}")
    c = _batch_counts(probs, heads, valid)
    arcs = int(c["arcs"].sum())
    if arcs == 0:
        raise ValueError("no dependency arc among the valid positions: UAS is undefined")
    out = {k: c[k].sum(0) / arcs for k in ("either", "dep_to_head", "head_to_dep")}
    out["arcs"] = arcs
    return out


_batch_counts = jax.jit(jax.vmap(attachment_counts))


def previous_token_pattern(t: int, heads: int = 1) -> jax.Array:
    """The positional baseline: every query attends to the previous position (the first
    to itself). Returns ``(heads, T, T)``."""
    a = jnp.eye(t, k=-1).at[0, 0].set(1.0)
    return jnp.broadcast_to(a, (heads, t, t))
