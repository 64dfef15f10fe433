"""Interdependence and syntax (thesis chapter on composition; Saphra & Lopez 2020, Sec. 4).

A language model is trained on UD English-EWT train (lowercased, the same
tokenisation as the parsed evaluation sentences). For every checkpoint
(initialisation and every epoch), decompositional interdependence (DI) is
computed for every word pair ``(i, j)``, ``i < j``, at sequential distance
``j - i`` in ``1 .. max_seq_dist`` in parsed EWT dev (and, by preset, test)
sentences, and paired with the pair's dependency path length and relation.

Measurement choices (documented in the report):

* **Target timestep**: the later word ``j`` (the hidden state right after the
  model reads it), as the thesis's ``lm_syntactic_decomposition.py`` does with its
  default ``--target_offset 0``.
* **Context**: each sentence is read on its own from a zero state, preceded by
  the ``<eos>`` token that precedes every sentence in the training stream; ``<eos>``
  is never part of a span.
* **Spaces**: DI of the top LSTM layer's ``beta_h`` (``di_hidden``, the primary
  measure) and of ``W_dec beta_h`` (``di_logits``); for a Transformer
  (``model.kind``), CD-T's beta of the top block's residual stream and of the logits
  (:mod:`jaxdyn.decompose.transformer`, default rules). The LSTM's come from one call of
  :func:`jaxdyn.decompose.interdependence_batch` per batch (packed schedule: each
  word's span runs from the word to the last target that reads it, each pair span
  is forked from its first word at the second; both spaces share the scans).
* **Batching**: sentences are padded to bucket lengths and packed into
  fixed-size batches (dummy rows fill the last one); a batch's schedule, and so its
  compiled kernel, is the same at every checkpoint; padding never changes a DI
  value (the LSTM is causal and padded positions are never relevant).

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Sec. 4 and Eq. 1; Saphra (2021), PhD thesis, Edinburgh; Murdoch, Liu & Yu (2018),
  ICLR, Eqs. 8-19 (CD).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from jaxdyn.data.conllu import RELATIONS
from jaxdyn.studies._common import iter_selected, study_run_config
from jaxdyn.studies.interactions.config import InteractionsConfig
from jaxdyn.studies.interactions.pairs import batch_di, make_batches, sentence_pairs

#: Relation names in the table (``RELATIONS`` order of :mod:`jaxdyn.data.conllu`).
RELATION_NAMES = {
    "other": "unconnected",
    "head-dependent": "head-dependent",
    "ancestor": "ancestor",
}


# ----------------------------------------------------------------------------- the study


def run_config(config: InteractionsConfig, run, data_dir):
    """The study language model's training config (EWT train, no trace capture)."""
    data = dataclasses.replace(config.data, data_dir=None if data_dir is None else str(data_dir))
    cfg = study_run_config(
        run,
        model=config.model,
        data=data,
        optim=config.optim,
        epochs=config.epochs,
        seed=config.seed,
    )
    seeds = config.seeds if config.seeds is not None else getattr(run, "seeds", 1)
    return dataclasses.replace(cfg, seeds=seeds)


def eval_corpus(path, lowercase: bool):
    """The sentences of a CoNLL-U file with dependency heads, as a one-split corpus.

    Returns:
      ``{"eval": TaggedCorpus}`` (words lowercased if ``lowercase``).

    Raises:
      CorpusNotFoundError: no such file; CorpusError: no sentence or malformed input.
    """
    from jaxdyn.data.conllu import read_conllu
    from jaxdyn.data.corpora import TaggedCorpus
    from jaxdyn.data.paths import CorpusError, CorpusNotFoundError

    path = Path(path)
    if not path.is_file():
        raise CorpusNotFoundError(f"interactions.eval_path: no such CoNLL-U file: {path}")
    sents = read_conllu(path)
    if not sents:
        raise CorpusError(f"interactions.eval_path: {path} holds no sentence")
    words = [[w.lower() for w in s.words] if lowercase else list(s.words) for s in sents]
    return {"eval": TaggedCorpus(sentences=words, heads=[s.heads for s in sents])}


