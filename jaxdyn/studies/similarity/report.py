"""The similarity study as a report stage: run every corpus, write CSVs, plots and a section.

Files under the run folder::

    similarity/<corpus>/lm, <task>-shared, <task>-own     training runs (resumable)
    similarity/<corpus>/similarity.csv                   tidy comparisons
    similarity/<corpus>/probes.csv                       probe accuracies
    similarity/findings.json
    report/similarity_<corpus>_*.png
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import numpy as np

from jaxdyn.report import assemble, table, verdict_text, write_section
from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.studies.similarity import findings as fnd
from jaxdyn.studies.similarity import plots
from jaxdyn.studies.similarity import runs as sim
from jaxdyn.studies.similarity.compute import COLUMNS, compare_runs, write_rows
from jaxdyn.studies.similarity.config import SimilarityConfig
from jaxdyn.studies.similarity.probes import majority_accuracy, probe_accuracy, row_split

ORDER = 30
PROBE_COLUMNS = ("corpus", "task", "layer", "epoch", "train_acc", "test_acc", "majority")


def run_corpus(corpus: str, splits, cfg, root: Path, *, run=None, progress: bool = True) -> dict:
    """Train, collect activations, compare and probe for one corpus; writes its CSVs.

    Args:
      corpus: corpus name.
      splits: raw ``train``/``valid``/``test`` tagged splits.
      cfg: the study's section (:class:`~jaxdyn.studies.similarity.config.SimilarityConfig`).
      root: ``workdir/similarity/<corpus>``.
      run: the run's config (fills the section's ``None`` epochs/seed).

    Returns:
      ``{"runs", "epochs", "rows", "probes", "heldout"}``; also writes
      ``root/similarity.csv`` and ``root/probes.csv``.
    """
    splits = sim.prepare_corpus(splits, cfg)
    runs, tasks = sim.train_corpus(corpus, splits, cfg, root, run=run, progress=progress)
    seed = sim.resolve_seed(cfg, run)
    tokens = sim.heldout_tokens(tasks["lm"].valid, cfg.heldout_tokens)
    acts, epochs = {}, None
    for r in runs:
        ep, acts[r.name] = sim.collect_activations(r.path, tokens)
        if epochs is not None and ep != epochs:
            raise ValueError(f"{r.path}: checkpoints at epochs {ep}, expected {epochs}")
        epochs = ep
    sim._log(
        progress, f"[similarity] {corpus}: comparing {len(runs)} runs x {len(epochs)} checkpoints"
    )
    rows = compare_runs(corpus, runs, epochs, acts, cfg)
    write_rows(root / "similarity.csv", rows, COLUMNS)
    sim._log(progress, f"[similarity] {corpus}: probes")
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
                feats,
                y,
                mask,
                sel,
                classes=classes,
                hidden=cfg.probe_hidden,
                steps=cfg.probe_steps,
                lr=cfg.probe_lr,
                weight_decay=cfg.probe_weight_decay,
                seed=seed,
            )
            for e, a, c in zip(epochs, tr, te):
                probes.append(
                    {
                        "corpus": corpus,
                        "task": task,
                        "layer": layer,
                        "epoch": e,
                        "train_acc": float(a),
                        "test_acc": float(c),
                        "majority": base,
                    }
                )
    write_rows(root / "probes.csv", probes, PROBE_COLUMNS)
    return {"runs": runs, "epochs": epochs, "rows": rows, "probes": probes, "heldout": b * t}


def _final_losses(run: Path) -> tuple[float, float]:
    rows = [json.loads(x) for x in (run / "metrics" / "epochs.jsonl").read_text().splitlines()]
    return rows[0]["valid_loss"], rows[-1]["valid_loss"]


def _summary(cfg, run, f) -> list[dict]:
    """Summary rows (single-seed: the study's models are trained from one seed)."""
    scale = (
        f"1 seed, {sim.resolve_epochs(cfg, run)} epochs, "
        + (f"{cfg.data.max_train_tokens:,}" if cfg.data.max_train_tokens else "all")
        + " training tokens per corpus"
    )
    f1, f1b, f2, f3 = f["f1"], f["f1_probe"], f["f2"], f["f3"]
    return [
        summary_row("1. part of speech stabilises before topic (SVCCA)", f1["verdict"],
                    f"POS earlier in {f1['earlier']}, later in {f1['later']} of "
                    f"{len(f1['cells'])} cells", seeds=1, scale=scale),
        summary_row("1b. same, probe view", f1b["verdict"],
                    f"POS earlier in {f1b['earlier']}, later in {f1b['later']} of "
                    f"{len(f1b['cells'])} cells", seeds=1, scale=scale),
        summary_row("2. recurrent layers more tagger-like, embeddings less", f2["verdict"],
                    "SVCCA change epoch 0 -> last (own init): " + (_changes(f2, "own") or "n/a"),
                    seeds=1, scale=scale),
        summary_row("3. embeddings of different tasks become task-specific", f3["verdict"],
                    f"embedding SVCCA fell in {f3['fell']}, rose in {f3['rose']} task pairs",
                    seeds=1, scale=scale),
    ]  # fmt: skip


def _skip_section(workdir: Path, reason: str) -> None:
    write_section(
        workdir,
        ORDER,
        "similarity",
        f"""## Representation similarity (SVCCA, PWCCA, CKA)

Skipped: {reason} The study trains a language model and taggers on UD English-EWT
and Brown; pass `--data-dir DIR` (or set `$JAXDYN_DATA_DIR`) pointing at a folder with
`ud-english-ewt/` and `brown/` to enable it.
""",
        summary=[summary_row("all findings", "skipped", f"{reason} (needs --data-dir)", seeds=0)],
    )


def similarity_stage(ctx, *, cfg: SimilarityConfig | None = None, corpora=None) -> dict:
    """Run the similarity study and write its report section.

    Args:
      ctx: a :class:`jaxdyn.studies.run.StudyContext` (uses ``cfg.similarity``,
        ``workdir``, ``progress`` and ``data_dir``).
      cfg: use this section instead of ``ctx.cfg.similarity``.
      corpora: ``{name: {"train", "valid", "test": TaggedCorpus}}`` instead of
        reading ``cfg.corpora`` from ``ctx.data_dir`` (e.g. a toy corpus in tests).

    Returns:
      The findings (also in ``similarity/findings.json``); ``{}`` when skipped.
    """
    run = getattr(ctx, "cfg", None)
    if cfg is None:
        cfg = run.similarity
    workdir = Path(ctx.workdir)
    t0 = time.perf_counter()
    if corpora is None:
        if ctx.data_dir is None:
            _skip_section(workdir, "no real-corpora folder was given.")
            return {}
        corpora = {n: sim.load_corpus(n, Path(ctx.data_dir)) for n in cfg.corpora}
    for n in corpora:  # an unconfigured corpus fails now, not after its language model trains
        cfg.tasks_of(n)
    results = {
        name: run_corpus(
            name, splits, cfg, workdir / "similarity" / name, run=run, progress=ctx.progress
        )
        for name, splits in corpora.items()
    }
    rows = [r for res in results.values() for r in res["rows"]]
    probes = [r for res in results.values() for r in res["probes"]]
    idx = fnd.index(rows)
    f1 = fnd.finding_pos_before_topic(idx, cfg)
    f1b = fnd.finding_probe_view(probes, cfg)
    f2 = fnd.finding_recurrent_vs_embedding(idx, cfg.min_effect)
    f3 = fnd.finding_task_specific_embeddings(idx, cfg.min_effect)
    findings = {"f1": f1, "f1_probe": f1b, "f2": f2, "f3": f3}
    out = workdir / "similarity"
    (out / "findings.json").write_text(json.dumps(findings, indent=1, default=fmt.jsonable))
    rep = workdir / "report"
    figs = []
    for name in results:
        figs.append(
            plots.plot_series(
                rep / f"similarity_{name}_lm_vs_tagger.png",
                idx,
                name,
                "lm-vs-tagger",
                ("svcca", "pwcca", "cka"),
                f"{name}: language model vs tagger, same epoch",
            )
        )
        figs.append(
            plots.plot_series(
                rep / f"similarity_{name}_stability.png",
                idx,
                name,
                "vs-own-final",
                ("svcca",),
                f"{name}: SVCCA with the model's own final checkpoint",
            )
        )
        if any(k[0] == name and k[1] == "tagger-vs-tagger" for k in idx):
            figs.append(
                plots.plot_series(
                    rep / f"similarity_{name}_cross_task.png",
                    idx,
                    name,
                    "tagger-vs-tagger",
                    ("svcca",),
                    f"{name}: taggers of different tasks, same epoch",
                )
            )
        figs.append(plots.plot_probes(rep / f"similarity_{name}_probes.png", probes, name))
    text = _section(cfg, run, results, findings, figs, time.perf_counter() - t0)
    write_section(
        workdir, ORDER, "similarity", text, stage="similarity", summary=_summary(cfg, run, findings)
    )
    return findings


def run_similarity_study(
    workdir: str | Path,
    data_dir: str | Path | None,
    run,
    *,
    progress: bool = True,
) -> Path:
    """The similarity study on its own (no Penn Treebank run): stage, then the report.

    Args:
      run: the config tree (``run.similarity`` is the study's section).

    Returns:
      The assembled report (``workdir/report/README.md``).
    """
    workdir = Path(workdir)
    ctx = types.SimpleNamespace(
        cfg=run,
        workdir=workdir,
        progress=progress,
        data_dir=None if data_dir is None else Path(data_dir),
    )
    similarity_stage(ctx)
    return assemble(workdir, "jaxdyn similarity report", f"Run folder `{workdir}`.\n")


def _fmt(v):
    return fmt.fixed(v, signed=True)


def _changes(f2, init) -> str:
    parts = []
    for corpus, d in sorted(f2["mean_change"].items()):
        if init in d:
            m = d[init]
            layers = sim.layer_order(m)
            parts.append(f"{corpus}: " + ", ".join(f"{l} {_fmt(m[l])}" for l in layers))
    return "; ".join(parts)


def _section(cfg, run, results, f, figs, seconds) -> str:
    f1, f1b, f2, f3 = f["f1"], f["f1_probe"], f["f2"], f["f3"]
    thr = cfg.stable_threshold
    f2_text = _changes(f2, "own") or "no own-initialisation taggers with >= 2 checkpoints"
    f2_shared = _changes(f2, "shared")
    emb3 = [c for c in f3["cells"] if c[1] == "embedding"]
    f3_text = (
        f"embedding SVCCA fell in {f3['fell']} and rose in {f3['rose']} of {len(emb3)} task pairs; "
        "mean "
        + (
            f"{fmt.fixed(np.mean([c[3] for c in emb3]))} -> {fmt.fixed(np.mean([c[4] for c in emb3]))}"
            if emb3
            else "n/a"
        )
    )
    runs_rows = []
    for name, res in results.items():
        for r in res["runs"]:
            a, b = _final_losses(r.path)
            runs_rows.append((name, r.name, r.init, fmt.fixed(a), fmt.fixed(b)))
    f1_rows = [
        (c, i, l, p, ep, fmt.fixed(mp), t, et, fmt.fixed(mt))
        for c, i, l, p, ep, mp, t, et, mt in f1["cells"]
    ]
    f3_rows = [
        (c, l, pair, fmt.fixed(a), fmt.fixed(b), _fmt(d)) for c, l, pair, a, b, d in f3["cells"]
    ]
    corp = ", ".join(
        f"{n} ({', '.join(t for t in cfg.tasks_of(n))}; {res['heldout']:,} held-out tokens)"
        for n, res in results.items()
    )
    return f"""## Representation similarity (SVCCA, PWCCA, linear CKA)

{cfg.model.num_layers} x {cfg.model.hidden} {"Transformers" if cfg.model.kind == "transformer" else "LSTMs"} (embedding {cfg.model.emb_dim}), {sim.resolve_epochs(cfg, run)} epochs,
{cfg.data.max_train_tokens or "all"} training tokens, seed {sim.resolve_seed(cfg, run)}, corpora {corp}. Per corpus a language model and a tagger
per task (predicting the next token's tag), each tagger from the language model's initialisation
(*shared*) and{"" if cfg.own_init is None else f" (for {', '.join(cfg.own_init)})"} from its own seed
(*own*). Every checkpoint is evaluated on the same held-out tokens (identical inputs for all models);
comparisons per layer: SVCCA (keep {cfg.svcca_keep} of the variance), PWCCA (weights on the first
model: the language model, or the earlier checkpoint), linear CKA. Probes: {cfg.probe_hidden}-unit MLPs
on the language model's frozen activations predicting the current token's tag, trained on the first
{cfg.probe_train_frac:.0%} of each held-out row and tested on the rest. Tables:
`similarity/<corpus>/similarity.csv`, `probes.csv`; findings: `similarity/findings.json`
({seconds:.0f} s in this invocation).

| finding (thesis) | this run | numbers |
|---|---|---|
| 1. part of speech stabilises before topic (taggers, SVCCA with own final checkpoint) | {verdict_text(f1["verdict"], 1)} | POS earlier in {f1["earlier"]}, later in {f1["later"]} of {len(f1["cells"])} (corpus, init, layer, task pair) cells; stable = SVCCA >= {thr} from that epoch on, ties broken by mean SVCCA before the last epoch (table below) |
| 1b. same, probe view (LM probe reaches 90% of its best gain) | {verdict_text(f1b["verdict"], 1)} | POS earlier in {f1b["earlier"]}, later in {f1b["later"]} of {len(f1b["cells"])} (corpus, layer, task pair) cells: {"; ".join(f"{c} {l}: {p} {e} vs {t} {e2}" for c, l, p, e, t, e2 in f1b["cells"])} |
| 2. recurrent layers grow more tagger-like, embeddings less (LM vs tagger) | {verdict_text(f2["verdict"], 1)} | mean SVCCA change epoch 0 -> last, own-init taggers: {f2_text}. (Shared init, epoch 1 -> last: {f2_shared or "n/a"}) |
| 3. embeddings of different tasks start similar, become task-specific (shared-init taggers) | {verdict_text(f3["verdict"], 1)} | epoch 1 -> last: {f3_text} |

Every model here is trained from one seed ({sim.resolve_seed(cfg, run)}; the run's `seeds` does not
apply to this study): no interval across seeds is available and every verdict is
**single-seed**. Verdicts are decided per layer (per task pair for 3); parts that disagree are
shown as "mixed". Changes within {cfg.min_effect} SVCCA count as no change (ties). With a shared initialisation every layer of a tagger equals the language model's at epoch 0
(similarity exactly 1), so finding 2 starts from the own-initialisation taggers at epoch 0 and
finding 3 from epoch 1.

{chr(10).join(f"![similarity]({p.name})" for p in figs)}

<details><summary>finding 1: stabilisation epochs (SVCCA with own final >= {thr})</summary>

{table(["corpus", "init", "layer", "POS task", "epoch", "mean before last", "topic task", "epoch", "mean before last"], f1_rows)}
</details>

<details><summary>finding 3: SVCCA between shared-init taggers of different tasks</summary>

{table(["corpus", "layer", "pair", "epoch 1", "last", "change"], f3_rows)}
</details>

<details><summary>runs (validation loss at epoch 0 and at the end)</summary>

{table(["corpus", "run", "init", "valid loss, epoch 0", "valid loss, last"], runs_rows)}
</details>
"""
