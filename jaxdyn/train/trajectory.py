"""Read a finished (or running) run back: its checkpoints, model and held-out traces.

The analyses of training dynamics evaluate every saved checkpoint on held-out
text. :func:`iter_checkpoints` yields ``(step, epoch, params)`` for each intact
checkpoint, reading only parameters and metadata (each file hashed once);
:func:`trace_stream` runs the jitted evaluation-mode analysis step over a stream
and hands each chunk's trace to a reducer, so no full trace needs to be kept.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from jaxdyn.checkpoint import CheckpointError, Trajectory
from jaxdyn.config import RunConfig
from jaxdyn.data.vocab import Vocab
from jaxdyn.models.taps import initial_carry
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.build import build_model
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.tasks import Stream


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a run: optimizer ``step``, completed ``epoch``, ``kind`` and params."""

    step: int
    epoch: int
    kind: str
    params: Any
    #: the population member these parameters are (None: a single-model run)
    member: int | None = None


def run_model(workdir: str | Path) -> tuple[RunConfig, Any, Vocab, Vocab]:
    """Config, model (built from the config, as training did) and vocabularies of a run."""
    workdir = Path(workdir)
    if not (workdir / "config.json").exists():
        raise CheckpointError(f"{workdir} is not a jaxdyn run (no config.json)")
    cfg = RunConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    vocab = Vocab.load(workdir / "vocab.json")
    out_vocab = Vocab.load(workdir / "out_vocab.json")
    model = build_model(cfg, vocab_size=len(vocab), num_outputs=len(out_vocab))
    return cfg, model, vocab, out_vocab


def param_shapes(model, batch_size: int = 1) -> Any:
    """The parameter tree of ``model`` as ``jax.ShapeDtypeStruct`` (nothing computed)."""
    dummy = jax.ShapeDtypeStruct((batch_size, 1), jnp.int32)
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), dummy)["params"]


def population_of(workdir: str | Path) -> list[int] | None:
    """The members' seeds of a population run (``seeds > 1``), or None for a single model."""
    cfg = RunConfig.from_dict(json.loads((Path(workdir) / "config.json").read_text()))
    return None if cfg.seeds == 1 else [cfg.seed + m for m in range(cfg.seeds)]


def iter_checkpoints(
    workdir: str | Path,
    *,
    kinds: tuple[str, ...] = ("init", "epoch"),
    steps: list[int] | None = None,
    model: Any = None,
    member: int | None = None,
) -> Iterator[Checkpoint]:
    """Yield the intact checkpoints of a run in step order (parameters and metadata only).

    Args:
      workdir: the run folder (its model is built from its config, see :func:`run_model`).
      kinds: which checkpoints (``init``, ``epoch``, ``steps``, ``interrupted``);
        default: the initialisation and every epoch end.
      steps: restrict to these steps.
      model: the run's model when it was not built from the config (a model
        passed to ``train(..., model=...)``); default: :func:`run_model`'s.
      member: for a population run (``seeds > 1``), which member (seed
        ``seed + member``) to read back as an ordinary model's parameters; None
        means member 0 there (``Checkpoint.member`` says which). Must be None or
        0 for a single-model run.

    Raises:
      IndexError: ``member`` is not a member of the run.
    """
    if model is None:
        _, model, _, _ = run_model(workdir)
    target = param_shapes(model)
    seeds = population_of(workdir) if (Path(workdir) / "config.json").exists() else None
    size = 1 if seeds is None else len(seeds)
    which = 0 if member is None else int(member)
    if not 0 <= which < size:
        raise IndexError(
            f"member {which} is outside the run's population of {size} (0..{size - 1})"
        )
    if seeds is not None:
        target = jax.tree_util.tree_map(
            lambda x: jax.ShapeDtypeStruct((size, *x.shape), x.dtype), target
        )
    with Trajectory(workdir, read_only=True) as traj:
        for step, params, meta in traj.iter_params(
            target, steps=steps, where=lambda m: m.get("kind") in kinds
        ):
            if seeds is not None:
                params = jax.tree_util.tree_map(lambda x: x[which], params)
            yield Checkpoint(
                step, int(meta["epoch"]), meta["kind"], params, None if seeds is None else which
            )


def trace_stream(
    model: Any,
    params: Any,
    stream: Stream,
    spec: CaptureSpec,
    bptt: int,
    reduce: Callable[[Any, dict], Any],
    acc: Any,
    *,
    max_chunks: int | None = None,
    analyse: Callable | None = None,
) -> Any:
    """Fold ``reduce(acc, trace)`` over the analysis traces of a stream's chunks.

    Args:
      model: the model.
      params: its parameters.
      stream: held-out stream (a recurrent model's carry threads through the
        chunks from its initial carry).
      spec: what to capture.
      bptt: chunk length.
      reduce: ``(acc, trace) -> acc``, ideally jitted.
      acc: initial accumulator.
      max_chunks: stop after this many chunks.
      analyse: a prebuilt ``make_analysis_step(model, spec)`` (avoids recompiling
        when called for many checkpoints).
    """
    analyse = analyse or make_analysis_step(model, spec)
    b = stream.inputs.shape[0]
    carry = initial_carry(model, params, b)
    n = stream.num_chunks(bptt)
    if max_chunks is not None:
        n = min(n, max_chunks)
    for k in range(n):
        batch = jax.tree_util.tree_map(jnp.asarray, stream.chunk(k, bptt))
        _, trace, carry = analyse(params, carry, batch)
        acc = reduce(acc, trace)
    return acc
