"""Representation similarity over training (thesis chapter "Understanding learning
dynamics with SVCCA"): data, runs and aligned activations.

For each tagged corpus, a language model and one tagger per tag layer (part of
speech, syntactic role, genre as a document-level "topic") are trained on the
same text with per-epoch checkpoints; each tagger runs twice, once from the
language model's initialisation (``<task>-shared``) and once from its own seed
(``<task>-own``). Every checkpoint of every run is then evaluated on the SAME
held-out tokens (the inputs of a language model and its taggers are identical
token for token), giving ``(checkpoints, N, D)`` activation stacks per run and
layer (embedding, each LSTM layer) for the comparisons in
:mod:`jaxdyn.studies.similarity_analysis`.

Topic-ordered corpora (EWT and Brown are stored genre by genre) are cut into
spans of consecutive sentences and interleaved round-robin over genres
(:func:`interleave_topics`), so that a truncated training prefix and the
held-out tokens cover every genre.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.config import CaptureConfig, DataConfig, ModelConfig, OptimConfig, RunConfig
from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.models.lstm import layer_names, lstm_layer_scan, share_initialisation, zero_carry
from jaxdyn.train.loop import build_model, train
from jaxdyn.train.tasks import Stream, TaskData, lm_task_from_tagged, tagger_task
from jaxdyn.train.trajectory import iter_checkpoints


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
      emb_dim, hidden, num_layers, dropout: the LSTM (language model and taggers alike).
      epochs: training epochs of every run (checkpoints at 0..epochs).
      train_tokens / eval_tokens: truncation of the train and valid/test streams.
      heldout_tokens: N, the held-out tokens the activations are compared on (first
        ``heldout_tokens // eval_batch_size`` positions of each valid-stream row).
      max_vocab, batch_size, eval_batch_size, bptt, lr, clip, seed: training.
      svcca_keep: SVCCA's variance fraction; cca_method: ``svd`` or ``gram``.
      stable_threshold: SVCCA with the own final checkpoint that counts as "stable".
      min_effect: similarity differences within this count as ties in the findings.
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
    emb_dim: int = 64
    hidden: int = 64
    num_layers: int = 2
    dropout: float = 0.2
    epochs: int = 4
    train_tokens: int | None = 40_000
    eval_tokens: int | None = 6_000
    heldout_tokens: int = 2_000
    max_vocab: int | None = 8_000
    batch_size: int = 20
    eval_batch_size: int = 10
    bptt: int = 35
    lr: float = 20.0
    clip: float = 0.25
    seed: int = 1111
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

    def tasks_of(self, corpus: str) -> tuple[str, ...]:
        """Tag layers trained for ``corpus``."""
        for name, layers in self.tasks:
            if name == corpus:
                return tuple(layers)
        raise ValueError(f"no tasks configured for corpus {corpus!r} (tasks: {self.tasks})")

    def has_own(self, task: str) -> bool:
        return self.own_init is None or task in self.own_init


SIMILARITY_PRESETS: dict[str, SimilarityConfig] = {
    # CI: EWT only, two tag layers, one own-init tagger; about a minute on 2 cores.
    "smoke": SimilarityConfig(
        corpora=("ewt",),
        tasks=(("ewt", ("xpos", "genre")),),
        own_init=("xpos",),
        emb_dim=32,
        hidden=32,
        epochs=2,
        train_tokens=15_000,
        eval_tokens=2_000,
        heldout_tokens=500,
        max_vocab=4_000,
        span_tokens=300,
        probe_hidden=32,
        probe_steps=150,
    ),
    # `jaxdyn run`: every task of both corpora, small models, a few epochs.
    "default": SimilarityConfig(),
    # Thesis sizes: 2 x 200 LSTMs (emb 200) on the full training sets.
    "thesis": SimilarityConfig(
        emb_dim=200,
        hidden=200,
        epochs=40,
        train_tokens=None,
        eval_tokens=None,
        heldout_tokens=5_000,
        max_vocab=None,
        probe_hidden=200,
        probe_steps=1_000,
        cca_method="gram",
    ),
}


def similarity_preset(name: str) -> SimilarityConfig:
    """A named preset (``smoke``, ``default``, ``thesis``)."""
    if name not in SIMILARITY_PRESETS:
        raise ValueError(
            f"unknown similarity preset {name!r}; choose from {list(SIMILARITY_PRESETS)}"
        )
    return SIMILARITY_PRESETS[name]


def run_config(cfg: SimilarityConfig, corpus: str, seed: int) -> RunConfig:
    """The training configuration of every run on ``corpus`` (``seed`` varies)."""
    return RunConfig(
        model=ModelConfig(cfg.emb_dim, cfg.hidden, cfg.num_layers, cfg.dropout),
        data=DataConfig(
            corpus=corpus,
            lowercase=True,
            max_vocab=cfg.max_vocab,
            max_train_tokens=cfg.train_tokens,
            max_eval_tokens=cfg.eval_tokens,
            batch_size=cfg.batch_size,
            eval_batch_size=cfg.eval_batch_size,
            bptt=cfg.bptt,
        ),
        optim=OptimConfig(lr=cfg.lr, clip=cfg.clip),
        capture=CaptureConfig(enabled=False),
        epochs=cfg.epochs,
        seed=seed,
        log_every=10_000,
    )


# ----------------------------------------------------------------------------- data


def interleave_topics(split: TaggedCorpus, topic: str, span_tokens: int) -> TaggedCorpus:
    """Reorder a topic-sorted split into round-robin spans of whole sentences.

    Consecutive sentences are grouped into spans of one topic and at least
    ``span_tokens`` tokens (a span ends where the topic changes); spans are then
    emitted round-robin over the topics in order of first appearance. Every
    sentence is kept exactly once; tag layers follow their sentences.

    Args:
      split: one split; ``split.tags[topic]`` is constant within a sentence.
      topic: the topic layer (e.g. ``genre``).
      span_tokens: minimum span size (>= 1).

    Returns:
      A new :class:`TaggedCorpus` (without dependency heads).
    """
    if span_tokens < 1:
        raise ValueError(f"span_tokens must be >= 1, got {span_tokens}")
    if topic not in split.tags:
        raise KeyError(f"topic layer {topic!r} not in corpus (has {sorted(split.tags)})")
    spans: dict[str, list[list[int]]] = {}
    cur, cur_topic, size = [], None, 0
    for i, tags in enumerate(split.tags[topic]):
        t = tags[0] if tags else cur_topic
        if cur and (t != cur_topic or size >= span_tokens):
            spans.setdefault(cur_topic, []).append(cur)
            cur, size = [], 0
        cur.append(i)
        cur_topic = t
        size += len(split.sentences[i])
    if cur:
        spans.setdefault(cur_topic, []).append(cur)
    order: list[int] = []
    for k in range(max((len(v) for v in spans.values()), default=0)):
        for lst in spans.values():
            if k < len(lst):
                order.extend(lst[k])
    return TaggedCorpus(
        [split.sentences[i] for i in order],
        {name: [layer[i] for i in order] for name, layer in split.tags.items()},
    )


def prepare_corpus(splits: dict[str, TaggedCorpus], cfg: SimilarityConfig) -> dict:
    """Interleave topics in every split (when ``cfg.topic_layer`` is a layer of the corpus)."""
    if cfg.topic_layer is None or cfg.topic_layer not in splits["train"].tags:
        return dict(splits)
    return {k: interleave_topics(v, cfg.topic_layer, cfg.span_tokens) for k, v in splits.items()}


def load_corpus(name: str, data_dir: Path) -> dict[str, TaggedCorpus]:
    """Read ``ewt`` or ``brown`` from the real-corpora folder."""
    from jaxdyn.data.corpora import load_brown, load_ewt

    if name == "ewt":
        return load_ewt(data_dir, lowercase=True)
    if name == "brown":
        return load_brown(data_dir, lowercase=True)
    raise ValueError(f"unknown corpus {name!r}: the similarity study reads 'ewt' or 'brown'")


# ----------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One trained model of the study.

    Attributes:
      name: folder name (``lm``, ``<task>-shared``, ``<task>-own``).
      task: ``lm`` or the tag layer.
      init: ``-`` (the language model), ``shared`` or ``own``.
      path: the run folder.
    """

    name: str
    task: str
    init: str
    path: Path


