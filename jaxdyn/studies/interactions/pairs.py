"""Word pairs of parsed sentences, padded batches, and batched DI for the syntax study.

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Sec. 4 and Eq. 1; Murdoch, Liu & Yu (2018), ICLR, Eqs. 8-19 (CD).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxdyn.data.conllu import dependency_distance, relation_matrix
from jaxdyn.decompose import all_pairs, interdependence_batch


def sentence_pairs(heads, max_seq_dist: int) -> dict[str, np.ndarray]:
    """All word pairs ``i < j`` with ``j - i <= max_seq_dist`` of one parsed sentence.

    Args:
      heads: ``(n,)`` 1-based dependency heads (0 = root).
      max_seq_dist: largest sequential distance.

    Returns:
      ``{"i", "j", "seq_dist", "syn_dist", "relation"}``, each ``(P,)``; ``relation``
      holds indices into :data:`jaxdyn.data.conllu.RELATIONS`.

    References:
      Saphra & Lopez (2020), Sec. 4 (syntactic distance = dependency path length).
    """
    n = len(heads)
    pr = all_pairs(n, max_seq_dist)
    dist = dependency_distance(heads)
    rel = relation_matrix(heads)
    i, j = pr[:, 0].astype(np.int64), pr[:, 1].astype(np.int64)
    return {
        "i": i,
        "j": j,
        "seq_dist": j - i,
        "syn_dist": dist[i, j].astype(np.int64),
        "relation": rel[i, j].astype(np.int64),
    }


def max_pairs(num_words: int, max_seq_dist: int) -> int:
    """Number of pairs within ``max_seq_dist`` among ``num_words`` words."""
    return int(sum(max(0, num_words - k) for k in range(1, max_seq_dist + 1)))


@dataclasses.dataclass(frozen=True)
class Batch:
    """One padded batch for :func:`batch_di` (all NumPy).

    Attributes:
      tokens: ``(B, T)`` ids, ``<eos>`` at position 0, words at ``1 .. n``.
      lengths: ``(B,)`` valid lengths ``n + 1`` (1 for dummy rows).
      pairs: ``(B, P, 2)`` positions ``(i + 1, j + 1)``; ``(-1, -1)`` pads.
      targets: ``(B, P)`` timesteps (the later word ``j + 1``; 0 for pads).
      rows: ``(B, P)`` row of each pair in the study's pair table; -1 for pads.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    pairs: np.ndarray
    targets: np.ndarray
    rows: np.ndarray


def make_batches(
    token_ids: list[np.ndarray],
    pair_sets: list[dict[str, np.ndarray]],
    *,
    eos_id: int,
    max_seq_dist: int,
    bucket_width: int,
    hidden: int,
    batch_elems: int,
) -> list[Batch]:
    """Pack sentences into fixed-shape batches by bucket length.

    Args:
      token_ids: per sentence, ``(n,)`` word ids.
      pair_sets: per sentence, :func:`sentence_pairs` output; the pair table's rows
        are the pairs in sentence order then pair order.
      eos_id: id of ``<eos>`` (prepended to every sentence).
      max_seq_dist, bucket_width, hidden, batch_elems: see :class:`InteractionsConfig`.

    Returns:
      Batches; all batches of one bucket share their shapes.
    """
    offsets = np.cumsum([0] + [len(p["i"]) for p in pair_sets])
    by_bucket: dict[int, list[int]] = {}
    for s, ids in enumerate(token_ids):
        t = -(-(len(ids) + 1) // bucket_width) * bucket_width
        by_bucket.setdefault(t, []).append(s)
    out = []
    for t, sents in sorted(by_bucket.items()):
        p = max(max_pairs(t - 1, max_seq_dist), 1)
        per = max(1, batch_elems // ((t + p) * t * hidden))
        size = min(per, len(sents))
        for k in range(0, len(sents), size):
            chunk = sents[k : k + size]
            tok = np.zeros((size, t), np.int32)
            tok[:, 0] = eos_id
            lengths = np.ones(size, np.int32)
            pairs = np.full((size, p, 2), -1, np.int32)
            targets = np.zeros((size, p), np.int32)
            rows = np.full((size, p), -1, np.int64)
            for b, s in enumerate(chunk):
                ids, ps = token_ids[s], pair_sets[s]
                tok[b, 1 : len(ids) + 1] = ids
                lengths[b] = len(ids) + 1
                m = len(ps["i"])
                pairs[b, :m, 0], pairs[b, :m, 1] = ps["i"] + 1, ps["j"] + 1
                targets[b, :m] = ps["j"] + 1
                rows[b, :m] = offsets[s] + np.arange(m)
            out.append(Batch(tok, lengths, pairs, targets, rows))
    return out


# ----------------------------------------------------------------------------- DI


def batch_di(params, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """DI of every pair of a :class:`Batch` (hidden and logit space) in one kernel call.

    :func:`jaxdyn.decompose.interdependence_batch` with its packed schedule, both
    spaces from one computation: the top layer's ``beta_h`` and ``W_dec beta_h``.

    Args:
      params: LSTM LM params (layout of :mod:`jaxdyn.models.lstm`).
      batch: a padded batch.

    Returns:
      ``(di_hidden, di_logits)``, each ``(B, P)`` NumPy (0 at padded pairs).

    References:
      Saphra & Lopez (2020), Eq. 1: ``||beta_xy - beta_x - beta_y|| / ||beta_xy||``.
    """
    out = interdependence_batch(
        params,
        batch.tokens,
        batch.pairs,
        batch.targets,
        lengths=batch.lengths,
        space=("hidden", "logits"),
    )
    return np.asarray(out["hidden"]), np.asarray(out["logits"])
