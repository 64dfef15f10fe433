"""Configuration of the representation-similarity study (``similarity.*`` keys)."""

from __future__ import annotations

import dataclasses

from jaxdyn.config.sections import DataConfig, ModelConfig, OptimConfig

CCA_METHODS = ("svd", "gram")


@dataclasses.dataclass(frozen=True)
class SimilarityConfig:
    """The similarity study.

    Attributes:
      corpora: corpus names to run (``ewt``, ``brown``; others need corpora passed in).
      tasks: ``(corpus, tag layers)`` pairs: the taggers trained per corpus.
      own_init: tasks that also get a tagger from its own seed (None: every task).
      pos_tasks / topic_tasks: which tag layers count as part of speech / topic.
      topic_layer: the layer used to interleave topic-ordered corpora (None: no interleaving).
      span_tokens: size of the interleaved spans (whole sentences, one topic each).
      model, optim: every run's model and optimizer (language model and taggers
        alike; same sections as the run's).
      data: truncation and batching of every run (``corpus`` is set per corpus;
        ``max_train_tokens`` / ``max_eval_tokens`` cut the train and valid/test streams).
      epochs: training epochs of every run (checkpoints at 0..epochs); None: the run's.
      seed: member 0's language-model (and shared taggers') seed; own-init taggers use
        ``seed + 101 k`` (k = 1, 2, ... over the corpus's tasks); None: the run's ``seed``.
      seeds: S, the study's members per corpus (None: the run's ``seeds``). Member ``m``
        trains its own language model and taggers with seed ``seed + m`` (own-init
        taggers ``seed + m + 101 k``; shared-init taggers start from member ``m``'s
        language-model initialisation), each as its own run; the findings are computed
        per member and decided across them (:mod:`jaxdyn.studies.verdicts`). Member 0's
        runs are the single-seed study's (same folders).
      heldout_tokens: N, the held-out tokens the activations are compared on (first
        ``heldout_tokens // data.eval_batch_size`` positions of each valid-stream row).
      svcca_keep: SVCCA's variance fraction; cca_method: ``svd`` or ``gram``.
      stable_threshold: SVCCA with the own final checkpoint that counts as "stable".
      min_effect: similarity differences within this count as ties in the findings, and
        the margin (SVCCA units) that findings 2 and 3 must exceed across seeds.
      probe_*: the diagnostic MLP probes (hidden width, full-batch AdamW steps,
        learning rate, weight decay, fraction of each held-out row used for training).
      pair_chunk: comparisons evaluated together (memory ~ pair_chunk * 2 * N * D).
    """

    corpora: tuple[str, ...] = ("ewt", "brown")
    tasks: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("ewt", ("xpos", "upos", "deprel", "genre")),
        ("brown", ("pos", "genre")),
    )
    own_init: tuple[str, ...] | None = None
    pos_tasks: tuple[str, ...] = ("xpos", "upos", "pos")
    topic_tasks: tuple[str, ...] = ("genre",)
    topic_layer: str | None = "genre"
    span_tokens: int = 400
    model: ModelConfig = ModelConfig(emb_dim=64, hidden=64, num_layers=2, dropout=0.2)
    data: DataConfig = DataConfig(
        lowercase=True, max_vocab=8_000, max_train_tokens=40_000, max_eval_tokens=6_000
    )
    optim: OptimConfig = OptimConfig()
    epochs: int | None = 4
    seed: int | None = None
    seeds: int | None = None
    heldout_tokens: int = 2_000
    svcca_keep: float = 0.99
    cca_method: str = "svd"
    stable_threshold: float = 0.9
    min_effect: float = 0.01
    probe_hidden: int = 64
    probe_steps: int = 300
    probe_lr: float = 1e-2
    probe_weight_decay: float = 1e-4
    probe_train_frac: float = 0.7
    pair_chunk: int = 32

    def __post_init__(self):
        if self.cca_method not in CCA_METHODS:
            raise ValueError(
                f"similarity.cca_method must be one of {CCA_METHODS}, got {self.cca_method!r}"
            )
        if not 0.0 < self.svcca_keep <= 1.0:
            raise ValueError(f"similarity.svcca_keep must be in (0, 1], got {self.svcca_keep}")
        if not 0.0 < self.probe_train_frac < 1.0:
            raise ValueError("similarity.probe_train_frac must be in (0, 1)")
        for k in ("heldout_tokens", "span_tokens", "pair_chunk", "probe_hidden", "probe_steps"):
            if getattr(self, k) < 1:
                raise ValueError(f"similarity.{k} must be >= 1, got {getattr(self, k)}")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError("similarity.epochs must be >= 0 or none")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError(f"similarity.seeds must be >= 1 or none, got {self.seeds}")
        if not self.min_effect >= 0:
            raise ValueError(f"similarity.min_effect must be >= 0, got {self.min_effect}")

    def tasks_of(self, corpus: str) -> tuple[str, ...]:
        """Tag layers trained for ``corpus``."""
        for name, layers in self.tasks:
            if name == corpus:
                return tuple(layers)
        raise ValueError(f"no tasks configured for corpus {corpus!r} (tasks: {self.tasks})")

    def has_own(self, task: str) -> bool:
        """Whether ``task`` also gets a tagger from its own seed."""
        return self.own_init is None or task in self.own_init
