"""Attachment scores of every attention head at every checkpoint of a Transformer run.

Each EWT sentence is the model's input as training saw text: ``<eos>`` (the previous
sentence's end) followed by the words, encoded with the run's vocabulary; the argmax
runs over the words only (``<eos>`` is context, not a candidate head). Word ``i``
(0-based) is at position ``i + 1``; its gold head (1-based word index ``h``, 0 = root)
at position ``h``; root arcs are left out, as in UAS. Sentences longer than the
context (``data.bptt - 1`` words) are skipped and counted. Per checkpoint the run's own
traced analysis step captures the tapped attention probabilities ``attn_probs_{l}``
(``jaxdyn.models.transformer``), and ``jaxdyn.analysis.attention.attachment_counts``
(vmapped over sentences, inside the same jit) counts the arcs each head's argmax
recovers; the counts are summed over the corpus (UAS pooled over arcs).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.analysis.attention import attachment_counts, previous_token_pattern
from jaxdyn.models.transformer import TransformerSequenceModel, probs_from_trace
from jaxdyn.studies._common import iter_selected
from jaxdyn.trace.spec import CaptureSpec
from jaxdyn.train.step import make_analysis_step
from jaxdyn.train.trajectory import run_model

DIRECTIONS = ("either", "dep_to_head", "head_to_dep")
#: Columns of the tidy table (``attention/uas.csv``).
COLUMNS = (
    "member",
    "seed",
    "epoch",
    "step",
    "layer",
    "head",
    "direction",
    "recovered",
    "arcs",
    "uas",
)
SPEC = CaptureSpec(
    activations=True,
    act_grads=False,
    gates=False,
    modules=("attn_probs",),
    reductions=(),
    keep_full=True,
)


@dataclasses.dataclass(frozen=True)
class Parsed:
    """Padded sentences: ``inputs``/``heads`` ``(N, T)`` int32 (heads: position of each
    position's syntactic head, -1 for none), ``valid`` ``(N, T)`` bool (the words: the
    leading ``<eos>`` is input but never a key of the argmax, as special tokens are left
    out by Clark et al. 2019 and Htut et al. 2019); ``skipped``:
    sentences left out for not fitting the context; ``unk``: fraction of words unknown."""

    inputs: np.ndarray
    heads: np.ndarray
    valid: np.ndarray
    skipped: int
    unk: float

    @property
    def arcs(self) -> int:
        return int(((self.heads >= 0) & self.valid).sum())


def parse_sentences(
    sentences: Sequence[Sequence[str]],
    heads: Sequence[Sequence[int]],
    vocab,
    context: int,
    *,
    num_sentences: int | None = None,
) -> Parsed:
    """Encode sentences with their CoNLL-U heads (1-based, 0 = root) as padded arrays.

    Raises:
      ValueError: a head outside its sentence, or no sentence fits the context.
    """
    rows, skipped = [], 0
    for words, hs in zip(sentences, heads, strict=True):
        if len(words) + 1 > context:
            skipped += 1
            continue
        if any(h < 0 or h > len(words) for h in hs):
            raise ValueError(f"dependency head outside its sentence of {len(words)}: {hs}")
        rows.append((words, hs))
        if num_sentences is not None and len(rows) == num_sentences:
            break
    if not rows:
        raise ValueError(f"no sentence fits the model's context of {context} positions")
    t = 1 + max(len(w) for w, _ in rows)
    n = len(rows)
    inputs = np.full((n, t), vocab.eos_id, np.int32)
    head_pos = np.full((n, t), -1, np.int32)
    valid = np.zeros((n, t), bool)
    unk = 0
    for r, (words, hs) in enumerate(rows):
        ids = vocab.encode(list(words))
        unk += int((ids == vocab.unk_id).sum())
        inputs[r, 1 : 1 + len(words)] = ids
        head_pos[r, 1 : 1 + len(words)] = [h if h > 0 else -1 for h in hs]
        valid[r, 1 : 1 + len(words)] = True  # the words; <eos> is context, not a key
    words = int(valid.sum())
    return Parsed(inputs, head_pos, valid, skipped, unk / max(words, 1))


def _pad_batches(p: Parsed, batch: int):
    n = p.inputs.shape[0]
    total = -(-n // batch) * batch
    pad = total - n

    def padded(x, fill):
        return np.concatenate([x, np.full((pad, *x.shape[1:]), fill, x.dtype)]) if pad else x

    arrs = padded(p.inputs, 0), padded(p.heads, -1), padded(p.valid, False)
    for i in range(0, total, batch):
        yield tuple(a[i : i + batch] for a in arrs)


@functools.lru_cache(maxsize=8)
def _count_step(model: TransformerSequenceModel):
    """The jitted per-batch counter of a model (memoised: one compilation per shape)."""
    analyse = make_analysis_step(model, SPEC)

    @jax.jit
    def count(params, inputs, heads, valid):
        b, t = inputs.shape
        batch = {
            "inputs": inputs,
            "targets": jnp.zeros((b, t), jnp.int32),
            "mask": jnp.zeros_like(valid),
        }
        _, trace, _ = analyse(params, None, batch)
        out = {}
        for name, x in trace["act"].items():
            c = jax.vmap(attachment_counts)(probs_from_trace(x, model.heads), heads, valid)
            out[name] = {k: c[k].sum(0) for k in DIRECTIONS}
        return out

    return count


def layer_of(name: str) -> int:
    """``attn_probs_3`` -> 3."""
    return int(name.rsplit("_", 1)[1])


def baseline_counts(p: Parsed) -> dict[str, int]:
    """Arcs recovered by the previous-token pattern (every position attends to the one
    before it), the positional baseline; ``{"either", "dep_to_head", "head_to_dep"}``."""
    t = p.inputs.shape[1]
    pattern = jnp.broadcast_to(previous_token_pattern(t), (p.inputs.shape[0], 1, t, t))
    c = jax.vmap(attachment_counts)(pattern, jnp.asarray(p.heads), jnp.asarray(p.valid))
    return {k: int(c[k].sum()) for k in DIRECTIONS}


def attention_trajectory(
    workdir: str | Path,
    parsed: Parsed,
    *,
    checkpoints: str = "all",
    member: int | None = None,
    batch: int = 32,
    progress: bool = True,
) -> list[dict]:
    """Per checkpoint, layer and head, the arcs each head recovers.

    Returns:
      ``[{"epoch", "step", "layers": {l: {direction: (H,) int}}}]`` in checkpoint order.

    Raises:
      ValueError: the run's model is not a Transformer (it has no attention).
    """
    _, model, _, _ = run_model(workdir)
    if not isinstance(model, TransformerSequenceModel):
        raise ValueError(
            f"the attention study needs a Transformer run (model.kind=transformer); "
            f"{workdir} holds a {type(model).__name__}"
        )
    count = _count_step(model)
    out = []
    for ck in iter_selected(workdir, checkpoints, "attention.checkpoints", member=member):
        acc: dict[int, dict[str, np.ndarray]] = {}
        for inputs, heads, valid in _pad_batches(parsed, batch):
            got = jax.device_get(count(ck.params, inputs, heads, valid))
            for name, c in got.items():
                d = acc.setdefault(layer_of(name), {k: 0 for k in DIRECTIONS})
                for k in DIRECTIONS:
                    d[k] = d[k] + np.asarray(c[k], np.int64)
        out.append({"epoch": ck.epoch, "step": ck.step, "layers": dict(sorted(acc.items()))})
        if progress:
            who = "" if ck.member is None else f"member {ck.member}, "
            print(f"[attention] {who}epoch {ck.epoch} (step {ck.step}) done", file=sys.stderr)
    if not out:
        raise ValueError(f"{workdir}: no checkpoints selected")
    return out


def write_table(path: Path, trajs: dict[int, list[dict]], seeds: Sequence[int], arcs: int) -> int:
    """Tidy CSV: member, seed, epoch, step, layer, head, direction, recovered, arcs, uas."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for m, traj in sorted(trajs.items()):
            for row in traj:
                for layer, dirs in row["layers"].items():
                    for k in DIRECTIONS:
                        for h, c in enumerate(dirs[k]):
                            uas = f"{int(c) / arcs:.6f}"
                            key = (m, seeds[m], row["epoch"], row["step"], layer, h, k)
                            w.writerow((*key, int(c), arcs, uas))
                            n += 1
    return n
