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
  measure) and of ``W_dec beta_h`` (``di_logits``), both from one beta-only CD
  recursion per span (:func:`jaxdyn.analysis.interdependence.span_beta`).
* **Batching**: sentences are padded to bucket lengths and packed into
  fixed-size batches (dummy rows fill the last one), so each bucket compiles
  once for all checkpoints; padding never changes a DI value (the LSTM is
  causal and padded positions are never relevant).

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

from jaxdyn.config import CaptureConfig, DataConfig, ModelConfig, RunConfig
from jaxdyn.data.conllu import RELATIONS
from jaxdyn.studies.interactions_pairs import (
    Batch,
    batch_di,
    make_batches,
    max_pairs,
    sentence_pairs,
)

__all__ = [
    "PRESETS",
    "Batch",
    "InteractionsConfig",
    "batch_di",
    "di_table",
    "interactions_stage",
    "make_batches",
    "max_pairs",
    "preset",
    "run_interactions",
    "select_sentences",
    "sentence_pairs",
    "train_lm",
]

#: Relation names in the table (``RELATIONS`` order of :mod:`jaxdyn.data.conllu`).
RELATION_NAMES = {
    "other": "unconnected",
    "head-dependent": "head-dependent",
    "ancestor": "ancestor",
}


@dataclasses.dataclass(frozen=True)
class InteractionsConfig:
    """Sizes of the syntax-interdependence study.

    Attributes:
      emb_dim, hidden, num_layers, dropout: the language model.
      epochs: training epochs (checkpoints: initialisation + every epoch).
      max_vocab: vocabulary size (None: all training types).
      max_train_tokens, max_eval_tokens: truncate EWT train / the validation stream.
      lr: SGD learning rate (clip 0.25, plateau decay as in the thesis).
      splits: EWT splits whose parsed sentences are analysed (``valid`` = dev).
      max_sentences: first sentences (per the order of the splits) to analyse.
      min_words, max_words: sentence lengths kept (longer ones are left out).
      max_seq_dist: largest sequential distance ``j - i``.
      bucket_width: padded lengths are multiples of this (``<eos>`` included).
      batch_elems: cap on ``batch x spans x length x hidden`` per compiled call.
      syn_cap: syntactic distances ``>= syn_cap`` share one bin in the heatmap.
      seed: initialisation seed.
    """

    emb_dim: int = 64
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.2
    epochs: int = 5
    max_vocab: int | None = 10_000
    max_train_tokens: int | None = None
    max_eval_tokens: int | None = 20_000
    lr: float = 20.0
    splits: tuple[str, ...] = ("valid",)
    max_sentences: int | None = 300
    min_words: int = 3
    max_words: int = 39
    max_seq_dist: int = 5
    bucket_width: int = 10
    batch_elems: int = 1 << 23
    syn_cap: int = 8
    seed: int = 1111

    def run_config(self, data_dir: str | Path | None) -> RunConfig:
        """The language model's :class:`RunConfig` (EWT, lowercased, no trace capture)."""
        return RunConfig(
            model=ModelConfig(self.emb_dim, self.hidden, self.num_layers, self.dropout),
            data=DataConfig(
                corpus="ewt",
                data_dir=None if data_dir is None else str(data_dir),
                lowercase=True,
                max_vocab=self.max_vocab,
                max_train_tokens=self.max_train_tokens,
                max_eval_tokens=self.max_eval_tokens,
            ),
            optim=dataclasses.replace(RunConfig().optim, lr=self.lr),
            capture=CaptureConfig(enabled=False),
            epochs=self.epochs,
            seed=self.seed,
        )


PRESETS: dict[str, InteractionsConfig] = {
    "smoke": InteractionsConfig(
        emb_dim=16,
        hidden=16,
        epochs=2,
        max_vocab=1500,
        max_train_tokens=15_000,
        max_eval_tokens=3_000,
        max_sentences=24,
        max_words=19,
        bucket_width=10,
    ),
    "default": InteractionsConfig(),
    # Saphra (2021): 2 x 200 LSTM, 40 epochs, all parsed dev and test sentences.
    "thesis": InteractionsConfig(
        emb_dim=200,
        hidden=200,
        epochs=40,
        max_vocab=None,
        max_eval_tokens=None,
        splits=("valid", "test"),
        max_sentences=None,
        max_words=79,
        batch_elems=1 << 25,
    ),
}


