"""Sparsity over training (thesis chapter "Sparsity emerges naturally").

For every checkpoint of a run, the held-out stream is traced in evaluation
mode; the taxi-Euclidean ratio TE = L1/L2 of each token's forward output and
backward gradient is computed on device for every module (embedding, each LSTM
layer, decoder output) and accumulated per word type, keyed by the input word
and by the target word (``jaxdyn.analysis.per_type``). The result is one tidy
table (``sparsity/per_type.csv.gz``) and the four findings of the chapter,
tested on it:

1. frequent input words have concentrated (low-TE) activations;
2. frequent target words have dispersed activations but concentrated gradients;
3. function words have more concentrated gradients than content words of equal
   frequency;
4. concentration emerges over training, for some layers late.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from jaxdyn.analysis.per_type import (
    aggregate_finalize,
    aggregate_init,
    aggregate_update,
    stats_from_trace,
)
from jaxdyn.models.kinds import layer_prefix
from jaxdyn.models.taps import initial_carry
from jaxdyn.studies._common import iter_selected
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.tasks import Stream
from jaxdyn.train.trajectory import run_model, trace_stream

DIRECTIONS = ("act", "act_grad")
KEYINGS = ("input", "target")


def sparsity_spec(stats: Sequence[str] = ("te",), layers: str = "lstm") -> CaptureSpec:
    """Module outputs and their gradients (no gates), reduced to ``stats`` per token.

    ``layers``: the trace-name prefix of the layer outputs (``lstm``; the Transformer's
    ``block``, whose residual stream ``block_{l}`` comes with its attention and MLP
    outputs ``block_{l}.attn``/``.mlp``, tapped with gradients too;
    ``jaxdyn.models.kinds.layer_prefix``)."""
    return CaptureSpec(
        activations=True,
        act_grads=True,
        gates=layers == "block",
        modules=("embedding", layers, "logits"),
        reductions=tuple(stats),
    )


@jax.jit
def _update(acc, trace):
    return aggregate_update(
        acc, stats_from_trace(trace), trace["inputs"], trace["targets"], trace["mask"]
    )


def per_type_trajectory(
    workdir: str | Path,
    stream: Stream,
    *,
    stats: Sequence[str] = ("te",),
    max_chunks: int | None = None,
    checkpoints: str = "all",
    progress: bool = True,
    member: int | None = None,
    _step=None,
) -> dict[int, dict]:
    """Per-type statistics of every checkpoint on a held-out stream.

    Args:
      workdir: a training run folder.
      stream: held-out stream encoded with the run's vocabulary.
      stats: per-token statistics (``jaxdyn.analysis.sparsity.STATISTICS`` names).
      max_chunks: limit the BPTT chunks per checkpoint.
      checkpoints: ``all``, ``last`` or comma-separated epochs (see
        :func:`jaxdyn.studies._common.select_epochs`).
      member: the population member to analyse (None: member 0, or the single model).

    Returns:
      ``{epoch: {keying: {module: {direction: {stat: {"count": (V,), "mean": (V,), ...}}}}}}``
      as NumPy arrays.
    """
    cfg, model, vocab, spec, analyse = _step or _analysis(workdir, stats)
    out = {}
    for ck in iter_selected(workdir, checkpoints, "sparsity.checkpoints", member=member):
        first = stream.chunk(0, cfg.data.bptt)
        _, tr, _ = jax.eval_shape(
            analyse, ck.params, initial_carry(model, ck.params, stream.inputs.shape[0]), first
        )
        acc = aggregate_init(len(vocab), stats_from_trace(tr), KEYINGS)
        acc = trace_stream(
            model,
            ck.params,
            stream,
            spec,
            cfg.data.bptt,
            _update,
            acc,
            max_chunks=max_chunks,
            analyse=analyse,
        )
        # one out-of-range count per keying, shared by every leaf of the tree
        bad = {kg: int(acc.moments[kg].out_of_range) for kg in KEYINGS}
        if any(bad.values()):
            raise ValueError(
                f"held-out ids outside the run's vocabulary ({len(vocab)}): "
                f"{bad['input']} input and {bad['target']} target positions"
            )
        res = jax.device_get(aggregate_finalize(acc))
        out[ck.epoch] = res
        if progress:
            who = "" if ck.member is None else f"member {ck.member}, "
            print(
                f"[sparsity] {who}epoch {ck.epoch} (step {ck.step}) done",
                file=sys.stderr,
                flush=True,
            )
    return out


def _analysis(workdir, stats):
    cfg, model, vocab, _ = run_model(workdir)
    spec = sparsity_spec(stats, layer_prefix(model))
    return cfg, model, vocab, spec, make_analysis_step(model, spec)


def member_trajectories(
    workdir: str | Path,
    stream: Stream,
    members: Sequence[int] | None,
    *,
    stats: Sequence[str] = ("te",),
    **kwargs,
) -> dict[int, dict[int, dict]]:
    """:func:`per_type_trajectory` of every population member, one compiled step for all.

    Args:
      members: members to analyse (None: the single model, returned as member 0).
      kwargs: ``max_chunks``, ``checkpoints``, ``progress`` of :func:`per_type_trajectory`.

    Returns:
      ``{member: {epoch: ...}}``.
    """
    step = _analysis(workdir, stats)
    return {
        (m or 0): per_type_trajectory(workdir, stream, stats=stats, member=m, _step=step, **kwargs)
        for m in (members if members is not None else [None])
    }


def write_table(
    path: Path,
    trajs: dict[int, dict[int, dict]],
    vocab,
    classes: dict[str, str],
    *,
    seeds: Sequence[int],
    min_count: int = 1,
) -> int:
    """Tidy CSV (gzip), one row per member, word type, module, direction, keying, statistic
    and epoch: member, seed, word, type_id, frequency, POS class, ..., epoch, value, count.

    ``trajs`` maps a population member (0 for a single model) to its
    :func:`per_type_trajectory`; ``seeds[m]`` is member ``m``'s seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    freq = np.asarray(vocab.counts)
    n = 0
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "member",
                "seed",
                "word",
                "type_id",
                "frequency",
                "pos_class",
                "module",
                "direction",
                "keying",
                "statistic",
                "epoch",
                "value",
                "count",
            ]
        )
        for member, epoch, res in (
            (m, e, r) for m, traj in sorted(trajs.items()) for e, r in sorted(traj.items())
        ):
            for kg, mods in res.items():
                for module, dirs in mods.items():
                    for direction, stats in dirs.items():
                        for stat, r in stats.items():
                            ids = np.nonzero(np.asarray(r["count"]) >= min_count)[0]
                            for i in ids:
                                word = vocab.itos[i]
                                w.writerow(
                                    [
                                        member,
                                        seeds[member],
                                        word,
                                        int(i),
                                        int(freq[i]),
                                        classes.get(word, ""),
                                        module,
                                        direction,
                                        kg,
                                        stat,
                                        epoch,
                                        f"{float(r['mean'][i]):.6g}",
                                        int(r["count"][i]),
                                    ]
                                )
                                n += 1
    return n


