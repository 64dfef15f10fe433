"""Metric trajectories: one tidy row per (run, seed, step, metric), streamed from checkpoints.

For every intact checkpoint of a run (every kind: ``init``, ``epoch``, scheduled
``steps`` and parameters-only ``params``, ``interrupted``), in step order, and for
every population member (a seed):

- ``weights``: :func:`jaxdyn.analysis.weight_metrics.tree_metrics` of the
  parameters, one compiled call per checkpoint (norms, moments, singular-value
  statistics per tensor);
- ``grad``: the loss gradient on the first ``grad_chunks`` training chunks
  (evaluation mode: no dropout): its global L2 norm and each tensor's;
- ``loss``: held-out loss of the checkpoint (``valid``), the training-chunk loss
  (``train_batch``), and the run's own metrics files: the newest logged training
  loss at or before the step (``steps.jsonl``: ``train_logged``) and, at epoch
  checkpoints, the epoch's validation loss (``epochs.csv``: ``valid_epoch``);
- ``te``: the sparsity study's statistic, token-mean TE (L1/L2) of every module's
  output and gradient, from the same capture spec (:func:`sparsity_spec`) and
  per-token statistics (``stats_from_trace``) as that study;
- ``sim``: SVCCA and linear CKA of every layer's held-out activations with the
  previous checkpoint's, via :func:`jaxdyn.analysis.pairwise` with an explicit
  pair list (absent at the first checkpoint).

Only two checkpoints' layer activations are in memory at any time, and rows are
written as they are computed (:func:`write_rows`), so a trajectory of any length
is processed in bounded host memory.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis import pairwise
from jaxdyn.analysis.per_type import stats_from_trace
from jaxdyn.analysis.weight_metrics import tree_l2, tree_metrics
from jaxdyn.config import PhasesConfig  # (first: the config tree imports study configs)
from jaxdyn.models.kinds import layer_prefix
from jaxdyn.models.taps import apply_model, initial_carry
from jaxdyn.studies.sparsity.compute import sparsity_spec
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.step import make_analysis_step, masked_xent
from jaxdyn.train.tasks import Stream
from jaxdyn.train.trajectory import iter_checkpoints, population_of, run_model

#: Columns of the tidy table.
COLUMNS = ("run", "member", "seed", "step", "epoch", "kind", "family", "metric", "value")
#: Every checkpoint kind (the map uses the whole trajectory).
ALL_KINDS = ("init", "epoch", "steps", "params", "interrupted")


def _grad_step(model):
    def loss_sum(params, carry, batch):
        logits, carry, _ = apply_model(
            model, {"params": params}, batch["inputs"], carry, train=False
        )
        mask = batch.get("mask")
        mask = jnp.ones(batch["inputs"].shape, bool) if mask is None else mask.astype(bool)
        _, total, count = masked_xent(logits, batch["targets"], mask)
        return total, (count, carry)

    def step(params, carry, batch):
        (total, (count, carry)), g = jax.value_and_grad(loss_sum, has_aux=True)(
            params, carry, batch
        )
        return total, count, carry, g

    return jax.jit(step)


@jax.jit
def _masked_means(trace):
    """Token means of every per-token statistic of a trace: ``(sum, count)`` per leaf."""
    stats = stats_from_trace(trace)
    m = trace["mask"].astype(jnp.float32)
    sums = jax.tree_util.tree_map(lambda x: jnp.sum(x.astype(jnp.float32) * m), stats)
    return sums, jnp.sum(m)


def _logged(workdir: Path, member: int | None):
    """``(steps ascending, train losses)`` from ``steps.jsonl`` and ``{step: valid_loss}``
    of epoch rows from ``epochs.csv`` (for one member of a population)."""
    steps, losses, valid = [], [], {}
    path = workdir / "metrics" / "steps.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if member is not None and r.get("member", 0) != member:
                continue
            if math.isfinite(float(r["loss"])):
                steps.append(int(r["step"]))
                losses.append(float(r["loss"]))
    path = workdir / "metrics" / "epochs.csv"
    if path.exists():
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                if member is not None and int(r.get("member") or 0) != member:
                    continue
                v = float(r["valid_loss"])
                if math.isfinite(v):
                    valid[int(r["step"])] = v
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(losses)[order], valid


def _flat(prefix: str, tree: dict, out: dict) -> None:
    for k, v in tree.items():
        if isinstance(v, dict):
            _flat(f"{prefix}{k}/", v, out)
        else:
            out[prefix + str(k)] = v


def checkpoint_rows(
    workdir: str | Path,
    heldout: Stream,
    train_stream: Stream,
    cfg: PhasesConfig,
    *,
    member: int | None = None,
    model=None,
) -> Iterator[dict]:
    """The tidy rows of every checkpoint of one member (one seed), streamed.

    Args:
      workdir: a training run folder.
      heldout: held-out stream encoded with the run's vocabulary.
      train_stream: the run's training stream (gradient norms).
      cfg: the study's options.
      member: the population member (None: the single model, or member 0).
      model: the run's model when it was not built from its config.

    Yields:
      dicts with :data:`COLUMNS`.

    Raises:
      ValueError: ``sim_tokens`` does not exceed a layer's width, or the held-out
        stream has fewer tokens than ``sim_tokens``.
    """
    workdir = Path(workdir)
    run_cfg, built, _, _ = run_model(workdir)
    model = built if model is None else model
    seeds = population_of(workdir)
    m = 0 if member is None else int(member)
    seed = run_cfg.seed + m
    logged_steps, logged_loss, valid_epoch = _logged(workdir, m if seeds else None)
    bptt = run_cfg.data.bptt
    layers = layer_prefix(model)
    te_step = make_analysis_step(model, sparsity_spec(("te",), layers))
    act_spec = CaptureSpec(
        activations=True, act_grads=False, gates=False, modules=(layers,), keep_full=True
    )
    act_step = make_analysis_step(model, act_spec)
    grad_step = _grad_step(model)
    families = cfg.computed()
    n_heldout = min(cfg.max_chunks, heldout.num_chunks(bptt))
    n_train = min(cfg.grad_chunks, train_stream.num_chunks(bptt))
    prev = None
    for ck in iter_checkpoints(workdir, kinds=ALL_KINDS, model=model, member=member):
        vals: dict[tuple[str, str], float] = {}
        if "weights" in families:
            weights = jax.device_get(tree_metrics(ck.params))  # one compiled call
            for path, stats in weights.items():
                for stat, v in stats.items():
                    vals[("weights", f"{path}/{stat}")] = float(v)
        if "grad" in families:
            vals.update(_gradient_rows(grad_step, model, ck.params, train_stream, bptt, n_train))
        if "loss" in families or "te" in families:
            vals.update(
                _heldout_rows(te_step, model, ck.params, heldout, bptt, n_heldout, families)
            )
        if "loss" in families:
            i = np.searchsorted(logged_steps, ck.step, side="right") - 1
            if i >= 0:
                vals[("loss", "train_logged")] = float(logged_loss[i])
            if ck.kind in ("init", "epoch") and ck.step in valid_epoch:
                vals[("loss", "valid_epoch")] = valid_epoch[ck.step]
        if "sim" in families:  # similarity to the previous checkpoint, layer by layer
            acts = _layer_activations(act_step, model, ck.params, heldout, bptt, cfg.sim_tokens)
            if prev is not None:
                for name, x in acts.items():
                    xs, pair = jnp.stack([prev[name], x]), np.array([[0, 1]])
                    sv = pairwise("svcca", xs, pairs=pair, keep=cfg.svcca_keep)
                    cka = pairwise("linear_cka", xs, pairs=pair)
                    vals[("sim", f"{name}/svcca_prev")] = float(sv[0])
                    vals[("sim", f"{name}/cka_prev")] = float(cka[0])
            prev = acts
        base = {
            "run": workdir.name,
            "member": m,
            "seed": seed,
            "step": ck.step,
            "epoch": ck.epoch,
            "kind": ck.kind,
        }
        for (family, metric), v in vals.items():
            if not math.isfinite(v):
                raise FloatingPointError(
                    f"phases: metric {family}/{metric} is {v} at step {ck.step} (member {m})"
                )
            yield {**base, "family": family, "metric": metric, "value": v}


def _gradient_rows(grad_step, model, params, stream, bptt, n_chunks) -> dict:
    """Global and per-tensor L2 of the mean loss gradient over the first training chunks."""
    carry = initial_carry(model, params, stream.inputs.shape[0])
    g_sum, total, count = None, 0.0, 0.0
    for k in range(n_chunks):
        t, c, carry, g = grad_step(params, carry, stream.chunk(k, bptt))
        g_sum = g if g_sum is None else jax.tree_util.tree_map(jnp.add, g_sum, g)
        total, count = total + t, count + c
    count = float(count)
    grads = jax.tree_util.tree_map(lambda x, n=count: x / n, g_sum)
    l2 = jax.device_get(tree_l2(grads))
    out = {("grad", "global_l2"): float(np.sqrt(sum(float(v) ** 2 for v in l2.values())))}
    out.update({("grad", f"{path}/l2"): float(v) for path, v in l2.items()})
    out[("loss", "train_batch")] = float(total) / count
    return out


def _heldout_rows(te_step, model, params, stream, bptt, n_chunks, families) -> dict:
    """Held-out loss and token-mean TE of every module (output and gradient)."""
    carry = initial_carry(model, params, stream.inputs.shape[0])
    loss_sum, tokens, te_sums, te_count = 0.0, 0.0, None, 0.0
    for k in range(n_chunks):
        metrics, trace, carry = te_step(params, carry, stream.chunk(k, bptt))
        sums, cnt = _masked_means(trace)
        te_sums = sums if te_sums is None else jax.tree_util.tree_map(jnp.add, te_sums, sums)
        te_count += float(cnt)
        loss_sum += float(metrics["loss_sum"])
        tokens += float(metrics["tokens"])
    out = {}
    if "loss" in families:
        out[("loss", "valid")] = loss_sum / tokens
    if "te" in families:
        flat = {}
        _flat("", jax.device_get(te_sums), flat)
        out.update({("te", name): float(v) / te_count for name, v in flat.items()})
    return out


def _layer_activations(act_step, model, params, stream, bptt, n_tokens) -> dict[str, jax.Array]:
    """The first ``n_tokens`` unmasked held-out positions' activations of every layer."""
    carry = initial_carry(model, params, stream.inputs.shape[0])
    parts: dict[str, list] = {}
    have = 0
    k = 0
    while have < n_tokens and k < stream.num_chunks(bptt):
        _, trace, carry = act_step(params, carry, stream.chunk(k, bptt))
        mask = np.asarray(trace["mask"]).reshape(-1).astype(bool)
        for name, x in trace["act"].items():
            parts.setdefault(name, []).append(np.asarray(x).reshape(mask.size, -1)[mask])
        have += int(mask.sum())
        k += 1
    if have < n_tokens:
        raise ValueError(
            f"phases.sim_tokens={n_tokens} exceeds the held-out stream's {have} tokens"
        )
    out = {}
    for name, xs in parts.items():
        x = np.concatenate(xs)[:n_tokens]
        if x.shape[1] >= n_tokens:
            raise ValueError(
                f"phases.sim_tokens={n_tokens} must exceed layer {name}'s width {x.shape[1]} "
                "(SVCCA/CKA need more samples than units)"
            )
        out[name] = jnp.asarray(x)
    return out


def run_rows(
    workdir: str | Path,
    heldout: Stream,
    train_stream: Stream,
    cfg: PhasesConfig,
    *,
    model=None,
) -> Iterator[dict]:
    """:func:`checkpoint_rows` of every member of the run (one seed each), in turn."""
    seeds = population_of(workdir)
    for m in [None] if seeds is None else range(len(seeds)):
        yield from checkpoint_rows(workdir, heldout, train_stream, cfg, member=m, model=model)


def write_rows(path: str | Path, rows: Iterable[dict]) -> int:
    """Stream rows to a CSV with :data:`COLUMNS` (written to a temporary file, then
    renamed); returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    n = 0
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r)
            n += 1
    tmp.replace(path)
    return n


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a table written by :func:`write_rows` (typed)."""
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            for k in ("member", "seed", "step", "epoch"):
                r[k] = int(r[k])
            r["value"] = float(r["value"])
            out.append(r)
    return out
