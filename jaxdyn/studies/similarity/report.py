"""The similarity study as a report stage: run every corpus, write CSVs, plots and a section.

Files under the run folder::

    similarity/<corpus>/lm, <task>-shared, <task>-own     seed 0's training runs (resumable)
    similarity/<corpus>/member-<m>/lm, ...               member m's (seeds > 1)
    similarity/<corpus>/similarity.csv                   tidy comparisons (every member)
    similarity/<corpus>/probes.csv                       probe accuracies (every member)
    similarity/findings.json                             verdicts across seeds, per-seed detail
    report/similarity_<corpus>_*.png                     means over seeds, range bands
"""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

from jaxdyn.report import assemble, scale_text, table, verdict_text, write_section
from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.studies.similarity import findings as fnd
from jaxdyn.studies.similarity import plots
from jaxdyn.studies.similarity import runs as sim
from jaxdyn.studies.similarity.compute import run_corpus
from jaxdyn.studies.similarity.config import SimilarityConfig
from jaxdyn.studies.verdicts import describe

ORDER = 30

#: The findings as the report and the summary name them.
NAMES = {
    "f1": "1. part of speech stabilises before topic (SVCCA)",
    "f1_probe": "1b. same, probe view",
    "f2": "2. recurrent layers more tagger-like, embeddings less",
    "f3": "3. embeddings of different tasks become task-specific",
}


def _final_losses(run: Path) -> tuple[float, float]:
    rows = [json.loads(x) for x in (run / "metrics" / "epochs.jsonl").read_text().splitlines()]
    return rows[0]["valid_loss"], rows[-1]["valid_loss"]


def _rule(finding: dict) -> str:
    """The rules of a finding's parts: one if all parts share it, else each rule with the
    parts it decides (finding 2 predicts the embedding down and the LSTM layers up)."""
    per = finding["per_part"]
    if not per:
        return "no part could be measured: inconclusive"
    by_rule: dict[str, list[str]] = {}
    for part, v in per.items():
        by_rule.setdefault(v.rule, []).append(part)
    if len(by_rule) == 1:
        return next(iter(by_rule))
    return "; ".join(f"{', '.join(parts)}: {rule}" for rule, parts in by_rule.items())


def _key_numbers(finding: dict) -> str:
    """Per part: the effect (trained - baseline) mean [interval] across seeds."""
    return (
        "; ".join(
            f"{part}: {fmt.mean_interval(v.effect, v.effect_lo, v.effect_hi, single='1 seed')}"
            for part, v in finding["per_part"].items()
        )
        or "n/a"
    )


