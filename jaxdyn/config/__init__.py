"""Frozen run configurations, presets, and ``key=value`` overrides.

A :class:`RunConfig` fully describes a training run; presets name the common
ones (``smoke``: CI-sized; ``default``: what ``jaxdyn run`` does on a laptop;
``thesis``: Saphra's setup on the Penn Treebank). The CLI maps flags to configs
here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """LSTM model hyperparameters (thesis: 200/200, 2 layers, dropout 0.2)."""

    emb_dim: int = 200
    hidden: int = 200
    num_layers: int = 2
    dropout: float = 0.2
    tie_weights: bool = False
    init_range: float = 0.1

    def __post_init__(self):
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
    """Optimizer (thesis: SGD, lr 20, clip 0.25, lr / 4 on a validation plateau)."""

    name: str = "sgd"
    lr: float = 20.0
    clip: float = 0.25
    plateau_factor: float = 0.25
    weight_decay: float = 0.0

    def __post_init__(self):
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


#: Top-level keys of :class:`RunConfig` that define training (see ``training_dict``).
TRAINING_KEYS = (
    "model",
    "data",
    "optim",
    "capture",
    "epochs",
    "seed",
    "checkpoint_every_steps",
    "log_every",
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run.

    Attributes:
      epochs: passes over the training stream.
      seed: initialisation and dropout seed.
      checkpoint_every_steps: extra checkpoints every N steps (0: per epoch only).
      log_every: steps between progress/metric log lines.
    """

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    capture: CaptureConfig = CaptureConfig()
    epochs: int = 40
    seed: int = 1111
    checkpoint_every_steps: int = 0
    log_every: int = 50

    def __post_init__(self):
        if self.epochs < 0 or self.checkpoint_every_steps < 0:
            raise ValueError("epochs and checkpoint_every_steps must be >= 0")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    def training_dict(self) -> dict[str, Any]:
        """The keys that define the trained model (what a resumed run must match).

        Study sections are left out: changing an analysis option never invalidates
        a trained run.
        """
        d = self.to_dict()
        return {k: d[k] for k in TRAINING_KEYS if k in d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        return _build(cls, d, "")


def _build(cls, d, prefix):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(prefix + k for k in unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in d.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = _build(t, v, prefix + k + ".")
        elif isinstance(v, list):
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = v
    return cls(**kwargs)


PRESETS: dict[str, RunConfig] = {
    # CI-sized: a slice of PTB, a small model; a couple of minutes on 2 cores.
    "smoke": RunConfig(
        model=ModelConfig(emb_dim=32, hidden=32, num_layers=2, dropout=0.2),
        data=DataConfig(max_vocab=2000, max_train_tokens=40_000, max_eval_tokens=8_000),
        capture=CaptureConfig(every=20),
        epochs=3,
        log_every=20,
    ),
    # `jaxdyn run` with no arguments: about 5 minutes on 2 cores (15 with --data-dir).
    "default": RunConfig(
        model=ModelConfig(emb_dim=128, hidden=128, num_layers=2, dropout=0.2),
        data=DataConfig(max_train_tokens=250_000, max_eval_tokens=40_000),
        capture=CaptureConfig(every=50),
        epochs=6,
    ),
    # Saphra (2021): 2 x 200 LSTM on the full Penn Treebank, 40 epochs.
    "thesis": RunConfig(),
}


def preset(name: str) -> RunConfig:
    """A named preset (``smoke``, ``default``, ``thesis``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


def _coerce(value: str, t) -> Any:
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if value.lower() in ("none", "null"):
            return None
        return _coerce(value, args[0])
    if origin is tuple:
        inner = typing.get_args(t)[0]
        return tuple(_coerce(v, inner) for v in value.split(",") if v)
    if t is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if t is int:
        if "e" not in value.lower():
            return int(value)
        f = float(value)  # 1e3: only if it is a whole number
        if not f.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(f)
    if t is float:
        return float(value)
    return value


def override(cfg: RunConfig, assignments: list[str]) -> RunConfig:
    """Apply ``section.key=value`` assignments (e.g. ``optim.lr=5``, ``epochs=2``).

    Raises:
      ValueError: unknown key or a value of the wrong type, naming the key.
    """
    for a in assignments:
        if "=" not in a:
            raise ValueError(f"override {a!r} is not KEY=VALUE (e.g. optim.lr=5)")
        key, value = a.split("=", 1)
        parts = key.strip().split(".")
        cfg = _set(cfg, parts, value.strip(), key)
    return cfg


def _set(obj, parts, value, full_key):
    fields = {f.name for f in dataclasses.fields(obj)}
    if parts[0] not in fields:
        raise ValueError(f"unknown config key {full_key!r}; valid here: {sorted(fields)}")
    t = typing.get_type_hints(type(obj))[parts[0]]
    if len(parts) == 1:
        if dataclasses.is_dataclass(t):
            raise ValueError(
                f"{full_key!r} is a section; set one of its keys, e.g. {full_key}.x=..."
            )
        try:
            return dataclasses.replace(obj, **{parts[0]: _coerce(value, t)})
        except ValueError as e:
            raise ValueError(f"bad value for {full_key!r}: {e}") from e
    sub = getattr(obj, parts[0])
    if not dataclasses.is_dataclass(sub):
        raise ValueError(f"{'.'.join(parts[:1])!r} in {full_key!r} has no sub-keys")
    return dataclasses.replace(obj, **{parts[0]: _set(sub, parts[1:], value, full_key)})


def describe(cfg: RunConfig) -> str:
    """Pretty JSON of a config (for logs and reports)."""
    return json.dumps(cfg.to_dict(), indent=2)
