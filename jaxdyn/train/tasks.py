"""Training tasks: token streams cut into BPTT chunks, for language models and taggers.

A :class:`Stream` holds batchified inputs and labels ``(B, L)``; chunk ``k``
covers columns ``s = k * bptt`` to ``s + T`` with ``T = min(bptt, L - 1 - s)``
(PyTorch's ``get_batch``), its targets are the labels shifted by ``shift``
(1 for a language model and a next-tag tagger, 0 for a current-tag tagger). A
language model and a tagger built from the same text therefore see identical
``inputs`` chunk for chunk, position for position, so their activations line up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxdyn.config import DataConfig
from jaxdyn.data.batching import batchify
from jaxdyn.data.vocab import Vocab


@dataclasses.dataclass(frozen=True)
class Stream:
    """Batchified inputs and labels of one split.

    Attributes:
      inputs: ``(B, L)`` int32 token ids.
      labels: ``(B, L)`` int32 label ids (tokens for an LM, tags for a tagger).
      shift: offset of the target label relative to the input position.
    """

    inputs: np.ndarray
    labels: np.ndarray
    shift: int = 1

    def __post_init__(self):
        if self.inputs.shape != self.labels.shape:
            raise ValueError(f"inputs {self.inputs.shape} and labels {self.labels.shape} differ")
        if self.inputs.shape[1] < 2:
            raise ValueError(f"stream too short for BPTT: shape {self.inputs.shape}")

    def num_chunks(self, bptt: int) -> int:
        """Number of BPTT chunks (the last one may be shorter)."""
        return -(-(self.inputs.shape[1] - 1) // bptt)

    def chunk(self, index: int, bptt: int) -> dict[str, np.ndarray]:
        """Chunk ``index`` as a batch dict ``{"inputs": (B, T), "targets": (B, T)}``."""
        n = self.num_chunks(bptt)
        if not 0 <= index < n:
            raise IndexError(f"chunk {index} out of range [0, {n})")
        s = index * bptt
        t = min(bptt, self.inputs.shape[1] - 1 - s)
        return {
            "inputs": self.inputs[:, s : s + t],
            "targets": self.labels[:, s + self.shift : s + self.shift + t],
        }

    @property
    def num_tokens(self) -> int:
        return int(self.inputs.size)


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Everything a training run needs from the data.

    Attributes:
      vocab: input vocabulary.
      out_vocab: output vocabulary (the same as ``vocab`` for a language model).
      train, valid, test: streams (valid/test batchified with the eval batch size).
      kind: ``"lm"`` or ``"tagger"``.
    """

    vocab: Vocab
    out_vocab: Vocab
    train: Stream
    valid: Stream
    test: Stream
    kind: str = "lm"


def _truncate(ids: np.ndarray, limit: int | None) -> np.ndarray:
    return ids if limit is None else ids[:limit]


def lm_task(splits: dict[str, list[list[str]]], cfg: DataConfig) -> TaskData:
    """Language-model task from sentence splits ``train``/``valid``/``test``.

    The vocabulary is built on the (truncated) training sentences.
    """
    for key in ("train", "valid", "test"):
        if key not in splits or not splits[key]:
            raise ValueError(f"corpus split {key!r} is missing or empty")
    train_sents = splits["train"]
    if cfg.max_train_tokens is not None:
        kept, n = [], 0
        for s in train_sents:
            if n >= cfg.max_train_tokens:
                break
            kept.append(s)
            n += len(s) + 1
        train_sents = kept
    vocab = Vocab.build(train_sents, max_size=cfg.max_vocab)

    def stream(sents, limit, batch):
        ids = _truncate(vocab.encode_corpus(sents), limit)
        b = batchify(ids, batch)
        return Stream(b, b, 1)

    return TaskData(
        vocab=vocab,
        out_vocab=vocab,
        train=stream(train_sents, cfg.max_train_tokens, cfg.batch_size),
        valid=stream(splits["valid"], cfg.max_eval_tokens, cfg.eval_batch_size),
        test=stream(splits["test"], cfg.max_eval_tokens, cfg.eval_batch_size),
        kind="lm",
    )


def load_task(cfg: DataConfig) -> TaskData:
    """Read the configured corpus and build the language-model task."""
    from jaxdyn.data.corpora import load_lm_corpus

    splits = load_lm_corpus(cfg.corpus, cfg.data_dir, lowercase=cfg.lowercase)
    return lm_task(splits, cfg)