def select_sentences(corpus_splits, config: InteractionsConfig, splits=None):
    """Parsed sentences to analyse: ``[(split, index, words, heads)]`` (valid trees only).

    ``splits`` defaults to ``config.splits``.
    """
    out = []
    for split in config.splits if splits is None else splits:
        c = corpus_splits[split]
        if c.heads is None:
            raise ValueError(f"split {split!r} has no dependency heads")
        for k, (words, heads) in enumerate(zip(c.sentences, c.heads, strict=True)):
            if not config.min_words <= len(words) <= config.max_words:
                continue
            out.append((split, k, words, heads))
            if config.max_sentences is not None and len(out) >= config.max_sentences:
                return out
    return out


def train_lm(corpus_splits, workdir: Path, cfg, progress: bool):
    """Train (or resume) the EWT language model of ``cfg`` into ``workdir``; returns the folder."""
    from jaxdyn.train.loop import train
    from jaxdyn.train.tasks import lm_task_from_tagged

    task = lm_task_from_tagged(corpus_splits, cfg.data)
    res = train(cfg, workdir, task, progress=progress)
    if not res.finished:
        raise RuntimeError(f"language model training in {workdir} did not finish")
    return workdir


def batch_kernel(kind: str, model):
    """The batch DI of a model kind: :func:`batch_di` (LSTM, packed schedule) or CD-T's
    :func:`jaxdyn.decompose.transformer.interdependence_batch` (top block's residual stream
    and the logits); both take a :class:`Batch` and return ``(di_hidden, di_logits)``."""
    if kind == "lstm":
        return batch_di
    from jaxdyn.decompose import interdependence_batch_for

    batch = interdependence_batch_for(kind, model.heads)

    def di(params, b):
        out = batch(
            params, b.tokens, b.pairs, b.targets, lengths=b.lengths, space=("hidden", "logits")
        )
        return np.asarray(out["hidden"]), np.asarray(out["logits"])

    return di


def di_table(
    lm_dir: Path, sentences, config: InteractionsConfig, *, progress: bool = True
) -> dict[str, np.ndarray]:
    """DI of every pair of ``sentences`` at every checkpoint of every member of the run in
    ``lm_dir`` (a population when its ``seeds > 1``; each member read back as its own model).

    Returns:
      Tidy columns: ``member, seed, split, sentence, i, j, word_i, word_j, seq_dist,
      syn_dist, relation, epoch, di_hidden, di_logits`` (one row per member, pair and
      checkpoint).
    """
    from jaxdyn.train.trajectory import run_model

    lm_cfg, model, vocab, _ = run_model(lm_dir)
    di_fn = batch_kernel(lm_cfg.model.kind, model)
    ids = [vocab.encode(w) for _, _, w, _ in sentences]
    pair_sets = [sentence_pairs(h, config.max_seq_dist) for _, _, _, h in sentences]
    batches = make_batches(
        ids,
        pair_sets,
        eos_id=vocab.eos_id,
        max_seq_dist=config.max_seq_dist,
        bucket_width=config.bucket_width,
        hidden=config.model.hidden,
        batch_elems=config.batch_elems,
    )
    cat = lambda key: np.concatenate([p[key] for p in pair_sets])  # noqa: E731
    n_rows = sum(len(p["i"]) for p in pair_sets)
    sent_of = np.concatenate([np.full(len(p["i"]), s) for s, p in enumerate(pair_sets)])
    static = {
        "split": np.array([sentences[s][0] for s in sent_of]),
        "sentence": np.array([sentences[s][1] for s in sent_of]),
        "i": cat("i"),
        "j": cat("j"),
        "seq_dist": cat("seq_dist"),
        "syn_dist": cat("syn_dist"),
        "relation": np.array([RELATION_NAMES[RELATIONS[r]] for r in cat("relation")]),
    }
    static["word_i"] = np.array([sentences[s][2][i] for s, i in zip(sent_of, static["i"])])
    static["word_j"] = np.array([sentences[s][2][j] for s, j in zip(sent_of, static["j"])])
    cols: dict[str, list] = {
        k: [] for k in ("member", "seed", *static, "epoch", "di_hidden", "di_logits")
    }
    members = range(lm_cfg.seeds) if lm_cfg.seeds > 1 else [None]
    for ck in (
        ck
        for m in members
        for ck in iter_selected(lm_dir, config.checkpoints, "interactions.checkpoints", member=m)
    ):
        member = ck.member or 0
        dh, dl = np.zeros(n_rows), np.zeros(n_rows)
        for b in batches:
            h, lg = di_fn(ck.params, b)
            keep = b.rows >= 0
            dh[b.rows[keep]], dl[b.rows[keep]] = h[keep], lg[keep]
        if not (np.all(np.isfinite(dh)) and np.all(np.isfinite(dl))):
            raise FloatingPointError(f"non-finite DI at epoch {ck.epoch}")
        cols["member"].append(np.full(n_rows, member))
        cols["seed"].append(np.full(n_rows, lm_cfg.seed + member))
        for k, v in static.items():
            cols[k].append(v)
        cols["epoch"].append(np.full(n_rows, ck.epoch))
        cols["di_hidden"].append(dh)
        cols["di_logits"].append(dl)
        if progress:
            who = "" if ck.member is None else f"member {ck.member}, "
            print(f"[interactions] {who}epoch {ck.epoch}: DI of {n_rows} pairs", file=sys.stderr)
    return {k: np.concatenate(v) for k, v in cols.items()}


