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
COLUMNS = (
    "member", "seed", "corpus", "comparison", "task", "init", "other", "layer", "epoch",
    "metric", "value",
)  # fmt: skip
PROBE_COLUMNS = (
    "member", "seed", "corpus", "task", "layer", "epoch", "train_acc", "test_acc", "majority"
)  # fmt: skip


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


def compare_runs(corpus: str, runs, epochs, acts, cfg, *, member: int = 0, seed=None) -> list[dict]:
    """All comparisons of one corpus (one member), every layer and metric, as tidy rows.

    Args:
      corpus: corpus name.
      runs: run specs (language model first).
      epochs: shared checkpoint epochs.
      acts: ``{run name: {layer: (C, N, D)}}``.
      cfg: :class:`~jaxdyn.studies.similarity.SimilarityConfig`.
      member, seed: the member whose runs these are (recorded in every row).
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
                        "member": member,
                        "seed": seed,
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


# ----------------------------------------------------------------------------- one member


def run_member(
    corpus: str, splits, cfg, root: Path, *, member: int, seed: int, run=None, progress=True
) -> dict:
    """Train one member's models on a corpus, collect activations, compare and probe.

    Args:
      corpus: corpus name.
      splits: prepared ``train``/``valid``/``test`` splits
        (:func:`~jaxdyn.studies.similarity.runs.prepare_corpus`).
      cfg: the study's section.
      root: the member's folder (:func:`~jaxdyn.studies.similarity.runs.member_root`).
      member, seed: the member's index and seed (its models' seeds follow from it).
      run: the run's config (fills the section's ``None`` epochs).

    Returns:
      ``{"runs", "epochs", "rows", "probes", "heldout"}`` (rows and probes carry
      ``member`` and ``seed``).
    """
    from jaxdyn.studies.similarity import runs as sim
    from jaxdyn.studies.similarity.probes import majority_accuracy, probe_accuracy, row_split

    runs, tasks = sim.train_corpus(corpus, splits, cfg, root, run=run, progress=progress, seed=seed)
    tokens = sim.heldout_tokens(tasks["lm"].valid, cfg.heldout_tokens)
    acts, epochs = {}, None
    for r in runs:
        ep, acts[r.name] = sim.collect_activations(r.path, tokens)
        if epochs is not None and ep != epochs:
            raise ValueError(f"{r.path}: checkpoints at epochs {ep}, expected {epochs}")
        epochs = ep
    who = f"{corpus}, seed {seed}"
    sim._log(
        progress, f"[similarity] {who}: comparing {len(runs)} runs x {len(epochs)} checkpoints"
    )
    rows = compare_runs(corpus, runs, epochs, acts, cfg, member=member, seed=seed)
    sim._log(progress, f"[similarity] {who}: probes")
    b, t = tokens.shape
    sel = row_split(b, t, cfg.probe_train_frac)
    names = [k for k in tasks if k != "lm"]
    classes = max(len(tasks[k].out_vocab) for k in names)
    probes = []
    for task in names:
        y, mask = sim.heldout_labels(
            tasks[task].valid, cfg.heldout_tokens, tasks[task].out_vocab.eos_id
        )
        base = majority_accuracy(y, mask, sel)
        for layer, feats in acts["lm"].items():
            tr, te = probe_accuracy(
                feats, y, mask, sel, classes=classes, hidden=cfg.probe_hidden,
                steps=cfg.probe_steps, lr=cfg.probe_lr, weight_decay=cfg.probe_weight_decay,
                seed=seed,
            )  # fmt: skip
            for e, a, c in zip(epochs, tr, te):
                probes.append(
                    {
                        "member": member,
                        "seed": seed,
                        "corpus": corpus,
                        "task": task,
                        "layer": layer,
                        "epoch": e,
                        "train_acc": float(a),
                        "test_acc": float(c),
                        "majority": base,
                    }
                )
    return {"runs": runs, "epochs": epochs, "rows": rows, "probes": probes, "heldout": b * t}


def run_corpus(corpus: str, splits, cfg, root: Path, *, run=None, progress: bool = True) -> dict:
    """Every member of one corpus (:func:`run_member`); writes the corpus's two CSVs.

    Args:
      corpus: corpus name.
      splits: raw ``train``/``valid``/``test`` tagged splits.
      cfg: the study's section.
      root: ``workdir/similarity/<corpus>``; member ``m``'s runs go to
        :func:`~jaxdyn.studies.similarity.runs.member_root` ``(root, m)``.
      run: the run's config (fills the section's ``None`` epochs/seed/seeds).

    Returns:
      ``{"members": [run_member dicts], "seeds", "rows", "probes", "heldout"}``; also
      writes ``root/similarity.csv`` and ``root/probes.csv`` (every member, with
      ``member``/``seed`` columns).
    """
    from jaxdyn.studies.similarity import runs as sim

    splits = sim.prepare_corpus(splits, cfg)
    seeds = sim.member_seeds(cfg, run)
    members = [
        run_member(
            corpus,
            splits,
            cfg,
            sim.member_root(root, m),
            member=m,
            seed=s,
            run=run,
            progress=progress,
        )
        for m, s in enumerate(seeds)
    ]
    rows = [r for res in members for r in res["rows"]]
    probes = [r for res in members for r in res["probes"]]
    write_rows(root / "similarity.csv", rows, COLUMNS)
    write_rows(root / "probes.csv", probes, PROBE_COLUMNS)
    return {
        "members": members,
        "seeds": seeds,
        "rows": rows,
        "probes": probes,
        "heldout": members[0]["heldout"],
    }
