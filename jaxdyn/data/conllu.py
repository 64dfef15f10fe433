"""CoNLL-U reader (Universal Dependencies) and dependency-tree distances.

A small, strict parser: it keeps word lines only (multiword-token ranges such
as ``3-4`` and empty nodes such as ``8.1`` are skipped), validates the columns,
the word IDs and the heads, and names the file and the 1-based line of the
first problem it finds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from jaxdyn.data.paths import corpus_error, read_lines

__all__ = [
    "RELATIONS",
    "ConlluSentence",
    "dependency_distance",
    "read_conllu",
    "relation",
    "relation_matrix",
]

_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_ID = re.compile(r"(?:0|[1-9][0-9]*)\.[1-9][0-9]*")
_HEAD = re.compile(r"0|[1-9][0-9]*")

#: Pair relations returned by :func:`relation`; codes of :func:`relation_matrix`.
RELATIONS = ("other", "head-dependent", "ancestor")


@dataclass(frozen=True)
class ConlluSentence:
    """One CoNLL-U sentence, words only (no multiword ranges, no empty nodes).

    Attributes:
      words: FORM of each of the ``n`` words.
      lemmas: LEMMA of each word.
      upos: universal POS tag of each word.
      xpos: language-specific tag (Penn Treebank tags for English-EWT).
      heads: HEAD of each word, 1-based word index, 0 for the root.
      deprels: DEPREL of each word.
      sent_id: the ``# sent_id`` comment, or ``None``.
      doc_id: id from the latest ``# newdoc id`` comment in the file, or ``None``.
      genre: ``sent_id`` up to its first ``-`` (EWT: answers, email, newsgroup,
        reviews, weblog), or ``None`` when there is no ``sent_id`` or no ``-``.
      text: the ``# text`` comment, or ``None``.
      line: 1-based line in the file where the sentence block starts.
    """

    words: tuple[str, ...]
    lemmas: tuple[str, ...]
    upos: tuple[str, ...]
    xpos: tuple[str, ...]
    heads: tuple[int, ...]
    deprels: tuple[str, ...]
    sent_id: str | None
    doc_id: str | None
    genre: str | None
    text: str | None = None
    line: int = 0

    def __len__(self) -> int:
        return len(self.words)


def _tree_problem(heads: tuple[int, ...] | list[int]) -> tuple[int | None, str] | None:
    """First structural problem of a head vector: (0-based word or None, message)."""
    n = len(heads)
    for i, h in enumerate(heads):
        if not 0 <= h <= n:
            return i, f"head {h} out of range (sentence has {n} words)"
        if h == i + 1:
            return i, f"word {i + 1} is its own head"
    roots = [i + 1 for i, h in enumerate(heads) if h == 0]
    if len(roots) != 1:
        return None, f"expected exactly one root (head 0), found {len(roots)}: {roots}"
    for i in range(n):
        seen, k = 0, i
        while heads[k] != 0:
            k = heads[k] - 1
            seen += 1
            if seen > n:
                return None, f"dependency cycle through word {i + 1}"
    return None


def _flush(path, block, doc_id, out) -> None:
    start, comments, rows = block
    if not rows:
        raise corpus_error(path, start, "sentence block without any word line")
    heads = tuple(int(r[1][6]) for r in rows)
    problem = _tree_problem(heads)
    if problem is not None:
        i, msg = problem
        raise corpus_error(path, start if i is None else rows[i][0], msg)
    sent_id = comments.get("sent_id")
    genre = sent_id.split("-", 1)[0] if sent_id and "-" in sent_id else None
    out.append(
        ConlluSentence(
            words=tuple(r[1][1] for r in rows),
            lemmas=tuple(r[1][2] for r in rows),
            upos=tuple(r[1][3] for r in rows),
            xpos=tuple(r[1][4] for r in rows),
            heads=heads,
            deprels=tuple(r[1][7] for r in rows),
            sent_id=sent_id,
            doc_id=doc_id,
            genre=genre,
            text=comments.get("text"),
            line=start,
        )
    )


def read_conllu(path: str | os.PathLike[str]) -> list[ConlluSentence]:
    """Reads a CoNLL-U file into sentences of words.

    Validation (each error names the file and the 1-based line): 10
    tab-separated columns; IDs are integers ``1, 2, ...`` in sequence,
    ``a-b`` ranges or ``a.b`` empty nodes; every word's HEAD is an integer in
    ``0..n``, not the word itself; exactly one root; no cycles; no comment
    inside a sentence; at least one sentence in the file.

    Args:
      path: a ``.conllu`` file.

    Returns:
      The sentences in file order.

    Raises:
      CorpusNotFoundError: the file does not exist.
      CorpusError: malformed or empty input.
    """
    out: list[ConlluSentence] = []
    doc_id: str | None = None
    start: int | None = None
    comments: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(read_lines(path), start=1):
        if raw.strip() == "":
            if start is not None:
                _flush(path, (start, comments, rows), doc_id, out)
                start, comments, rows = None, {}, []
            continue
        if start is None:
            start = lineno
        if raw.startswith("#"):
            if rows:
                raise corpus_error(path, lineno, "comment line inside a sentence")
            key, sep, value = raw[1:].partition("=")
            key, value = key.strip(), value.strip()
            if key == "newdoc id" and sep:
                doc_id = value
            elif key == "newdoc":
                doc_id = None
            elif sep and key in ("sent_id", "text"):
                comments[key] = value
            continue
        cols = raw.split("\t")
        if len(cols) != 10:
            raise corpus_error(
                path, lineno, f"expected 10 tab-separated columns, found {len(cols)}"
            )
        tok_id = cols[0]
        if _WORD_ID.fullmatch(tok_id):
            expected = len(rows) + 1
            if int(tok_id) != expected:
                raise corpus_error(
                    path, lineno, f"word ID {tok_id} out of sequence (expected {expected})"
                )
            if not _HEAD.fullmatch(cols[6]):
                raise corpus_error(path, lineno, f"HEAD {cols[6]!r} is not an integer")
            rows.append((lineno, cols))
        elif m := _RANGE_ID.fullmatch(tok_id):
            if int(m.group(1)) > int(m.group(2)):
                raise corpus_error(path, lineno, f"invalid multiword range {tok_id!r}")
        elif not _EMPTY_ID.fullmatch(tok_id):
            raise corpus_error(path, lineno, f"invalid token ID {tok_id!r}")
    if start is not None:
        _flush(path, (start, comments, rows), doc_id, out)
    if not out:
        raise corpus_error(path, None, "empty corpus (no sentence)")
    return out


def _ancestors(heads) -> np.ndarray:
    """``(n, n)`` bool: ``A[i, k]`` iff word ``k`` is ``i`` or dominates ``i`` (0-based)."""
    h = tuple(int(x) for x in np.asarray(heads).reshape(-1).tolist())
    problem = _tree_problem(h)
    if problem is not None:
        i, msg = problem
        raise ValueError(f"heads do not form a dependency tree: {msg}")
    n = len(h)
    anc = np.zeros((n, n), dtype=bool)
    for i in range(n):
        k = i
        anc[i, k] = True
        while h[k] != 0:
            k = h[k] - 1
            anc[i, k] = True
    return anc


def dependency_distance(heads) -> np.ndarray:
    """Path length between every pair of words in the undirected dependency tree.

    With ``A`` the ancestor-or-self matrix, the common ancestors of ``i`` and
    ``j`` are the chain from the root down to their lowest common ancestor, so
    ``d(i, j) = depth(i) + depth(j) - 2 depth(lca(i, j))`` with
    ``depth(lca) = (A A^T)[i, j] - 1``.

    Args:
      heads: ``(n,)`` 1-based heads, 0 for the root (a single-rooted tree).

    Returns:
      ``(n, n)`` int64 distances, symmetric, zero diagonal, 1 between a word
      and its head.

    Raises:
      ValueError: ``heads`` is not a single-rooted tree.

    References:
      Saphra (2021), "Training dynamics of neural language models", PhD thesis,
      University of Edinburgh: syntactic distance between words as the path
      length in the dependency tree.
    """
    anc = _ancestors(heads).astype(np.int64)
    depth = anc.sum(axis=1) - 1
    lca_depth = anc @ anc.T - 1
    return depth[:, None] + depth[None, :] - 2 * lca_depth


def relation_matrix(heads) -> np.ndarray:
    """Codes of :func:`relation` for every word pair.

    Args:
      heads: ``(n,)`` 1-based heads, 0 for the root.

    Returns:
      ``(n, n)`` int8: ``RELATIONS.index(relation(heads, i, j))`` off the
      diagonal, ``-1`` on it.

    Raises:
      ValueError: ``heads`` is not a single-rooted tree.
    """
    anc = _ancestors(heads)
    n = anc.shape[0]
    h = np.asarray(heads, dtype=np.int64).reshape(-1)
    idx = np.arange(n)
    direct = np.zeros((n, n), dtype=bool)
    dep = h > 0
    direct[idx[dep], h[dep] - 1] = True
    direct |= direct.T
    dominates = anc | anc.T
    out = np.where(direct, 1, np.where(dominates, 2, 0)).astype(np.int8)
    out[idx, idx] = -1
    return out


def relation(heads, i: int, j: int) -> str:
    """Structural relation between words ``i`` and ``j`` (0-based positions).

    * ``"head-dependent"``: one word is the other's head;
    * ``"ancestor"``: one word dominates the other through at least one
      intermediate word;
    * ``"other"``: neither dominates the other.

    Args:
      heads: ``(n,)`` 1-based heads, 0 for the root.
      i: first word, ``0 <= i < n``.
      j: second word, ``0 <= j < n``, ``j != i``.

    Returns:
      One of :data:`RELATIONS`.

    Raises:
      ValueError: bad positions, ``i == j``, or ``heads`` not a tree.
    """
    n = len(heads)
    if not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"positions ({i}, {j}) out of range for {n} words")
    if i == j:
        raise ValueError(f"relation of a word with itself (i == j == {i}) is undefined")
    return RELATIONS[int(relation_matrix(heads)[i, j])]