def run_interactions(
    workdir: str | Path,
    data_dir: str | Path | None,
    config: InteractionsConfig,
    *,
    run=None,
    progress: bool = True,
    corpus_splits=None,
) -> dict | None:
    """Train the LM, compute the DI table and write findings, plots and the report section.

    Args:
      workdir: the run folder (files go to ``workdir/interactions``, figures to
        ``workdir/report``).
      data_dir: folder holding ``ud-english-ewt``; None writes a "skipped" section.
      config: the study's section of the config tree.
      run: the run's config (its ``epochs``/``seed`` fill the study's ``None``s);
        default ``RunConfig()``.
      progress: progress output.
      corpus_splits: ``{"train", "valid", "test"}`` TaggedCorpus with heads instead of
        reading EWT from ``data_dir`` (tests).

    Returns:
      The findings dict, or None when skipped.
    """
    from jaxdyn.config import RunConfig
    from jaxdyn.studies.interactions.report import write_outputs, write_skipped

    workdir = Path(workdir)
    run = RunConfig() if run is None else run
    if corpus_splits is None:
        if data_dir is None:
            write_skipped(workdir, "no corpus folder was given (`--data-dir`)")
            return None
        from jaxdyn.data.corpora import load_ewt

        corpus_splits = load_ewt(data_dir, lowercase=config.data.lowercase)
    out = workdir / "interactions"
    cfg = run_config(config, run, data_dir)
    if config.eval_path is not None:
        evaluated = eval_corpus(config.eval_path, config.data.lowercase)
        sentences = select_sentences(evaluated, config, splits=("eval",))
        source = str(config.eval_path)
    else:
        sentences = select_sentences(corpus_splits, config)
        source = "EWT " + "/".join(config.splits)
    if not sentences:
        from jaxdyn.config import ConfigError

        raise ConfigError(
            "interactions: no parsed sentence within interactions.min_words.."
            "interactions.max_words words"
        )
    longest = max(len(w) for _, _, w, _ in sentences) + 1  # with <eos>
    if cfg.model.kind == "transformer" and cfg.model.positions == "learned":
        if longest > cfg.data.bptt:
            from jaxdyn.config import ConfigError

            raise ConfigError(
                f"interactions: a sentence of {longest - 1} words and <eos> exceeds the "
                f"transformer's context of {cfg.data.bptt} (interactions.data.bptt); raise "
                "it or lower interactions.max_words"
            )
    lm_dir = train_lm(corpus_splits, out / "lm", cfg, progress)
    table = di_table(lm_dir, sentences, config, progress=progress)
    return write_outputs(workdir, table, config, cfg, n_sentences=len(sentences), source=source)
