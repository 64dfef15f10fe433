"""The sparsity study's stage: every population member's tables, verdicts across seeds,
figures and the report section (rules: ``findings``; figures: ``plots``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.report import scale_text, table, verdict_text, write_section
from jaxdyn.report.plots import SEED_BAND, seed_band
from jaxdyn.report.summary import over_training
from jaxdyn.studies.sparsity import plots
from jaxdyn.studies.sparsity.compute import member_trajectories, modules_of, write_table
from jaxdyn.studies.sparsity.findings import (
    both_halves,
    findings,
    frequency_correlations,
    function_content,
    member_statistics,
)
from jaxdyn.studies.stats import word_classes
from jaxdyn.studies.verdicts import describe

DIR_NAME = plots.DIR_NAME


def _v(v) -> str:
    """One per-layer verdict with its numbers: ``reproduced: -0.12 [..], untrained ...``."""
    return f"{v.label}: {describe(v)}"


def _f1_text(f1) -> str:
    """Per-layer verdicts of a finding judged at every epoch (1, and 3), naming the epochs
    whose verdict differs from the last epoch's."""
    parts = []
    for m, v in f1["per_layer"].items():
        over = over_training(f1["by_epoch"][m], v.label)
        parts.append(f"{m} {_v(v)}" + (f" (over training: {over})" if over else ""))
    return "; ".join(parts)


def _f3_text(f3) -> str:
    if not f3["per_layer"]:
        return "skipped: needs gold POS (pass --data-dir with UD English-EWT)"
    return _f1_text(f3)


def _f2_text(f2) -> str:
    parts = []
    for m, (a, g) in f2["per_layer"].items():
        over = over_training(f2["by_epoch"][m], both_halves(a, g))
        over = f" (both halves over training: {over})" if over else ""
        parts.append(f"{m}: activations {_v(a)}; gradients {_v(g)}{over}")
    return "; ".join(parts)


def _f4_text(f4, epochs) -> str:
    parts = []
    for m, te in f4["te"].items():
        halves = f4["half_drop_epoch"][m]
        half = ", ".join(fmt.epoch(h) for h in halves)
        v = f4["per_layer"].get(m)
        head = f"{m} {_v(v)}" if v is not None else f"{m} (needs epoch 0)"
        parts.append(
            f"{head}; mean TE {fmt.fixed(te[0])} -> {fmt.fixed(te[-1])} "
            f"(epoch {epochs[0]} -> {epochs[-1]}); epoch by which half of the drop happened, "
            f"per seed: {half}"
        )
    return "; ".join(parts)


def _key_numbers(f, rule_of) -> list[tuple[str, str, str]]:
    """``(finding, number text, rule)`` per finding for the summary table."""

    def short(per_layer, pick=lambda v: v):
        return ", ".join(
            f"{m} {fmt.mean_interval(pick(v).mean, pick(v).lo, pick(v).hi, single='1 seed')}"
            f" (untrained {fmt.num(pick(v).baseline, signed=True)})"
            for m, v in per_layer.items()
        )

    f2 = f["f2"]["per_layer"]
    return [
        ("1. frequent input words: concentrated activations (rho < 0)",
         "rho " + short(f["f1"]["per_layer"]), rule_of("f1")),
        ("2. frequent target words: dispersed activations, concentrated gradients",
         "act rho " + short(f2, lambda v: v[0]) + "; grad rho " + short(f2, lambda v: v[1]),
         rule_of("f2")),
        ("3. function words' gradients more concentrated at equal frequency",
         ("TE diff " + short(f["f3"]["per_layer"])) if f["f3"]["per_layer"]
         else "skipped: needs gold POS (--data-dir with UD English-EWT)", rule_of("f3")),
        ("4. concentration emerges over training",
         ("TE last/first " + short(f["f4"]["per_layer"])) if f["f4"]["per_layer"]
         else "n/a (needs the epoch-0 checkpoint)", rule_of("f4")),
    ]  # fmt: skip


def _rule(f, key) -> str:
    per = f[key]["per_layer"]
    if not per:
        return ""
    v = next(iter(per.values()))
    return v[0].rule + " (activations; gradients likewise, rho < 0)" if key == "f2" else v.rule


