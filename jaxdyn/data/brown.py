"""Brown corpus reader (NLTK packaging) and a deterministic document split.

Format: ``cats.txt`` lists ``<doc_id> <category>`` one a line; each document
file holds one sentence a line as whitespace-separated ``word/tag`` tokens
(the tag follows the LAST ``/``, so ``1/2/cd`` is the word ``1/2``); blank
lines separate paragraphs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jaxdyn.data.paths import CorpusNotFoundError, corpus_error, read_lines

__all__ = ["BrownDocument", "brown_splits", "read_brown", "read_brown_document"]


@dataclass(frozen=True)
class BrownDocument:
    """One Brown document.

    Attributes:
      doc_id: file name, e.g. ``ca01``.
      category: genre from ``cats.txt``, e.g. ``news``.
      sentences: sentences of ``(word, tag)`` pairs.
    """

    doc_id: str
    category: str
    sentences: list[list[tuple[str, str]]]

    @property
    def num_tokens(self) -> int:
        """Number of tokens in the document."""
        return sum(len(s) for s in self.sentences)


def read_brown_document(path: str | os.PathLike[str]) -> list[list[tuple[str, str]]]:
    """Reads one Brown document file into sentences of ``(word, tag)`` pairs.

    Args:
      path: a document file such as ``brown/ca01``.

    Returns:
      One list of ``(word, tag)`` per non-blank line.

    Raises:
      CorpusNotFoundError: the file does not exist.
      CorpusError: a token without ``/``, with an empty word or tag, or a
        document with no token (names the file and line).
    """
    sentences: list[list[tuple[str, str]]] = []
    for lineno, line in enumerate(read_lines(path), start=1):
        toks = line.split()
        if not toks:
            continue
        sent = []
        for tok in toks:
            word, sep, tag = tok.rpartition("/")
            if not sep or not word or not tag:
                raise corpus_error(path, lineno, f"token {tok!r} is not of the form word/tag")
            sent.append((word, tag))
        sentences.append(sent)
    if not sentences:
        raise corpus_error(path, None, "empty document (no token)")
    return sentences


def read_brown(root: str | os.PathLike[str]) -> list[BrownDocument]:
    """Reads the Brown corpus folder listed by its ``cats.txt``.

    Args:
      root: folder holding ``cats.txt`` and the document files.

    Returns:
      The documents in ``cats.txt`` order (500 for the full corpus).

    Raises:
      CorpusNotFoundError: the folder or ``cats.txt`` does not exist.
      CorpusError: a malformed ``cats.txt`` line (not two fields, a repeated
        document, a document whose file is missing), or a malformed document.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusNotFoundError(f"{root}: Brown corpus folder not found")
    cats_path = root / "cats.txt"
    entries: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(read_lines(cats_path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise corpus_error(
                cats_path, lineno, f"expected '<doc_id> <category>', found {len(fields)} fields"
            )
        doc_id, category = fields
        if doc_id in seen:
            raise corpus_error(
                cats_path, lineno, f"document {doc_id!r} already listed on line {seen[doc_id]}"
            )
        if (
            "/" in doc_id
            or "\\" in doc_id
            or doc_id.startswith(".")
            or not (root / doc_id).is_file()
        ):
            raise corpus_error(
                cats_path, lineno, f"unknown document {doc_id!r} (no such file in {root})"
            )
        seen[doc_id] = lineno
        entries.append((doc_id, category))
    if not entries:
        raise corpus_error(cats_path, None, "empty category list (no document)")
    return [
        BrownDocument(doc_id=d, category=c, sentences=read_brown_document(root / d))
        for d, c in entries
    ]


def brown_splits(
    docs: list[BrownDocument], *, valid_every: int = 10, test_every: int = 10
) -> dict[str, list[BrownDocument]]:
    """Deterministic document-level train/valid/test split.

    Document ``i`` (0-based, in the given order, i.e. ``cats.txt`` order) goes
    to ``test`` if ``i % test_every == test_every - 1``, else to ``valid`` if
    ``i % valid_every == valid_every - 2``, else to ``train``. With the
    defaults, indices ending in 9 are test and those ending in 8 are valid
    (80/10/10). ``cats.txt`` is sorted by category, so every category is
    represented in each split in proportion to its size.

    Args:
      docs: documents, e.g. from :func:`read_brown`.
      valid_every: period of the validation documents (>= 2).
      test_every: period of the test documents (>= 2).

    Returns:
      ``{"train", "valid", "test"}`` -> documents, each in the input order.

    Raises:
      ValueError: a period below 2, or a split that would be empty.
    """
    if valid_every < 2 or test_every < 2:
        raise ValueError(
            f"valid_every and test_every must be >= 2, got {valid_every}, {test_every}"
        )
    out: dict[str, list[BrownDocument]] = {"train": [], "valid": [], "test": []}
    for i, doc in enumerate(docs):
        if i % test_every == test_every - 1:
            out["test"].append(doc)
        elif i % valid_every == valid_every - 2:
            out["valid"].append(doc)
        else:
            out["train"].append(doc)
    empty = [k for k, v in out.items() if not v]
    if empty:
        raise ValueError(f"brown_splits: {len(docs)} documents leave split(s) {empty} empty")
    return out
