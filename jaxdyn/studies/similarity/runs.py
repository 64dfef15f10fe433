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

With ``similarity.seeds = S > 1`` the whole design is repeated per member: member
``m`` (seed ``seed + m``) trains its own language model, its shared-init taggers
(from THAT language model's initialisation) and its own-init taggers (seeds
``seed + m + 101 k``) in ``member_root(root, m)``: ``root`` itself for member 0 (so a
single-seed study's runs are member 0's, and raising S reuses them) and
``root/member-<m>`` for the others. Each is an ordinary single-model run (resumable,
checked against its config like any run). They are not trained as one population:
:func:`jaxdyn.train.loop.train` gives every population member the same
``init_params``, while member ``m``'s shared taggers need member ``m``'s language-model
initialisation; and on the 2-core CPU a population step measured 0.94x the sequential
steps (``benchmarks/RESULTS.md``), so separate runs cost nothing there.

Topic-ordered corpora (EWT and Brown are stored genre by genre) are cut into
spans of consecutive sentences and interleaved round-robin over genres
(:func:`interleave_topics`), so that a truncated training prefix and the
held-out tokens cover every genre.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.data.corpora import TaggedCorpus
from jaxdyn.models.kinds import layer_prefix, share_initialisation
from jaxdyn.models.taps import initial_carry, is_recurrent
from jaxdyn.studies._common import iter_selected, study_run_config
from jaxdyn.studies.similarity.config import SimilarityConfig
from jaxdyn.studies.similarity.findings import layer_key
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train import population
from jaxdyn.train.loop import build_model, train
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.tasks import Stream, TaskData, lm_task_from_tagged, tagger_task
from jaxdyn.train.trajectory import iter_checkpoints, run_model


def resolve_seed(cfg: SimilarityConfig, run=None) -> int:
    """The study's seed: its own, or the run's when it is None."""
    if cfg.seed is not None:
        return cfg.seed
    return 1111 if run is None else run.seed


def resolve_seeds(cfg: SimilarityConfig, run=None) -> int:
    """S, the study's members per corpus: its own ``seeds``, or the run's when it is None."""
    if cfg.seeds is not None:
        return cfg.seeds
    return 1 if run is None else run.seeds


def member_seeds(cfg: SimilarityConfig, run=None) -> list[int]:
    """Member ``m``'s seed: the study's seed + ``m`` (as a population's members)."""
    return population.member_seeds(resolve_seed(cfg, run), resolve_seeds(cfg, run))


def member_root(root: Path, member: int) -> Path:
    """Member ``member``'s run folders: ``root`` for member 0 (the single-seed study's
    folders), ``root/member-<m>`` for the others."""
    return Path(root) if member == 0 else Path(root) / f"member-{member}"


def resolve_epochs(cfg: SimilarityConfig, run=None) -> int:
    """The study's epochs: its own, or the run's when it is None."""
    if cfg.epochs is not None:
        return cfg.epochs
    return 40 if run is None else run.epochs


def run_config(cfg: SimilarityConfig, corpus: str, seed: int, run=None):
    """The training configuration of every run on ``corpus`` (``seed`` varies)."""
    from jaxdyn.config import RunConfig

    run = RunConfig() if run is None else run
    return study_run_config(
        run,
        model=cfg.model,
        data=dataclasses.replace(cfg.data, corpus=corpus),
        optim=cfg.optim,
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
    run=None,
    progress: bool = True,
    seed: int | None = None,
) -> tuple[list[RunSpec], dict[str, TaskData]]:
    """Train (or resume) the language model and every tagger of one corpus (one member).

    Args:
      corpus: corpus name (recorded in the run configs).
      splits: prepared ``train``/``valid``/``test`` splits (see :func:`prepare_corpus`).
      cfg: the study configuration.
      root: the member's folder (:func:`member_root`); runs go to ``root/<run name>``.
      run: the run's config (fills the section's ``None`` epochs/seed).
      seed: the member's seed (default: the study's, :func:`resolve_seed`); the shared
        taggers start from this seed's language-model initialisation, the own-init
        taggers use ``seed + 101 k``.

    Returns:
      ``(runs, tasks)``: the runs (language model first) and each task's
      ``TaskData`` keyed by task name (``lm`` included).
    """
    seed = resolve_seed(cfg, run) if seed is None else seed
    base = run_config(cfg, corpus, seed, run)
    lm_data = lm_task_from_tagged(splits, base.data)
    tasks = {"lm": lm_data}
    runs = [RunSpec("lm", "lm", "-", root / "lm")]
    who = f"{corpus}, seed {seed}"
    _log(progress, f"[similarity] {who}: training lm")
    label = lambda name, s: f"{corpus} {name}, seed {s}"  # noqa: E731  (epoch lines)
    train(base, runs[0].path, lm_data, progress=progress, label=label("lm", seed))
    lm_init = next(iter_checkpoints(runs[0].path, kinds=("init",))).params
    for k, task in enumerate(cfg.tasks_of(corpus)):
        data = tagger_task(splits, task, base.data, lm_data.vocab)
        if not np.array_equal(data.valid.inputs, lm_data.valid.inputs):
            raise AssertionError(f"{task}: tagger inputs differ from the language model's")
        tasks[task] = data
        own_tagger = build_model(base, data).init(
            jax.random.fold_in(jax.random.PRNGKey(base.seed), 0),
            jnp.zeros((base.data.batch_size, 1), jnp.int32),
        )["params"]
        shared = RunSpec(f"{task}-shared", task, "shared", root / f"{task}-shared")
        _log(progress, f"[similarity] {who}: training {shared.name}")
        train(
            base,
            shared.path,
            data,
            progress=progress,
            init_params=share_initialisation(build_model(base, data), lm_init, own_tagger),
            label=label(shared.name, seed),
        )
        runs.append(shared)
        if cfg.has_own(task):
            own = RunSpec(f"{task}-own", task, "own", root / f"{task}-own")
            _log(progress, f"[similarity] {who}: training {own.name}")
            own_cfg = dataclasses.replace(base, seed=seed + 101 * (k + 1))
            train(own_cfg, own.path, data, progress=progress, label=label(own.name, own_cfg.seed))
            runs.append(own)
    return runs, tasks


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- activations


