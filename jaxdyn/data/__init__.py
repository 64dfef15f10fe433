"""Corpus readers, vocabulary and batching for language-model training.

Readers take explicit paths; only :func:`resolve_data_dir` (for command-line
tools) reads the environment.
"""

from jaxdyn.data.batching import (
    batchify,
    encode_tagged,
    iter_lm_chunks,
    iter_tag_chunks,
    lm_chunk,
    num_chunks,
    tag_chunk,
)
from jaxdyn.data.brown import BrownDocument, brown_splits, read_brown, read_brown_document
from jaxdyn.data.conllu import (
    RELATIONS,
    ConlluSentence,
    dependency_distance,
    read_conllu,
    relation,
    relation_matrix,
)
from jaxdyn.data.corpora import TaggedCorpus, load_brown, load_ewt, load_lm_corpus
from jaxdyn.data.paths import (
    DATA_DIR_ENV,
    CorpusError,
    CorpusNotFoundError,
    read_lines,
    resolve_data_dir,
)
from jaxdyn.data.ptb import load_ptb
from jaxdyn.data.text import read_text
from jaxdyn.data.vocab import Vocab

__all__ = [
    "DATA_DIR_ENV",
    "RELATIONS",
    "BrownDocument",
    "ConlluSentence",
    "CorpusError",
    "CorpusNotFoundError",
    "TaggedCorpus",
    "Vocab",
    "batchify",
    "brown_splits",
    "dependency_distance",
    "encode_tagged",
    "iter_lm_chunks",
    "iter_tag_chunks",
    "lm_chunk",
    "load_brown",
    "load_ewt",
    "load_lm_corpus",
    "load_ptb",
    "num_chunks",
    "read_brown",
    "read_brown_document",
    "read_conllu",
    "read_lines",
    "read_text",
    "relation",
    "relation_matrix",
    "resolve_data_dir",
    "tag_chunk",
]
