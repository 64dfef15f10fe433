"""Word vocabulary: frequency-ordered, immutable, JSON-serialisable."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxdyn.data.paths import CorpusError, CorpusNotFoundError

__all__ = ["Vocab"]

_FORMAT = "jaxdyn.vocab"
_VERSION = 1


@dataclass(frozen=True)
class Vocab:
    """An immutable token <-> id mapping with training frequencies.

    Ids are positions in ``itos``. :meth:`build` orders types by descending
    training frequency, ties alphabetically, so the same corpus always gives
    the same ids. ``unk`` and ``eos`` are always present.

    Attributes:
      itos: the types, ``itos[i]`` is the token with id ``i``.
      counts: training frequency of each type (same length as ``itos``); the
        count of ``unk`` includes every token that was mapped to it, the count
        of ``eos`` is the number of training sentences.
      unk: the unknown-word token.
      eos: the end-of-sentence token.
    """

    itos: tuple[str, ...]
    counts: tuple[int, ...]
    unk: str = "<unk>"
    eos: str = "<eos>"
    _stoi: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        itos = tuple(self.itos)
        counts = tuple(int(c) for c in self.counts)
        object.__setattr__(self, "itos", itos)
        object.__setattr__(self, "counts", counts)
        if not all(isinstance(t, str) for t in itos):
            raise ValueError("Vocab.itos must contain only strings")
        if len(counts) != len(itos):
            raise ValueError(f"Vocab: {len(itos)} types but {len(counts)} counts")
        if any(c < 0 for c in counts):
            raise ValueError("Vocab.counts must be non-negative")
        if self.unk == self.eos:
            raise ValueError(f"Vocab: unk and eos must differ (both {self.unk!r})")
        stoi = {t: i for i, t in enumerate(itos)}
        if len(stoi) != len(itos):
            dup = next(t for t, n in Counter(itos).items() if n > 1)
            raise ValueError(f"Vocab.itos has a duplicate type {dup!r}")
        for name, tok in (("unk", self.unk), ("eos", self.eos)):
            if tok not in stoi:
                raise ValueError(f"Vocab: {name} token {tok!r} is not in itos")
        object.__setattr__(self, "_stoi", stoi)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        max_size: int | None = None,
        min_count: int = 1,
        unk: str = "<unk>",
        eos: str = "<eos>",
    ) -> Vocab:
        """Counts a training corpus and builds its vocabulary.

        Each sentence contributes its tokens plus one ``eos``. Types with fewer
        than ``min_count`` occurrences, and the least frequent types beyond
        ``max_size``, are dropped; their counts are added to ``unk``. ``unk``
        and ``eos`` are always kept and count towards ``max_size``. The result
        is ordered by descending count, ties broken alphabetically.

        Args:
          sentences: the training sentences, each a sequence of tokens.
          max_size: largest vocabulary size (including ``unk`` and ``eos``),
            or ``None`` for no limit. Must be at least 2.
          min_count: smallest count a type needs to be kept (>= 1).
          unk: the unknown-word token (may also occur in the data, as in PTB).
          eos: the end-of-sentence token.

        Returns:
          The vocabulary.
        """
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (unk and eos), got {max_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counter: Counter[str] = Counter()
        n_sent = 0
        for sent in sentences:
            if isinstance(sent, str):
                raise TypeError("Vocab.build expects sentences as token sequences, got a str")
            counter.update(sent)
            n_sent += 1
        counter[eos] += n_sent
        specials = {unk, eos}
        others = sorted(
            ((t, c) for t, c in counter.items() if t not in specials and c >= min_count),
            key=lambda tc: (-tc[1], tc[0]),
        )
        if max_size is not None:
            others = others[: max_size - 2]
        kept = dict(others)
        dropped = sum(c for t, c in counter.items() if t not in specials and t not in kept)
        kept[unk] = counter.get(unk, 0) + dropped
        kept[eos] = counter[eos]
        ordered = sorted(kept.items(), key=lambda tc: (-tc[1], tc[0]))
        return cls(
            itos=tuple(t for t, _ in ordered),
            counts=tuple(c for _, c in ordered),
            unk=unk,
            eos=eos,
        )

    # ----------------------------------------------------------------- lookup
    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.itos[:5])
        more = ", ..." if len(self.itos) > 5 else ""
        return f"Vocab(size={len(self)}, unk={self.unk!r}, eos={self.eos!r}, itos=({head}{more}))"

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    @property
    def unk_id(self) -> int:
        """Id of the unknown-word token."""
        return self._stoi[self.unk]

    @property
    def eos_id(self) -> int:
        """Id of the end-of-sentence token."""
        return self._stoi[self.eos]

    def index(self, token: str) -> int:
        """Id of ``token``; unknown tokens get :attr:`unk_id`."""
        return self._stoi.get(token, self._stoi[self.unk])

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Encodes one token sequence.

        Args:
          tokens: ``T`` tokens.

        Returns:
          ``(T,)`` int32 ids (unknown tokens -> :attr:`unk_id`).
        """
        get, u = self._stoi.get, self._stoi[self.unk]
        return np.fromiter((get(t, u) for t in tokens), dtype=np.int32, count=len(tokens))

    def encode_corpus(self, sentences: Iterable[Sequence[str]], add_eos: bool = True) -> np.ndarray:
        """Encodes a corpus as one flat token stream.

        Like PyTorch's ``word_language_model`` example, ``eos`` follows every
        sentence (when ``add_eos``).

        Args:
          sentences: sentences of tokens.
          add_eos: append ``eos`` after each sentence.

        Returns:
          ``(L,)`` int32 ids, ``L = sum(len(s) + add_eos)``.
        """
        get, u, e = self._stoi.get, self._stoi[self.unk], self._stoi[self.eos]
        ids: list[int] = []
        for sent in sentences:
            ids.extend([get(t, u) for t in sent])
            if add_eos:
                ids.append(e)
        return np.asarray(ids, dtype=np.int32)

    def _check_ids(self, ids: Any) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"Vocab ids must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.itos)):
            bad = arr[(arr < 0) | (arr >= len(self.itos))].flat[0]
            raise ValueError(f"id {int(bad)} out of range for a vocabulary of {len(self)}")
        return arr

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Maps ``(T,)`` ids back to tokens (a list of ``T`` strings)."""
        arr = self._check_ids(ids).reshape(-1)
        return [self.itos[i] for i in arr.tolist()]

    def frequency(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Training counts of the types ``ids`` (any shape; int64 of the same shape)."""
        arr = self._check_ids(ids)
        return np.asarray(self.counts, dtype=np.int64)[arr]

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for checkpoint metadata); inverse of :meth:`from_dict`."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "unk": self.unk,
            "eos": self.eos,
            "itos": list(self.itos),
            "counts": list(self.counts),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocab:
        """Rebuilds a vocabulary from :meth:`to_dict` output.

        Raises:
          ValueError: missing keys, wrong types or an inconsistent vocabulary.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"vocab dict must be a mapping, got {type(d).__name__}")
        if d.get("format") != _FORMAT or d.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} dict "
                f"(format={d.get('format')!r}, version={d.get('version')!r})"
            )
        itos, counts = d.get("itos"), d.get("counts")
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError("vocab 'itos' must be a list of strings")
        if not isinstance(counts, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in counts
        ):
            raise ValueError("vocab 'counts' must be a list of integers")
        unk, eos = d.get("unk"), d.get("eos")
        if not isinstance(unk, str) or not isinstance(eos, str):
            raise ValueError("vocab 'unk' and 'eos' must be strings")
        return cls(itos=tuple(itos), counts=tuple(counts), unk=unk, eos=eos)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the vocabulary as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", "utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Reads a vocabulary written by :meth:`save`.

        Raises:
          CorpusNotFoundError: the file does not exist.
          CorpusError: the file is not valid JSON or not a vocabulary (the
            message names the file).
        """
        p = Path(path)
        if not p.is_file():
            raise CorpusNotFoundError(f"{p}: vocabulary file not found")
        try:
            d = json.loads(p.read_text("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CorpusError(f"{p}: malformed vocabulary file: {e}") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise CorpusError(f"{p}: malformed vocabulary file: {e}") from None