def preset(name: str) -> InteractionsConfig:
    """A named preset (``smoke``, ``default``, ``thesis``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown interactions preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


# ----------------------------------------------------------------------------- the study


def select_sentences(corpus_splits, config: InteractionsConfig):
    """Parsed sentences to analyse: ``[(split, index, words, heads)]`` (valid trees only)."""
    out = []
    for split in config.splits:
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


def train_lm(corpus_splits, workdir: Path, config: InteractionsConfig, data_dir, progress: bool):
    """Train (or resume) the EWT language model into ``workdir``; returns the run folder."""
    from jaxdyn.train.loop import train
    from jaxdyn.train.tasks import lm_task_from_tagged

    cfg = config.run_config(data_dir)
    task = lm_task_from_tagged(corpus_splits, cfg.data)
    res = train(cfg, workdir, task, progress=progress)
    if not res.finished:
        raise RuntimeError(f"language model training in {workdir} did not finish")
    return workdir


def di_table(
    lm_dir: Path, sentences, config: InteractionsConfig, *, progress: bool = True
) -> dict[str, np.ndarray]:
    """DI of every pair of ``sentences`` at every checkpoint of the run in ``lm_dir``.

    Returns:
      Tidy columns: ``split, sentence, i, j, word_i, word_j, seq_dist, syn_dist,
      relation, epoch, di_hidden, di_logits`` (one row per pair and checkpoint).
    """
    from jaxdyn.train.trajectory import iter_checkpoints, run_model

    _, _, vocab, _ = run_model(lm_dir)
    ids = [vocab.encode(w) for _, _, w, _ in sentences]
    pair_sets = [sentence_pairs(h, config.max_seq_dist) for _, _, _, h in sentences]
    batches = make_batches(
        ids,
        pair_sets,
        eos_id=vocab.eos_id,
        max_seq_dist=config.max_seq_dist,
        bucket_width=config.bucket_width,
        hidden=config.hidden,
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
    cols: dict[str, list] = {k: [] for k in (*static, "epoch", "di_hidden", "di_logits")}
    for ck in iter_checkpoints(lm_dir):
        dh, dl = np.zeros(n_rows), np.zeros(n_rows)
        for b in batches:
            h, lg = batch_di(ck.params, b)
            keep = b.rows >= 0
            dh[b.rows[keep]], dl[b.rows[keep]] = h[keep], lg[keep]
        if not (np.all(np.isfinite(dh)) and np.all(np.isfinite(dl))):
            raise FloatingPointError(f"non-finite DI at epoch {ck.epoch}")
        for k, v in static.items():
            cols[k].append(v)
        cols["epoch"].append(np.full(n_rows, ck.epoch))
        cols["di_hidden"].append(dh)
        cols["di_logits"].append(dl)
        if progress:
            print(f"[interactions] epoch {ck.epoch}: DI of {n_rows} pairs", file=sys.stderr)
    return {k: np.concatenate(v) for k, v in cols.items()}


def run_interactions(
    workdir: str | Path,
    data_dir: str | Path | None,
    config: InteractionsConfig,
    *,
    progress: bool = True,
    corpus_splits=None,
) -> dict | None:
    """Train the LM, compute the DI table and write findings, plots and the report section.

    Args:
      workdir: the run folder (files go to ``workdir/interactions``, figures to
        ``workdir/report``).
      data_dir: folder holding ``ud-english-ewt``; None writes a "skipped" section.
      config: study sizes.
      progress: progress output.
      corpus_splits: ``{"train", "valid", "test"}`` TaggedCorpus with heads instead of
        reading EWT from ``data_dir`` (tests).

    Returns:
      The findings dict, or None when skipped.
    """
    from jaxdyn.studies.interactions_report import write_outputs, write_skipped

    workdir = Path(workdir)
    if corpus_splits is None:
        if data_dir is None:
            write_skipped(workdir, "no corpus folder was given (`--data-dir`)")
            return None
        from jaxdyn.data.corpora import load_ewt

        corpus_splits = load_ewt(data_dir, lowercase=True)
    out = workdir / "interactions"
    lm_dir = train_lm(corpus_splits, out / "lm", config, data_dir, progress)
    sentences = select_sentences(corpus_splits, config)
    if not sentences:
        raise ValueError("no parsed sentence within the configured lengths")
    table = di_table(lm_dir, sentences, config, progress=progress)
    return write_outputs(workdir, table, config, n_sentences=len(sentences))


def interactions_stage(ctx) -> dict | None:
    """``jaxdyn run`` stage: preset from ``ctx.options["preset"]`` (default ``default``)."""
    config = preset(ctx.options.get("preset", "default"))
    return run_interactions(ctx.workdir, ctx.data_dir, config, progress=ctx.progress)