def train_corpus(
    corpus: str,
    splits: dict[str, TaggedCorpus],
    cfg: SimilarityConfig,
    root: Path,
    *,
    progress: bool = True,
) -> tuple[list[RunSpec], dict[str, TaskData]]:
    """Train (or resume) the language model and every tagger of one corpus.

    Args:
      corpus: corpus name (recorded in the run configs).
      splits: prepared ``train``/``valid``/``test`` splits (see :func:`prepare_corpus`).
      cfg: the study configuration.
      root: ``workdir/similarity/<corpus>``; runs go to ``root/<run name>``.

    Returns:
      ``(runs, tasks)``: the runs (language model first) and each task's
      ``TaskData`` keyed by task name (``lm`` included).
    """
    base = run_config(cfg, corpus, cfg.seed)
    lm_data = lm_task_from_tagged(splits, base.data)
    tasks = {"lm": lm_data}
    runs = [RunSpec("lm", "lm", "-", root / "lm")]
    _log(progress, f"[similarity] {corpus}: training lm")
    train(base, runs[0].path, lm_data, progress=progress)
    lm_init = next(iter_checkpoints(runs[0].path, kinds=("init",))).params
    for k, task in enumerate(cfg.tasks_of(corpus)):
        data = tagger_task(splits, task, base.data, lm_data.vocab)
        if not np.array_equal(data.valid.inputs, lm_data.valid.inputs):
            raise AssertionError(f"{task}: tagger inputs differ from the language model's")
        tasks[task] = data
        own_tagger = build_model(base, data).init(
            jax.random.fold_in(jax.random.PRNGKey(base.seed), 0),
            jnp.zeros((cfg.batch_size, 1), jnp.int32),
        )["params"]
        shared = RunSpec(f"{task}-shared", task, "shared", root / f"{task}-shared")
        _log(progress, f"[similarity] {corpus}: training {shared.name}")
        train(
            base,
            shared.path,
            data,
            progress=progress,
            init_params=share_initialisation(lm_init, own_tagger),
        )
        runs.append(shared)
        if cfg.has_own(task):
            own = RunSpec(f"{task}-own", task, "own", root / f"{task}-own")
            _log(progress, f"[similarity] {corpus}: training {own.name}")
            own_cfg = dataclasses.replace(base, seed=cfg.seed + 101 * (k + 1))
            train(own_cfg, own.path, data, progress=progress)
            runs.append(own)
    return runs, tasks


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- activations