#: What the study compares: the embedding and every LSTM layer's output, in full (for
#: a Transformer, :func:`activation_spec` swaps ``lstm`` for its residual stream ``block``).
ACTIVATION_SPEC = CaptureSpec(
    activations=True,
    act_grads=False,
    gates=False,
    modules=("embedding", "lstm"),
    reductions=(),
    keep_full=True,
)


def activation_spec(model) -> CaptureSpec:
    """:data:`ACTIVATION_SPEC` with the model's layer outputs (``jaxdyn.models.kinds``)."""
    return dataclasses.replace(ACTIVATION_SPEC, modules=("embedding", layer_prefix(model)))


@functools.lru_cache(maxsize=32)
def _analysis_step(model):
    """The model's own traced evaluation step (one compilation per model shape)."""
    return make_analysis_step(model, activation_spec(model))


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

    One forward pass per checkpoint through the model's own traced evaluation
    step (``jaxdyn.train.step.make_analysis_step`` with :data:`ACTIVATION_SPEC`):
    the tensors the model taps as ``embedding`` and ``lstm_{l}``, from its initial
    state (the loss is not used, so every position is masked out of it).

    Args:
      run: a run folder.
      tokens: ``(B, T)`` held-out inputs (:func:`heldout_tokens`).

    Returns:
      ``(epochs, {layer: (C, N, D)})`` with ``N = B * T`` samples in row-major
      order (row b, position t) and C checkpoints (epoch 0 = initialisation).
    """
    _, model, _, _ = run_model(run)
    analyse = _analysis_step(model)
    b, t = tokens.shape
    # a model with a fixed context (the Transformer's: its BPTT length) reads the block
    # in consecutive windows of that length, as it read its training stream
    width = t if is_recurrent(model) else min(t, getattr(model, "context", t))
    batches = [
        {
            "inputs": jnp.asarray(tokens[:, s : s + width]),
            "targets": jnp.zeros((b, min(width, t - s)), jnp.int32),
            "mask": jnp.zeros((b, min(width, t - s)), bool),
        }
        for s in range(0, t, width)
    ]
    epochs, stacks = [], {}
    for ck in iter_selected(run, "all", "similarity.checkpoints"):  # lists corrupt ones
        parts: dict[str, list[np.ndarray]] = {}
        for batch in batches:
            _, trace, _ = analyse(ck.params, initial_carry(model, ck.params, b), batch)
            for name, a in jax.device_get(trace["act"]).items():
                parts.setdefault(name, []).append(np.asarray(a))
        epochs.append(ck.epoch)
        for name, a in parts.items():
            a = np.concatenate(a, axis=1)  # (B, T, D): row b, position t
            stacks.setdefault(name, []).append(a.reshape(-1, a.shape[-1]))
    if not epochs:
        raise ValueError(f"{run}: no checkpoints")
    return epochs, {k: np.stack(v) for k, v in stacks.items()}


def layer_order(names) -> list[str]:
    """``embedding`` first, then ``lstm_0``, ``lstm_1``, ... (:func:`findings.layer_key`)."""
    return sorted(names, key=layer_key)
