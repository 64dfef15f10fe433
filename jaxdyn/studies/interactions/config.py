"""Configuration of the syntax-interdependence study (``interactions.*`` keys)."""

from __future__ import annotations

import dataclasses

from jaxdyn.config.sections import DataConfig, ModelConfig, OptimConfig


@dataclasses.dataclass(frozen=True)
class InteractionsConfig:
    """The syntax-interdependence study.

    Attributes:
      model, optim: the study's language model (same sections as the run's).
      data: its training corpus (``corpus`` must be ``ewt``: lowercased EWT train;
        ``data_dir`` is filled in from the run's corpora folder).
      epochs: training epochs (checkpoints: initialisation + every epoch); None:
        the run's ``epochs``.
      seed: initialisation seed; None: the run's ``seed``.
      eval_path: a CoNLL-U file (with dependency heads) whose sentences are analysed
        instead of the EWT ``splits``; words are lowercased like the training data
        when ``data.lowercase`` is set.
      splits: EWT splits whose parsed sentences are analysed (``valid`` = dev).
      max_sentences: first sentences (per the order of the splits) to analyse.
      min_words, max_words: sentence lengths kept (longer ones are left out).
      max_seq_dist: largest sequential distance ``j - i``.
      bucket_width: padded lengths are multiples of this (``<eos>`` included).
      batch_elems: cap on ``batch x spans x length x hidden`` per compiled call.
      syn_cap: syntactic distances ``>= syn_cap`` share one bin in the heatmap.
      checkpoints: which checkpoints to score: ``all``, ``last`` or epochs ``0,5``.
      seeds: language models trained (one population, seeds ``seed + m``), each
        scored as its own model; the finding is decided across them. None: the
        run's ``seeds``.
      rho_margin: the finding needs rho(DI, syntactic distance) below the untrained
        checkpoint's by more than this (and < 0), across seeds.
    """

    model: ModelConfig = ModelConfig(emb_dim=64, hidden=64, num_layers=2, dropout=0.2)
    data: DataConfig = DataConfig(
        corpus="ewt", lowercase=True, max_vocab=10_000, max_eval_tokens=20_000
    )
    optim: OptimConfig = OptimConfig()
    epochs: int | None = 5
    seed: int | None = None
    eval_path: str | None = None
    splits: tuple[str, ...] = ("valid",)
    max_sentences: int | None = 300
    min_words: int = 3
    max_words: int = 39
    max_seq_dist: int = 5
    bucket_width: int = 10
    batch_elems: int = 1 << 23
    syn_cap: int = 8
    checkpoints: str = "all"
    seeds: int | None = None
    rho_margin: float = 0.05

    def __post_init__(self):
        from jaxdyn.studies._common import check_checkpoints

        if self.data.corpus != "ewt":
            raise ValueError(
                f"interactions.data.corpus must be 'ewt' (the parsed training corpus), "
                f"got {self.data.corpus!r}"
            )
        bad = [s for s in self.splits if s not in ("train", "valid", "test")]
        if bad or not self.splits:
            raise ValueError(f"interactions.splits must name train/valid/test, got {self.splits}")
        for k in ("min_words", "max_words", "max_seq_dist", "bucket_width", "batch_elems"):
            if getattr(self, k) < 1:
                raise ValueError(f"interactions.{k} must be >= 1, got {getattr(self, k)}")
        if self.min_words > self.max_words:
            raise ValueError("interactions.min_words must be <= interactions.max_words")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError(f"interactions.seeds must be >= 1 or none, got {self.seeds}")
        if not self.rho_margin >= 0:
            raise ValueError(f"interactions.rho_margin must be >= 0, got {self.rho_margin}")
        if self.max_sentences is not None and self.max_sentences < 1:
            raise ValueError("interactions.max_sentences must be >= 1 or none")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError("interactions.epochs must be >= 0 or none")
        check_checkpoints(self.checkpoints, "interactions.checkpoints")