@jax.jit
def body_activations(body, tokens) -> dict[str, jax.Array]:
    """Evaluation-mode activations of the embedding and every LSTM layer.

    Args:
      body: ``{"encoder": ..., "rnn": ...}`` (the decoder is not needed, so every
        run of a corpus shares one compilation).
      tokens: ``(B, T)`` int ids; the state starts at zero.

    Returns:
      ``{"embedding": (B, T, E), "lstm_0": (B, T, H), ...}``.

    References: Zaremba et al. 2014 (the model); Saphra & Lopez 2019, Sec. 3 (the
    compared layers).
    """
    x = body["encoder"]["weight"][tokens]
    out = {"embedding": x}
    carry = zero_carry(body, tokens.shape[0], x.dtype)
    for l, name in enumerate(layer_names(body)):
        h, _ = lstm_layer_scan(body["rnn"][name], x, carry[l])
        x = h["h"]
        out[f"lstm_{l}"] = x
    return out


def heldout_tokens(stream: Stream, n_tokens: int) -> np.ndarray:
    """The held-out block ``(B, T)``: the first ``T = n_tokens // B`` positions of every row."""
    b, length = stream.inputs.shape
    t = min(n_tokens // b, length)
    if t < 1:
        raise ValueError(f"heldout_tokens={n_tokens} is below the {b} rows of the valid stream")
    return stream.inputs[:, :t]


def heldout_labels(stream: Stream, n_tokens: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Current-position labels ``(N,)`` of the held-out block and a mask ``(N,)`` without ``eos``."""
    t = heldout_tokens(stream, n_tokens).shape[1]
    y = stream.labels[:, :t].reshape(-1)
    return y.astype(np.int32), y != eos_id


def collect_activations(run: Path, tokens: np.ndarray) -> tuple[list[int], dict[str, np.ndarray]]:
    """Activations of every checkpoint of a run on the held-out block.

    Args:
      run: a run folder.
      tokens: ``(B, T)`` held-out inputs (:func:`heldout_tokens`).

    Returns:
      ``(epochs, {layer: (C, N, D)})`` with ``N = B * T`` samples in row-major
      order (row b, position t) and C checkpoints (epoch 0 = initialisation).
    """
    epochs, stacks = [], {}
    tok = jnp.asarray(tokens)
    for ck in iter_checkpoints(run):
        body = {"encoder": ck.params["encoder"], "rnn": ck.params["rnn"]}
        acts = jax.device_get(body_activations(body, tok))
        epochs.append(ck.epoch)
        for name, a in acts.items():
            stacks.setdefault(name, []).append(np.asarray(a).reshape(-1, a.shape[-1]))
    if not epochs:
        raise ValueError(f"{run}: no checkpoints")
    return epochs, {k: np.stack(v) for k, v in stacks.items()}


def layer_order(names) -> list[str]:
    """``embedding`` first, then ``lstm_0``, ``lstm_1``, ..."""
    return sorted(names, key=lambda n: -1 if n == "embedding" else int(n.split("_")[-1]))