def series(traj, epoch, keying, module, direction, stat, min_count):
    """``(type_ids, mean, count)`` of one cell for types seen at least ``min_count`` times."""
    r = traj[epoch][keying][module][direction][stat]
    cnt = np.asarray(r["count"])
    ids = np.nonzero(cnt >= min_count)[0]
    return ids, np.asarray(r["mean"])[ids], cnt[ids]


def token_weighted_mean(traj, epoch, keying, module, direction, stat) -> float:
    """Mean of a statistic over all held-out tokens (weights = counts)."""
    r = traj[epoch][keying][module][direction][stat]
    c = np.asarray(r["count"], np.float64)
    return float((np.asarray(r["mean"], np.float64) * c).sum() / max(c.sum(), 1.0))


def modules_of(traj) -> list[str]:
    """Module names in model order (embedding, lstm_* or block_*, logits)."""
    first = next(iter(traj.values()))["input"]
    order = {"embedding": 0, "logits": 99}

    def key(m):
        base, _, part = m.partition(".")
        if m in order or not base.startswith(("lstm_", "block_")):
            return (order.get(m, 50), 0)
        # a transformer block: its attention output, MLP output, then the residual stream
        return (1 + int(base.split("_")[-1]), {"attn": 0, "mlp": 1}.get(part, 2))

    return sorted(first, key=key)
