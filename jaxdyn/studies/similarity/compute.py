"""Comparisons of the similarity study.

Comparisons are sparse lists of pairs over one corpus's activation matrices
(every run x checkpoint of one layer): the language model against each tagger
at the same epoch, each model against its own final checkpoint, and taggers of
different tasks against each other at the same epoch. Each layer's matrices
(all runs x checkpoints) go to :func:`jaxdyn.analysis.pairwise` with the explicit
pair list: every matrix is factored once and only the listed pairs are
evaluated, ``pair_chunk`` at a time, in one compiled call.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import jax
import numpy as np

from jaxdyn.analysis import pairwise

METRICS = ("svcca", "pwcca", "cka")
COLUMNS = ("corpus", "comparison", "task", "init", "other", "layer", "epoch", "metric", "value")


#: The study's metric names -> ``pairwise`` metric and options (PWCCA at full rank,
#: linear CKA with the biased HSIC, as the thesis).
def _pairwise_metric(metric: str, keep: float) -> tuple[str, dict]:
    if metric == "svcca":
        return "svcca", {"keep": keep}
    if metric == "pwcca":
        return "pwcca", {}
    if metric == "cka":
        return "linear_cka", {}
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def listed_similarity(
    mats, pairs: np.ndarray, metric: str, *, keep: float, method: str, chunk: int
) -> np.ndarray:
    """``pairwise`` over the listed pairs of ``mats`` (M, N, D); (P,) NumPy values.

    Raises:
      FloatingPointError: a similarity is not finite (never a silent NaN in the table).
    """
    name, opts = _pairwise_metric(metric, keep)
    out = pairwise(name, mats, pairs=pairs, method=method, chunk_size=chunk, **opts)
    out = np.asarray(jax.device_get(out))
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{metric}: non-finite similarity in {out}")
    return out


def comparison_pairs(runs, epochs: list[int], pos_like: tuple[str, ...] = ()) -> list[dict]:
    """The study's comparisons as pairs of (run index, checkpoint index).

    Args:
      runs: :class:`~jaxdyn.studies.similarity.RunSpec` list, language model first.
      epochs: checkpoint epochs shared by all runs.

    Returns:
      Dicts with ``comparison`` (``lm-vs-tagger``, ``vs-own-final``,
      ``tagger-vs-tagger``), ``task``, ``init``, ``other``, ``epoch``, ``a``, ``b``
      (matrix indices ``run * C + checkpoint``).
    """
    c = len(epochs)
    out = []
    lm = next(i for i, r in enumerate(runs) if r.task == "lm")
    for i, r in enumerate(runs):
        for k, e in enumerate(epochs):
            if r.task != "lm":
                out.append(_row("lm-vs-tagger", r.task, r.init, "lm", e, lm * c + k, i * c + k))
            out.append(_row("vs-own-final", r.task, r.init, "final", e, i * c + k, i * c + c - 1))
    for (i, r), (j, s) in itertools.combinations(enumerate(runs), 2):
        if "lm" in (r.task, s.task) or r.init != s.init or r.task == s.task:
            continue
        for k, e in enumerate(epochs):
            out.append(_row("tagger-vs-tagger", r.task, r.init, s.task, e, i * c + k, j * c + k))
    return out


def _row(comparison, task, init, other, epoch, a, b):
    return {
        "comparison": comparison,
        "task": task,
        "init": init,
        "other": other,
        "epoch": epoch,
        "a": a,
        "b": b,
    }


def compare_runs(corpus: str, runs, epochs, acts, cfg) -> list[dict]:
    """All comparisons of one corpus, every layer and metric, as tidy rows.

    Args:
      corpus: corpus name.
      runs: run specs (language model first).
      epochs: shared checkpoint epochs.
      acts: ``{run name: {layer: (C, N, D)}}``.
      cfg: :class:`~jaxdyn.studies.similarity.SimilarityConfig`.
    """
    from jaxdyn.studies.similarity.runs import layer_order

    pairs = comparison_pairs(runs, epochs)
    index = np.array([[p["a"], p["b"]] for p in pairs], np.int32)
    rows = []
    for layer in layer_order(acts[runs[0].name]):
        mats = np.concatenate([acts[r.name][layer] for r in runs])
        for metric in METRICS:
            vals = listed_similarity(
                mats,
                index,
                metric,
                keep=cfg.svcca_keep,
                method=cfg.cca_method,
                chunk=cfg.pair_chunk,
            )
            for p, v in zip(pairs, vals):
                rows.append(
                    {
                        "corpus": corpus,
                        **{k: p[k] for k in ("comparison", "task", "init", "other", "epoch")},
                        "layer": layer,
                        "metric": metric,
                        "value": float(v),
                    }
                )
    return rows


def write_rows(path: Path, rows: list[dict], columns) -> None:
    """Write tidy rows as CSV (floats with 6 significant digits)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([f"{r[c]:.6g}" if isinstance(r[c], float) else r[c] for c in columns])


# ----------------------------------------------------------------------------- probes