def sparsity_stage(ctx) -> dict:
    """Run the sparsity study (``ctx.cfg.sparsity``) on every member of the run; write its section."""
    scfg, cfg = ctx.cfg.sparsity, ctx.cfg
    min_count = scfg.min_count
    out = Path(ctx.workdir) / "sparsity"
    out.mkdir(parents=True, exist_ok=True)
    vocab, stream = ctx.task().vocab, getattr(ctx.task(), scfg.split)
    seeds = [cfg.seed + m for m in range(cfg.seeds)]
    members = None if cfg.seeds == 1 else list(range(cfg.seeds))
    trajs = member_trajectories(
        ctx.workdir,
        stream,
        members,
        max_chunks=scfg.max_chunks,
        checkpoints=scfg.checkpoints,
        progress=ctx.progress,
    )
    classes = {}
    if ctx.data_dir is not None:
        from jaxdyn.data.corpora import load_ewt

        ewt = load_ewt(ctx.data_dir, lowercase=True)["train"]
        classes = word_classes(zip(ewt.sentences, ewt.tags["xpos"], strict=True))
    n_rows = write_table(out / "per_type.csv.gz", trajs, vocab, classes, seeds=seeds)
    stats, corrs, fcs = [], {}, {}
    for m, traj in trajs.items():
        corrs[m] = frequency_correlations(traj, vocab, min_count=min_count)
        # finding 3 reads the gradients' difference at every epoch; the figure and the
        # intervals need every direction, with its bootstrap, at the last epoch only
        last = max(traj)
        fc = {
            e: function_content(
                traj, vocab, classes, e, min_count=min_count, directions=("act_grad",), n_boot=0
            )
            for e in traj
            if classes and e != last
        }
        if classes:
            fc[last] = function_content(traj, vocab, classes, last, min_count=min_count)
        fcs[m] = fc.get(last, [])
        stats.append(member_statistics(traj, corrs[m], fc))
    f = findings(
        stats,
        seeds=seeds,
        rho_margin=scfg.rho_margin,
        te_margin=scfg.te_margin,
        drop_margin=scfg.drop_margin,
    )
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=fmt.jsonable))
    figs = _figures(ctx, trajs, corrs, fcs, stats, f, vocab, seeds, min_count)
    text, summary = _section(ctx, f, corrs, stream, n_rows, figs, seeds)
    write_section(ctx.workdir, 20, "sparsity", text, stage="sparsity", summary=summary)
    return f


def _figures(ctx, trajs, corrs, fcs, stats, f, vocab, seeds, min_count):
    rep = Path(ctx.workdir) / "report"
    last = f["epochs"][-1]
    who = f"seed {seeds[0]}" + (f" (member 0 of {len(seeds)})" if len(seeds) > 1 else "")
    figs = [
        plots.plot_te_vs_frequency(
            rep / "sparsity_te_vs_freq.png", trajs[0], vocab, last, who=who, min_count=min_count
        )
    ]
    mods = modules_of(trajs[0])
    te = {
        d: {
            m: [[float(_tw(trajs[k], e, m, d)) for e in f["epochs"]] for k in sorted(trajs)]
            for m in mods
        }
        for d in plots.DIRECTIONS
    }
    rho = {
        m: [[s["rho"][("input", m, "act")][e] for e in f["epochs"]] for s in stats] for m in mods
    }
    figs.append(
        plots.plot_over_epochs(
            rep / "sparsity_over_epochs.png", te, rho, f["epochs"], mods, n_seeds=len(seeds)
        )
    )
    if fcs[0]:
        labels = [f"{r['module']}\n{DIR_NAME[r['direction']]}" for r in fcs[0]]
        d = np.array([[r["diff"] for r in fcs[k]] for k in sorted(fcs)], np.float64)
        if len(seeds) > 1:
            mean, lo, hi = seed_band(d)
            what = f"{SEED_BAND} ({len(seeds)} seeds)"
        else:
            mean = d[0]
            lo = np.array([r["lo"] for r in fcs[0]])
            hi = np.array([r["hi"] for r in fcs[0]])
            what = "95% bootstrap interval over word types (1 seed)"
        figs.append(
            plots.plot_function_content(
                rep / "sparsity_function_content.png", labels, mean, lo, hi,
                epoch=last, interval=what,
            )
        )  # fmt: skip
    return figs


def _tw(traj, e, m, d):
    from jaxdyn.studies.sparsity.compute import token_weighted_mean

    return token_weighted_mean(traj, e, "input", m, d, "te")


