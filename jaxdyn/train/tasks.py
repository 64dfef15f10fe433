"""Training tasks: token streams cut into BPTT chunks, for language models and taggers.

A :class:`Stream` holds batchified inputs and labels ``(B, L)``; chunk ``k``
covers columns ``s = k * bptt`` to ``s + T`` with ``T = min(bptt, L - 1 - s)``
(PyTorch's ``get_batch``, via ``jaxdyn.data.batching.tag_chunk``); its targets
are the labels of the next or the current position
(``"next"`` for a language model and the thesis's taggers, or ``"current"``). A
language model and a tagger built from the same text therefore see identical
``inputs`` chunk for chunk, position for position, so their activations line up.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxdyn.config import DataConfig
from jaxdyn.data.batching import batchify, encode_tagged, num_chunks, tag_chunk
from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.data.vocab import Vocab


@dataclasses.dataclass(frozen=True)
class Stream:
    """Batchified inputs and labels of one split.

    Attributes:
      inputs: ``(B, L)`` int32 token ids.
      labels: ``(B, L)`` int32 label ids (tokens for an LM, tags for a tagger).
      target: ``"next"`` (the label of the following position: language models
        and the thesis's taggers) or ``"current"``.
    """

    inputs: np.ndarray
    labels: np.ndarray
    target: str = "next"

    def __post_init__(self):
        if self.inputs.shape != self.labels.shape:
            raise ValueError(f"inputs {self.inputs.shape} and labels {self.labels.shape} differ")
        if self.inputs.shape[1] < 2:
            raise ValueError(f"stream too short for BPTT: shape {self.inputs.shape}")

    def num_chunks(self, bptt: int) -> int:
        """Number of BPTT chunks (the last one may be shorter)."""
        return num_chunks(self.inputs.shape[1], bptt)

    def chunk(self, index: int, bptt: int) -> dict[str, np.ndarray]:
        """Chunk ``index`` as a batch dict ``{"inputs": (B, T), "targets": (B, T)}``."""
        x, y = tag_chunk(self.inputs, self.labels, index, bptt, self.target)
        return {"inputs": x, "targets": y}

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


def _prefix(sentences, max_tokens: int | None) -> int:
    """How many leading sentences (with one eos each) reach ``max_tokens``."""
    if max_tokens is None:
        return len(sentences)
    n = 0
    for k, s in enumerate(sentences):
        if n >= max_tokens:
            return k
        n += len(s) + 1
    return len(sentences)


def _truncate(ids: np.ndarray, limit: int | None) -> np.ndarray:
    return ids if limit is None else ids[:limit]


def lm_task(splits: dict[str, list[list[str]]], cfg: DataConfig) -> TaskData:
    """Language-model task from sentence splits ``train``/``valid``/``test``.

    The vocabulary is built on the (truncated) training sentences.
    """
    for key in ("train", "valid", "test"):
        if key not in splits or not splits[key]:
            raise ValueError(f"corpus split {key!r} is missing or empty")
    train_sents = splits["train"][: _prefix(splits["train"], cfg.max_train_tokens)]
    vocab = Vocab.build(train_sents, max_size=cfg.max_vocab)

    def stream(sents, limit, batch):
        ids = _truncate(vocab.encode_corpus(sents), limit)
        b = batchify(ids, batch)
        return Stream(b, b, "next")

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


def lm_task_from_tagged(corpus: dict[str, TaggedCorpus], cfg: DataConfig) -> TaskData:
    """Language-model task on the sentences of a tagged corpus (same text as its taggers)."""
    return lm_task({k: v.sentences for k, v in corpus.items()}, cfg)


def tagger_task(
    corpus: dict[str, TaggedCorpus],
    layer: str,
    cfg: DataConfig,
    vocab: Vocab,
    *,
    target: str = "next",
) -> TaskData:
    """Tagging task whose inputs line up token for token with ``lm_task``'s.

    Args:
      corpus: ``train``/``valid``/``test`` tagged splits (e.g. ``load_ewt``).
      layer: tag layer (``xpos``, ``upos``, ``deprel``, ``genre``, ``pos``).
      cfg: the same data config as the language model's (truncation, batching).
      vocab: the language model's input vocabulary (so the inputs are identical).
      target: ``"next"`` (the thesis: the next token's tag) or ``"current"``.

    Returns:
      A ``TaskData`` with ``kind="tagger"`` whose ``train.inputs`` equal the
      language-model task's ``train.inputs`` exactly.
    """
    full = corpus["train"]
    keep = _prefix(full.sentences, cfg.max_train_tokens)  # the same sentences as lm_task
    train_sents = TaggedCorpus(full.sentences[:keep], {k: v[:keep] for k, v in full.tags.items()})
    tag_vocab = Vocab.build(train_sents.tags[layer])

    def stream(c, limit, batch):
        toks, tags = encode_tagged(c, vocab, tag_vocab, layer)
        return Stream(
            batchify(_truncate(toks, limit), batch), batchify(_truncate(tags, limit), batch), target
        )

    return TaskData(
        vocab=vocab,
        out_vocab=tag_vocab,
        train=stream(train_sents, cfg.max_train_tokens, cfg.batch_size),
        valid=stream(corpus["valid"], cfg.max_eval_tokens, cfg.eval_batch_size),
        test=stream(corpus["test"], cfg.max_eval_tokens, cfg.eval_batch_size),
        kind="tagger",
    )
