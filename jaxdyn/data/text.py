"""Plain-text corpora: one sentence a line, whitespace-separated tokens."""

from __future__ import annotations

import os
from collections.abc import Sequence

from jaxdyn.data.paths import corpus_error, read_lines

__all__ = ["read_text", "sentences_from_lines"]


def sentences_from_lines(
    lines: Sequence[str], source: str | os.PathLike[str], *, lowercase: bool = False
) -> list[list[str]]:
    """Splits lines into sentences of whitespace tokens, skipping blank lines.

    Args:
      lines: the text's lines (``lines[k]`` is line ``k + 1``).
      source: file name used in error messages.
      lowercase: lowercase every token.

    Returns:
      One token list per non-blank line.

    Raises:
      CorpusError: no line holds a token (empty corpus).
    """
    out = [ln.lower().split() if lowercase else ln.split() for ln in lines]
    out = [s for s in out if s]
    if not out:
        raise corpus_error(source, None, "empty corpus (no non-blank line)")
    return out


def read_text(path: str | os.PathLike[str], *, lowercase: bool = False) -> list[list[str]]:
    """Reads a one-sentence-a-line text file (e.g. ``ptb.train.txt``).

    Args:
      path: UTF-8 text file.
      lowercase: lowercase every token.

    Returns:
      One list of whitespace-separated tokens per non-blank line.

    Raises:
      CorpusNotFoundError: the file does not exist.
      CorpusError: the file is not UTF-8 (names the line) or holds no token.
    """
    return sentences_from_lines(read_lines(path), path, lowercase=lowercase)
