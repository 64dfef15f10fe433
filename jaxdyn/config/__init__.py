"""The one configuration tree of a run: training sections, study sections, presets.

A :class:`RunConfig` describes everything ``jaxdyn run`` does: the language model
it trains (``model``, ``data``, ``optim``, ``capture``, ``epochs``, ``seed``, ...)
and every study stage (``sparsity``, ``similarity``, ``interactions``,
``bottom_up``). Studies that train models of their own embed the same
``model``/``data``/``optim`` sections; their ``epochs`` and ``seed`` are the
run's where they are ``None``. Presets name whole trees (``smoke``: CI-sized;
``default``: what ``jaxdyn run`` does on a laptop; ``thesis``: Saphra's setup)
and are defined here only. Any leaf is reachable with ``--set KEY=VALUE``
(:func:`override`); ``jaxdyn config`` prints a tree as JSON that
``--config FILE`` reads back (:func:`load_config`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jaxdyn.config.sections import (
    MODEL_KINDS,
    CaptureConfig,
    CheckpointConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
)
from jaxdyn.config.tree import ConfigError, build, leaf_keys, set_key
from jaxdyn.studies.attention.config import AttentionConfig
from jaxdyn.studies.bottom_up.config import BottomUpConfig
from jaxdyn.studies.interactions.config import InteractionsConfig
from jaxdyn.studies.phases.config import PhasesConfig
from jaxdyn.studies.similarity.config import SimilarityConfig
from jaxdyn.studies.sparsity.config import SparsityConfig

__all__ = [
    "MODEL_KINDS",
    "PRESETS",
    "TRAINING_KEYS",
    "AttentionConfig",
    "BottomUpConfig",
    "CaptureConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "InteractionsConfig",
    "ModelConfig",
    "OptimConfig",
    "PhasesConfig",
    "RunConfig",
    "SimilarityConfig",
    "SparsityConfig",
    "describe",
    "leaf_keys",
    "load_config",
    "override",
    "preset",
]

#: Top-level keys of :class:`RunConfig` that define training (see ``training_dict``).
TRAINING_KEYS = (
    "model",
    "data",
    "optim",
    "capture",
    "epochs",
    "seed",
    "seeds",
    "checkpoint_every_steps",
    "checkpoint",
    "log_every",
    "data_order",
)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run: the language model trained, and the studies run on it.

    ``RunConfig()`` trains the thesis model (Saphra's setup); its study sections
    hold the ``default`` preset's sizes. Use ``preset("thesis")`` for the thesis
    study throughout.

    Attributes:
      model, data, optim, capture: the run's language model and its trace capture.
      epochs: passes over the training stream.
      seed: initialisation and dropout seed.
      seeds: population size P: 1 trains one model (seed ``seed``); P > 1 trains P
        members as one vmapped state, member ``m`` with seed ``seed + m``
        (``jaxdyn.train.population``).
      checkpoint_every_steps: extra checkpoints every N steps (0: per epoch only).
      checkpoint: the checkpoint schedule, kind and retention (``checkpoint.*``;
        ``jaxdyn.train.schedule``); the default saves per epoch, as before.
      log_every: steps between progress/metric log lines.
      data_order: ``shared`` (every population member sees the chunks in the same
        order) or ``per_member`` (each member, and a single run, starts every epoch
        at its own chunk offset drawn from its seed and the epoch;
        ``jaxdyn.train.loop.chunk_offset``).
      tensorboard: also write TensorBoard event files (``RUN/tensorboard``).
      sparsity, similarity, interactions, bottom_up, attention: the study stages' options
        (``attention``: syntactic attention structure of a Transformer run).
      phases: the training map (metric trajectories, latent phases) of the run's checkpoints.
    """

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    capture: CaptureConfig = CaptureConfig()
    epochs: int = 40
    seed: int = 1111
    seeds: int = 1
    checkpoint_every_steps: int = 0
    checkpoint: CheckpointConfig = CheckpointConfig()
    log_every: int = 50
    data_order: str = "shared"
    tensorboard: bool = True
    sparsity: SparsityConfig = SparsityConfig()
    similarity: SimilarityConfig = SimilarityConfig()
    interactions: InteractionsConfig = InteractionsConfig()
    bottom_up: BottomUpConfig = BottomUpConfig()
    attention: AttentionConfig = AttentionConfig()
    phases: PhasesConfig = PhasesConfig()

    def __post_init__(self):
        if self.epochs < 0 or self.checkpoint_every_steps < 0:
            raise ValueError("epochs and checkpoint_every_steps must be >= 0")
        if self.seeds < 1:
            raise ValueError(f"seeds (the population size) must be >= 1, got {self.seeds}")
        if self.data_order not in ("shared", "per_member"):
            raise ValueError(
                f"data_order must be 'shared' or 'per_member', got {self.data_order!r}"
            )
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the whole tree."""
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
        """Inverse of :meth:`to_dict`; missing keys keep their defaults.

        Raises:
          ConfigError: unknown keys (naming the closest valid ones) or bad values.
        """
        return build(cls, d)


_SMOKE_MODEL = ModelConfig(emb_dim=32, hidden=32, num_layers=2, dropout=0.2)
_THESIS_MODEL = ModelConfig()  # 2 x 200 LSTM, embedding 200, dropout 0.2

PRESETS: dict[str, RunConfig] = {
    # CI-sized: a slice of PTB, small models; about a minute on 2 cores with the corpora.
    "smoke": RunConfig(
        model=_SMOKE_MODEL,
        data=DataConfig(max_vocab=2000, max_train_tokens=40_000, max_eval_tokens=8_000),
        capture=CaptureConfig(every=20),
        epochs=3,
        log_every=20,
        similarity=SimilarityConfig(
            corpora=("ewt",),
            tasks=(("ewt", ("xpos", "genre")),),
            own_init=("xpos",),
            model=_SMOKE_MODEL,
            data=DataConfig(
                lowercase=True, max_vocab=4_000, max_train_tokens=15_000, max_eval_tokens=2_000
            ),
            epochs=2,
            heldout_tokens=500,
            span_tokens=300,
            probe_hidden=32,
            probe_steps=150,
        ),
        interactions=InteractionsConfig(
            model=ModelConfig(emb_dim=16, hidden=16, num_layers=2, dropout=0.2),
            data=DataConfig(
                corpus="ewt",
                lowercase=True,
                max_vocab=1500,
                max_train_tokens=15_000,
                max_eval_tokens=3_000,
            ),
            epochs=2,
            max_sentences=24,
            max_words=19,
            bucket_width=10,
        ),
        bottom_up=BottomUpConfig(
            rule_lengths=(2,),
            familiar_repeats=10,
            vocab_size=20,
            num_tokens=12_000,
            num_rules=600,
            bank_size=10,
            num_eval=40,
            eval_length=12,
            model=ModelConfig(emb_dim=16, hidden=16, num_layers=2, dropout=0.0),
            epochs=2,
        ),
    ),
    # `jaxdyn run` with no arguments (see the README for measured times).
    "default": RunConfig(
        model=ModelConfig(emb_dim=128, hidden=128, num_layers=2, dropout=0.2),
        data=DataConfig(max_train_tokens=250_000, max_eval_tokens=40_000),
        capture=CaptureConfig(every=50),
        epochs=6,
    ),
    # Saphra (2021): 2 x 200 LSTMs, 40 epochs, full corpora, for the run and every study.
    "thesis": RunConfig(
        similarity=SimilarityConfig(
            model=_THESIS_MODEL,
            data=DataConfig(lowercase=True, max_vocab=None),
            epochs=None,
            heldout_tokens=5_000,
            probe_hidden=200,
            probe_steps=1_000,
            cca_method="gram",
        ),
        interactions=InteractionsConfig(
            model=_THESIS_MODEL,
            data=DataConfig(corpus="ewt", lowercase=True),
            epochs=None,
            splits=("valid", "test"),
            max_sentences=None,
            max_words=79,
            batch_elems=1 << 25,
        ),
        # the thesis generator's defaults (vocabulary 1000, 1M tokens, 1000 rules, 100
        # conduits, sequences of 35) with a 2 x 200 LSTM, dropout 0.2
        bottom_up=BottomUpConfig(
            rule_lengths=(2, 4, 6, 8, 10),
            familiar_repeats=10,
            vocab_size=1000,
            num_tokens=1_000_000,
            num_rules=1000,
            bank_size=100,
            num_eval=1000,
            eval_length=35,
            model=_THESIS_MODEL,
            epochs=None,
        ),
    ),
}


def preset(name: str) -> RunConfig:
    """A named preset (``smoke``, ``default``, ``thesis``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


#: Each model kind's usual optimizer recipe. Setting ``model.kind`` (or a study's
#: ``<study>.model.kind``) with :func:`override` swaps the sibling ``optim`` section from
#: the old kind's recipe to the new one's, unless the same call sets ``optim`` keys:
#: the transformer trains with Adam, linear warmup and clipping at 1, not SGD at lr 20.
KIND_OPTIM: dict[str, OptimConfig] = {
    "lstm": OptimConfig(),
    "transformer": OptimConfig(name="adam", lr=1e-3, clip=1.0, warmup_steps=100),
}


def _kind_defaults(cfg, keys: list[str], prefix: str = ""):
    """Swap ``optim`` to the recipe of a newly set ``model.kind`` (see ``KIND_OPTIM``)."""
    changes = {}
    for f in dataclasses.fields(cfg):
        sub = getattr(cfg, f.name)
        if dataclasses.is_dataclass(sub) and f.name not in ("model", "optim"):
            new = _kind_defaults(sub, keys, f"{prefix}{f.name}.")
            if new is not sub:
                changes[f.name] = new
    model, optim = getattr(cfg, "model", None), getattr(cfg, "optim", None)
    if (
        isinstance(model, ModelConfig)
        and isinstance(optim, OptimConfig)
        and f"{prefix}model.kind" in keys
        and not any(k.startswith(f"{prefix}optim.") for k in keys)
        and optim in KIND_OPTIM.values()
        and optim != KIND_OPTIM[model.kind]
    ):
        changes["optim"] = KIND_OPTIM[model.kind]
    return dataclasses.replace(cfg, **changes) if changes else cfg


def override(cfg: RunConfig, assignments: list[str]) -> RunConfig:
    """Apply ``section.key=value`` assignments (e.g. ``optim.lr=5``, ``interactions.seed=3``).

    Setting a ``model.kind`` also switches its sibling ``optim`` section to that
    kind's recipe when it holds another kind's (``KIND_OPTIM``) and no ``optim`` key
    is set in the same call; the model sizes keep their meaning (``hidden`` is the
    transformer's d_model, ``num_layers`` its blocks, ``d_ff`` 4 * hidden by default).

    Raises:
      ConfigError: unknown key (naming the closest valid ones) or a bad value.
    """
    keys = []
    for a in assignments:
        if "=" not in a:
            raise ConfigError(f"override {a!r} is not KEY=VALUE (e.g. optim.lr=5)")
        key, value = a.split("=", 1)
        cfg = set_key(cfg, key.strip(), value.strip(), RunConfig)
        keys.append(key.strip())
    return _kind_defaults(cfg, keys)


def describe(cfg: RunConfig) -> str:
    """Pretty JSON of a whole config tree (what ``jaxdyn config`` prints)."""
    return json.dumps(cfg.to_dict(), indent=2)


def load_config(path: str | Path) -> RunConfig:
    """A config tree from a JSON file (as :func:`describe` writes; keys may be omitted).

    Raises:
      ConfigError: unreadable file, invalid JSON, unknown keys or bad values.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from e
    return RunConfig.from_dict(d)