def _section(ctx, f, corrs, stream, n_rows, figs, seeds):
    scfg, cfg = ctx.cfg.sparsity, ctx.cfg
    epochs, last, S = f["epochs"], f["epochs"][-1], len(seeds)
    scale = scale_text(S, cfg.epochs, ctx.task().train.num_tokens)
    keys = _key_numbers(f, lambda k: _rule(f, k))
    summary = [
        summary_row(name, f[k]["verdict"], num, seeds=S, scale=scale, rule=rule)
        for (name, num, rule), k in zip(keys, ("f1", "f2", "f3", "f4"))
        if f[k]["verdict"] != "skipped"
    ]
    base = (
        f"the same seed's untrained checkpoint (epoch {f['base_epoch']})"
        if f["base_epoch"] is not None
        else "0 (no epoch-0 checkpoint was analysed)"
    )
    seeds_txt = (
        f"{S} seeds ({', '.join(map(str, seeds))}), each analysed as its own model; verdicts "
        "across seeds with Student-t 95% intervals"
        if S > 1
        else f"one seed ({seeds[0]}): no interval across seeds is available, so every verdict "
        "is **single-seed** (the seed's effect beyond the margin decides)"
    )
    f3_text = _f3_text(f["f3"])
    rows_f = [
        ("1. frequent input words have concentrated activations", f["f1"], _f1_text(f["f1"])),
        ("2. frequent target words: dispersed activations, concentrated gradients", f["f2"],
         _f2_text(f["f2"])),
        ("3. function words' gradients more concentrated than content words' at equal frequency",
         f["f3"], f3_text),
        ("4. concentration emerges over training, some layers late", f["f4"],
         _f4_text(f["f4"], epochs)),
    ]  # fmt: skip
    ftable = "\n".join(
        f"| {name} | {verdict_text(x['verdict'], S)} | {txt} |" for name, x, txt in rows_f
    )
    rules = "\n".join(f"- finding {n}: {r}" for n, (_, _, r) in enumerate(keys, 1) if r)
    corr_rows = [
        (k, r["module"], DIR_NAME[r["direction"]], r["keying"], fmt.num(r["rho"], signed=True,
         missing=fmt.TOO_FEW), fmt.pvalue(r["p"]), r["types"])
        for k in sorted(corrs) for r in corrs[k] if r["epoch"] == last
    ]  # fmt: skip
    rho_rows = _rho_rows(corrs, epochs)
    text = f"""## Sparsity (taxi-Euclidean ratio L1/L2, lower = more concentrated)

Held-out tokens: {stream.num_tokens:,} ({scfg.split} stream); statistics per word type,
keyed by the input word and by the target word, for {len(epochs)} checkpoints (epochs
{fmt.ranges(epochs)}) of {seeds_txt}. Each finding is decided per layer against
{base}, with effect-size margins (rho {scfg.rho_margin}, TE difference {scfg.te_margin},
TE drop {scfg.drop_margin:.0%}); layers that disagree are shown as "mixed". Types seen fewer
than {scfg.min_count} times are left out of correlations. Verdicts concern word representations
(embedding and LSTM layers); the decoder's logits are in the tables and plots only. Tidy table:
`sparsity/per_type.csv.gz` ({n_rows:,} rows, one `member`/`seed` column); findings:
`sparsity/findings.json`.

| finding (thesis) | verdict | per layer: trained mean [95% interval], untrained, effect [interval] (epoch {last}) |
|---|---|---|
{ftable}

Rules:
{rules}

{chr(10).join(f"![sparsity]({p.name})" for p in figs)}

<details><summary>Spearman rho (input-keyed activation TE vs log frequency) by epoch, mean over seeds</summary>

{table(["module", *[f"epoch {e}" for e in epochs]], rho_rows)}
</details>

<details><summary>Spearman correlations at epoch {last}, per member</summary>

{table(["member", "module", "direction", "keyed by", "rho", "p", "types"], corr_rows)}
</details>
"""
    return text, summary


def _rho_rows(corrs, epochs):
    mods = list(dict.fromkeys(r["module"] for r in corrs[0]))
    out = []
    for m in mods:
        cells = []
        for e in epochs:
            vals = [
                r["rho"]
                for k in sorted(corrs)
                for r in corrs[k]
                if r["epoch"] == e and r["keying"] == "input" and r["module"] == m
                and r["direction"] == "act"
            ]  # fmt: skip
            vals = [v for v in vals if np.isfinite(v)]
            cells.append(fmt.num(np.mean(vals), signed=True) if vals else fmt.TOO_FEW)
        out.append((m, *cells))
    return out
