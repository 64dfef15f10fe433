"""Read a finished (or running) run back: its checkpoints, model and held-out traces.

The analyses of training dynamics evaluate every saved checkpoint on held-out
text. :func:`iter_checkpoints` yields ``(step, epoch, params)`` for each intact
checkpoint; :func:`trace_stream` runs the jitted evaluation-mode analysis step
over a stream and hands each chunk's trace to a reducer, so no full trace needs
to be kept.
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
from jaxdyn.models.lstm import LSTMSequenceModel, zero_carry
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.loop import model_for
from jaxdyn.train.optim import make_optimizer
from jaxdyn.train.state import init_train_state
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.tasks import Stream


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a run: optimizer ``step``, completed ``epoch``, ``kind`` and params."""

    step: int
    epoch: int
    kind: str
    params: Any


def run_model(workdir: str | Path) -> tuple[RunConfig, LSTMSequenceModel, Vocab, Vocab]:
    """Config, model and vocabularies of the run in ``workdir``."""
    workdir = Path(workdir)
    if not (workdir / "config.json").exists():
        raise CheckpointError(f"{workdir} is not a jaxdyn run (no config.json)")
    cfg = RunConfig.from_dict(json.loads((workdir / "config.json").read_text()))
    vocab = Vocab.load(workdir / "vocab.json")
    out_vocab = Vocab.load(workdir / "out_vocab.json")
    model = model_for(cfg.model, len(vocab), len(out_vocab))
    return cfg, model, vocab, out_vocab


def iter_checkpoints(
    workdir: str | Path,
    *,
    kinds: tuple[str, ...] = ("init", "epoch"),
    steps: list[int] | None = None,
) -> Iterator[Checkpoint]:
    """Yield the intact checkpoints of a run in step order.

    Args:
      workdir: the run folder.
      kinds: which checkpoints (``init``, ``epoch``, ``steps``, ``interrupted``);
        default: the initialisation and every epoch end.
      steps: restrict to these steps.
    """
    cfg, model, _, _ = run_model(workdir)
    tx = make_optimizer(cfg.optim.name, cfg.optim.lr, cfg.optim.clip, cfg.optim.weight_decay)
    target = init_train_state(model, tx, cfg.seed, cfg.data.batch_size)
    with Trajectory(workdir, read_only=True) as traj:
        for step in traj.valid_steps():
            if steps is not None and step not in steps:
                continue
            state, meta = traj.restore(step, target)
            if meta.get("kind") not in kinds:
                continue
            yield Checkpoint(step, int(meta["epoch"]), meta["kind"], state.params)


def trace_stream(
    model: LSTMSequenceModel,
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
      stream: held-out stream (carry threads through the chunks from zero).
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
    carry = zero_carry(params, b)
    n = stream.num_chunks(bptt)
    if max_chunks is not None:
        n = min(n, max_chunks)
    for k in range(n):
        batch = jax.tree_util.tree_map(jnp.asarray, stream.chunk(k, bptt))
        _, trace, carry = analyse(params, carry, batch)
        acc = reduce(acc, trace)
    return acc
