"""Language-model and tagging batches, samples-first.

The layout is PyTorch's ``word_language_model`` ``batchify``/``get_batch``
transposed: a flat token stream of length ``L`` becomes ``(B, L // B)``, row
``b`` being the ``b``-th contiguous segment, and chunk ``k`` holds the columns
``[k * bptt, k * bptt + T)``. Chunks are addressed by index, so training can
resume exactly mid-epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.data.vocab import Vocab

__all__ = [
    "batchify",
    "encode_tagged",
    "iter_lm_chunks",
    "iter_tag_chunks",
    "lm_chunk",
    "num_chunks",
    "tag_chunk",
]


def batchify(stream: np.ndarray, batch_size: int) -> np.ndarray:
    """Cuts a token stream into ``batch_size`` contiguous rows.

    Args:
      stream: ``(L,)`` integer ids.
      batch_size: number of rows ``B`` (>= 1).

    Returns:
      ``(B, L // B)`` array (a copy, same dtype); the trailing ``L % B`` ids
      are dropped. Row ``b`` is ``stream[b * (L // B):(b + 1) * (L // B)]``.

    Raises:
      ValueError: not a 1-D integer array, ``batch_size < 1``, or
        ``L < 2 * batch_size`` (no input/target pair per row).

    References:
      PyTorch examples, ``word_language_model/main.py``, ``batchify``
      (transposed to samples-first).
    """
    stream = np.asarray(stream)
    if stream.ndim != 1 or not np.issubdtype(stream.dtype, np.integer):
        raise ValueError(f"batchify expects a 1-D integer stream, got {stream.dtype}{stream.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if stream.shape[0] < 2 * batch_size:
        raise ValueError(
            f"stream of {stream.shape[0]} tokens is too short for batch_size {batch_size} "
            f"(need at least {2 * batch_size})"
        )
    n_cols = stream.shape[0] // batch_size
    return stream[: n_cols * batch_size].reshape(batch_size, n_cols).copy()


def num_chunks(n_cols: int, bptt: int) -> int:
    """Number of chunks :func:`lm_chunk` serves for ``n_cols`` columns.

    Equals ``len(range(0, n_cols - 1, bptt))``, the length of PyTorch's loop.

    Args:
      n_cols: columns of the batchified data (>= 2).
      bptt: chunk length (>= 1).

    Returns:
      ``ceil((n_cols - 1) / bptt)``.
    """
    if n_cols < 2:
        raise ValueError(f"need at least 2 columns, got {n_cols}")
    if bptt < 1:
        raise ValueError(f"bptt must be >= 1, got {bptt}")
    return -(-(n_cols - 1) // bptt)


def _chunk_span(data: np.ndarray, index: int, bptt: int) -> tuple[int, int]:
    if data.ndim != 2:
        raise ValueError(f"expected batchified (B, L) data, got shape {data.shape}")
    n = num_chunks(data.shape[1], bptt)
    if not 0 <= index < n:
        raise IndexError(f"chunk index {index} out of range [0, {n})")
    s = index * bptt
    return s, min(bptt, data.shape[1] - 1 - s)


def lm_chunk(data: np.ndarray, index: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``index``-th language-model chunk (PyTorch's ``get_batch``, transposed).

    Args:
      data: ``(B, L)`` batchified ids.
      index: chunk number, ``0 <= index < num_chunks(L, bptt)``.
      bptt: chunk length.

    Returns:
      ``(inputs, targets)``, each ``(B, T)`` with ``s = index * bptt``,
      ``T = min(bptt, L - 1 - s)``: ``inputs = data[:, s:s+T]``,
      ``targets = data[:, s+1:s+1+T]``. The last chunk may be shorter.

    References:
      PyTorch examples, ``word_language_model/main.py``, ``get_batch``.
    """
    data = np.asarray(data)
    s, t = _chunk_span(data, index, bptt)
    return data[:, s : s + t], data[:, s + 1 : s + 1 + t]


def iter_lm_chunks(
    data: np.ndarray, bptt: int, start: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields :func:`lm_chunk` for indices ``start, start + 1, ...`` to the end."""
    n = num_chunks(np.asarray(data).shape[-1], bptt)
    if not 0 <= start <= n:
        raise IndexError(f"start chunk {start} out of range [0, {n}]")
    for k in range(start, n):
        yield lm_chunk(data, k, bptt)


def encode_tagged(
    corpus: TaggedCorpus, vocab: Vocab, tag_vocab: Vocab, layer: str, add_eos: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes a tagged corpus into token and tag streams aligned position by position.

    Args:
      corpus: sentences with tag layers.
      vocab: word vocabulary.
      tag_vocab: vocabulary of the layer's tags (unknown tags -> its ``unk``).
      layer: tag layer name, e.g. ``"xpos"`` or ``"genre"``.
      add_eos: append ``eos`` after each sentence; its tag is ``tag_vocab.eos``.

    Returns:
      ``(tokens, tags)``, each ``(L,)`` int32; ``tokens`` equals
      ``vocab.encode_corpus(corpus.sentences, add_eos)``.

    Raises:
      KeyError: ``layer`` is not in the corpus.
    """
    if layer not in corpus.tags:
        raise KeyError(f"tag layer {layer!r} not in corpus (has {sorted(corpus.tags)})")
    tokens = vocab.encode_corpus(corpus.sentences, add_eos=add_eos)
    tags = tag_vocab.encode_corpus(corpus.tags[layer], add_eos=add_eos)
    if tags.shape != tokens.shape:  # TaggedCorpus is mutable: re-check alignment
        raise ValueError(f"layer {layer!r} has {tags.shape[0]} positions, tokens {tokens.shape[0]}")
    return tokens, tags


def tag_chunk(
    tokens_b: np.ndarray,
    tags_b: np.ndarray,
    index: int,
    bptt: int,
    target: Literal["next", "current"] = "next",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``index``-th tagging chunk, aligned with :func:`lm_chunk`.

    Args:
      tokens_b: ``(B, L)`` batchified token ids.
      tags_b: ``(B, L)`` batchified tag ids (same batchify as ``tokens_b``).
      index: chunk number, ``0 <= index < num_chunks(L, bptt)``.
      bptt: chunk length.
      target: ``"next"``: tag of the token the LM predicts at each position
        (``tags_b[:, s+1:s+1+T]``); ``"current"``: tag of the input token
        (``tags_b[:, s:s+T]``).

    Returns:
      ``(inputs, tag_targets)``, each ``(B, T)``; ``inputs`` is exactly
      ``lm_chunk(tokens_b, index, bptt)[0]``.
    """
    tokens_b, tags_b = np.asarray(tokens_b), np.asarray(tags_b)
    if tokens_b.shape != tags_b.shape:
        raise ValueError(f"tokens {tokens_b.shape} and tags {tags_b.shape} must have one shape")
    if target not in ("next", "current"):
        raise ValueError(f"target must be 'next' or 'current', got {target!r}")
    s, t = _chunk_span(tokens_b, index, bptt)
    off = 1 if target == "next" else 0
    return tokens_b[:, s : s + t], tags_b[:, s + off : s + off + t]


def iter_tag_chunks(
    tokens_b: np.ndarray,
    tags_b: np.ndarray,
    bptt: int,
    start: int = 0,
    target: Literal["next", "current"] = "next",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields :func:`tag_chunk` for indices ``start, start + 1, ...`` to the end."""
    n = num_chunks(np.asarray(tokens_b).shape[-1], bptt)
    if not 0 <= start <= n:
        raise IndexError(f"start chunk {start} out of range [0, {n}]")
    for k in range(start, n):
        yield tag_chunk(tokens_b, tags_b, k, bptt, target)