def _summary(cfg, run, f) -> list[dict]:
    """Summary rows (one per finding, decided across the study's seeds)."""
    S = len(f["seeds"])
    scale = scale_text(S, sim.resolve_epochs(cfg, run), cfg.data.max_train_tokens) + " per corpus"
    return [
        summary_row(NAMES[k], f[k]["verdict"], _key_numbers(f[k]), seeds=S, scale=scale,
                    rule=_rule(f[k]))
        for k in ("f1", "f1_probe", "f2", "f3")
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
    seeds = sim.member_seeds(cfg, run)
    rows = [r for res in results.values() for r in res["rows"]]
    probes = [r for res in results.values() for r in res["probes"]]
    idxs = [fnd.index([r for r in rows if r["member"] == m]) for m in range(len(seeds))]
    probes_m = [[r for r in probes if r["member"] == m] for m in range(len(seeds))]
    findings = fnd.across_seeds(idxs, probes_m, seeds, cfg)
    out = workdir / "similarity"
    (out / "findings.json").write_text(json.dumps(findings, indent=1, default=fmt.jsonable))
    rep = workdir / "report"
    figs = []
    for name in results:
        figs.append(
            plots.plot_series(
                rep / f"similarity_{name}_lm_vs_tagger.png",
                idxs,
                name,
                "lm-vs-tagger",
                ("svcca", "pwcca", "cka"),
                f"{name}: language model vs tagger, same epoch",
            )
        )
        figs.append(
            plots.plot_series(
                rep / f"similarity_{name}_stability.png",
                idxs,
                name,
                "vs-own-final",
                ("svcca",),
                f"{name}: SVCCA with the model's own final checkpoint",
            )
        )
        if any(k[0] == name and k[1] == "tagger-vs-tagger" for k in idxs[0]):
            figs.append(
                plots.plot_series(
                    rep / f"similarity_{name}_cross_task.png",
                    idxs,
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


def _parts_text(finding: dict, per_seed: str = "effect") -> str:
    """Per part: label, mean [interval], baseline, effect [interval], and each seed's effect."""
    out = []
    for part, v in finding["per_part"].items():
        f = (lambda e: f"{e:+.0f}") if per_seed == "order" else _fmt
        seeds = ", ".join(f"{s}: {f(e)}" for s, e in zip(v.seeds_used, v.effects))
        out.append(f"{part} {v.label}: {describe(v)}; {per_seed} per seed {seeds or 'n/a'}")
    return "; ".join(out) or "no part could be measured"


def _section(cfg, run, results, f, figs, seconds) -> str:
    seeds, per_seed = f["seeds"], f["per_seed"]
    S, thr = len(seeds), cfg.stable_threshold
    f2_shared = "; ".join(
        f"seed {sd}: {_changes(p['f2'], 'shared') or 'n/a'}" for sd, p in zip(seeds, per_seed)
    )
    runs_rows = []
    for name, res in results.items():
        for sd, mem in zip(res["seeds"], res["members"]):
            for r in mem["runs"]:
                a, b = _final_losses(r.path)
                runs_rows.append((name, sd, r.name, r.init, fmt.fixed(a), fmt.fixed(b)))
    f1_rows = [
        (sd, c, i, l, p, ep, fmt.fixed(mp), t, et, fmt.fixed(mt))
        for sd, ps in zip(seeds, per_seed)
        for c, i, l, p, ep, mp, t, et, mt in ps["f1"]["cells"]
    ]
    f1b_rows = [
        (sd, c, l, p, fmt.epoch(e), t, fmt.epoch(e2))
        for sd, ps in zip(seeds, per_seed)
        for c, l, p, e, t, e2 in ps["f1_probe"]["cells"]
    ]
    f3_rows = [
        (sd, c, l, pair, fmt.fixed(a), fmt.fixed(b), _fmt(d))
        for sd, ps in zip(seeds, per_seed)
        for c, l, pair, a, b, d in ps["f3"]["cells"]
    ]
    corp = ", ".join(
        f"{n} ({', '.join(t for t in cfg.tasks_of(n))}; {res['heldout']:,} held-out tokens)"
        for n, res in results.items()
    )
    seeds_txt = (
        f"{S} seeds per corpus ({', '.join(map(str, seeds))}): seed *m* trains its own language "
        "model and taggers (folders `similarity/<corpus>/member-<m>/` for m >= 1), every "
        "finding is computed per seed and decided across seeds with Student-t 95% intervals "
        "(rule next to each verdict)"
        if S > 1
        else f"one seed ({seeds[0]}): no interval across seeds is available and every verdict is "
        "**single-seed**"
    )
    rows = "\n".join(
        f"| {NAMES[k]} | {verdict_text(f[k]['verdict'], S)} | {_parts_text(f[k], what)} | "
        f"{_rule(f[k])} |"
        for k, what in (("f1", "order"), ("f1_probe", "order"), ("f2", "change"),
                        ("f3", "change"))
    )  # fmt: skip
    return f"""## Representation similarity (SVCCA, PWCCA, linear CKA)

{cfg.model.num_layers} x {cfg.model.hidden} {"Transformers" if cfg.model.kind == "transformer" else "LSTMs"} (embedding {cfg.model.emb_dim}), {sim.resolve_epochs(cfg, run)} epochs,
{cfg.data.max_train_tokens or "all"} training tokens, {seeds_txt}; corpora {corp}. Per corpus and seed a language model and a tagger
per task (predicting the next token's tag), each tagger from the language model's initialisation
(*shared*) and{"" if cfg.own_init is None else f" (for {', '.join(cfg.own_init)})"} from its own seed
(*own*: seed + 101 k). Every checkpoint is evaluated on the same held-out tokens (identical inputs for all models);
comparisons per layer: SVCCA (keep {cfg.svcca_keep} of the variance), PWCCA (weights on the first
model: the language model, or the earlier checkpoint), linear CKA. Probes: {cfg.probe_hidden}-unit MLPs
on the language model's frozen activations predicting the current token's tag, trained on the first
{cfg.probe_train_frac:.0%} of each held-out row and tested on the rest. Tables:
`similarity/<corpus>/similarity.csv`, `probes.csv` (with `member`/`seed` columns); findings:
`similarity/findings.json` ({seconds:.0f} s in this invocation).

| finding (thesis) | verdict | per part: trained mean [interval], baseline, effect [interval] across seeds; each seed's value | rule |
|---|---|---|---|
{rows}

How each seed's value is measured. 1: per (corpus, init, layer, POS task, topic task) cell, the
stabilisation epoch is the first from which SVCCA with the tagger's own final checkpoint stays
>= {thr}, ties broken by the mean SVCCA before the last epoch (within {cfg.min_effect}: a tie); a
layer's cells must agree within a seed (+1 POS first, -1 POS later, 0 otherwise). 1b: the same
with the epoch at which the language model's probe reaches 90% of its best gain over epoch 0
(a seed whose probes never gain {cfg.min_effect} in a layer gives that layer the order 0).
Neither has an untrained counterpart, so their baseline is a shared 0. 2: LM-vs-tagger SVCCA
averaged over the own-initialisation taggers, last epoch against epoch 0 (the untrained
checkpoints), predicted down for the embedding and up for every LSTM layer (with a shared
initialisation every layer is identical at epoch 0; shared init, epoch 1 -> last, per seed:
{f2_shared or "n/a"}). 3: embedding SVCCA of two shared-init taggers of different tasks, last epoch
against epoch 1 (epoch 0 is 1 by construction), predicted down. Margins: 0 for the orders of 1
and 1b, `similarity.min_effect` = {cfg.min_effect} SVCCA for 2 and 3. Parts (layers; task pairs
for 3) that disagree are shown as "mixed".

{chr(10).join(f"![similarity]({p.name})" for p in figs)}

<details><summary>finding 1: stabilisation epochs per seed (SVCCA with own final >= {thr})</summary>

{table(["seed", "corpus", "init", "layer", "POS task", "epoch", "mean before last", "topic task", "epoch", "mean before last"], f1_rows)}
</details>

<details><summary>finding 1b: probe stabilisation epochs per seed</summary>

{table(["seed", "corpus", "layer", "POS task", "epoch", "topic task", "epoch"], f1b_rows)}
</details>

<details><summary>finding 3: SVCCA between shared-init taggers of different tasks, per seed</summary>

{table(["seed", "corpus", "layer", "pair", "epoch 1", "last", "change"], f3_rows)}
</details>

<details><summary>runs (validation loss at epoch 0 and at the end)</summary>

{table(["corpus", "seed", "run", "init", "valid loss, epoch 0", "valid loss, last"], runs_rows)}
</details>
"""
