"""The syntactic-attention stage: EWT heads vs the run's attention heads, table, plot, section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.report import save, scale_text, table, verdict_text, write_section
from jaxdyn.report.plots import epoch_axis, legend, seed_label, seed_series
from jaxdyn.studies.attention.compute import (
    DIRECTIONS,
    attention_trajectory,
    baseline_counts,
    parse_sentences,
    write_table,
)
from jaxdyn.studies.attention.findings import findings, uas_curves
from jaxdyn.studies.verdicts import t_interval
from jaxdyn.train.trajectory import run_model

ORDER = 25  # report position: after sparsity (20), before similarity (30)


def ewt_parsed(data_dir: Path, acfg, vocab, context: int):
    """The EWT split's sentences with their heads, encoded for the run (``Parsed``)."""
    from jaxdyn.data.corpora import load_ewt

    corpus = load_ewt(data_dir, lowercase=acfg.lowercase)[acfg.split]
    return parse_sentences(
        corpus.sentences, corpus.heads, vocab, context, num_sentences=acfg.num_sentences
    )


def attention_stage(ctx) -> dict | None:
    """Run the attention study (``ctx.cfg.attention``) on the run's model; write its section.

    An LSTM run gets a one-line section saying the study does not apply.

    Raises:
      ValueError: a Transformer run without the corpora folder (EWT heads are needed).
    """
    cfg, acfg = ctx.cfg, ctx.cfg.attention
    if cfg.model.kind != "transformer":
        text = (
            "## Syntactic attention structure\n\nNot applicable: the run's model is an "
            f"{cfg.model.kind.upper()}, which has no attention heads (run with "
            "`--set model.kind=transformer`).\n"
        )
        print("[attention] not applicable to the LSTM run; section says so", file=sys.stderr)
        write_section(ctx.workdir, ORDER, "attention", text, stage="attention")
        return None
    if ctx.data_dir is None:
        raise ValueError(
            "the attention stage reads UD English-EWT dependency heads: pass --data-dir "
            "(or set $JAXDYN_DATA_DIR)"
        )
    _, _, vocab, _ = run_model(ctx.workdir)
    parsed = ewt_parsed(Path(ctx.data_dir), acfg, vocab, cfg.data.bptt)
    return attention_report(ctx, parsed)


def attention_report(ctx, parsed) -> dict:
    """Trajectories of every member on ``parsed``, findings, table, figure and section."""
    cfg, acfg = ctx.cfg, ctx.cfg.attention
    out = Path(ctx.workdir) / "attention"
    out.mkdir(parents=True, exist_ok=True)
    seeds = [cfg.seed + m for m in range(cfg.seeds)]
    members = [None] if cfg.seeds == 1 else list(range(cfg.seeds))
    trajs = {
        (m or 0): attention_trajectory(
            ctx.workdir,
            parsed,
            checkpoints=acfg.checkpoints,
            member=m,
            batch=acfg.batch_sentences,
            progress=ctx.progress,
        )
        for m in members
    }
    arcs = parsed.arcs
    base = baseline_counts(parsed)
    base_uas = base["either"] / arcs
    n_rows = write_table(out / "uas.csv", trajs, seeds, arcs)
    f = findings(trajs, arcs, base_uas, seeds=seeds, min_effect=acfg.min_effect)
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=fmt.jsonable))
    fig = _figure(ctx, f, seeds)
    text, summary = _section(ctx, f, parsed, base, n_rows, fig, seeds)
    write_section(ctx.workdir, ORDER, "attention", text, stage="attention", summary=summary)
    return f


def _figure(ctx, f, seeds):
    return plot_uas(Path(ctx.workdir) / "report" / "attention_uas.png", f, len(seeds))


def plot_uas(path, f, n_seeds: int):
    """Best-head UAS per layer over training: the mean over the members with a 95%
    t-interval band (one member: its curve), and the previous-token baseline."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, l in enumerate(f["layers"]):
        label = f"layer {l}, best head" + (" of each seed" if n_seeds > 1 else "")
        seed_series(ax, f["epochs"], uas_curves(f, l), i=i, label=label, clip=(0, 1))
    ax.axhline(f["baseline_uas"], color="k", lw=0.8, ls="--", label="previous-token baseline")
    epoch_axis(ax)
    ax.set_ylabel("UAS of the attention argmax (either direction)")
    ax.set_title(
        f"Best attention head per layer vs EWT heads, epochs {f['epochs'][0]}-"
        f"{f['epochs'][-1]}\n({seed_label(n_seeds)})",
        fontsize=9,
    )
    legend(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def best_head_rows(f, seeds) -> tuple[list[str], list[list]]:
    """Header and rows of the best-head table: one row per checkpoint and member."""
    heads = [
        "epoch",
        "step",
        "seed",
        *(f"layer {l}: best head (UAS; dep->head, head->dep)" for l in f["layers"]),
    ]
    rows = []
    for i, e in enumerate(f["epochs"]):
        for m in sorted(f["best"]):
            cells = [e, f["best"][m][f["layers"][0]][i]["step"], seeds[m]]
            for l in f["layers"]:
                b = f["best"][m][l][i]
                cells.append(
                    f"h{b['head']} {b['uas']:.3f} ({b['dep_to_head']:.3f}; {b['head_to_dep']:.3f})"
                )
            rows.append(cells)
    return heads, rows


def mean_rows(f) -> tuple[list[str], list[list]]:
    """Header and rows of the best-head UAS per checkpoint: mean over the members [95%
    t-interval] per layer (members with different best heads are averaged as UAS)."""
    heads = ["epoch", *(f"layer {l}: best-head UAS, mean [95% t-interval]" for l in f["layers"])]
    curves = {l: uas_curves(f, l) for l in f["layers"]}
    rows = []
    for i, e in enumerate(f["epochs"]):
        cells = [e]
        for l in f["layers"]:
            iv = t_interval(curves[l][:, i])
            cells.append(fmt.mean_interval(iv.mean, iv.lo, iv.hi, signed=False))
        rows.append(cells)
    return heads, rows


def onset_rows(f, seeds) -> tuple[list[str], list[tuple]]:
    """Header and rows of the onset table: one row per layer and member."""
    heads = ["layer", "seed", "untrained", "max", "gain", "onset epoch", "half-rise epoch",
             "steepest rise epoch"]  # fmt: skip
    rows = []
    for l in f["layers"]:
        for m in sorted(f["onset"]):
            on = f["onset"][m][l]
            rows.append(
                (
                    f"layer {l}",
                    seeds[m],
                    f"{on['untrained']:.3f}",
                    f"{on['max']:.3f}",
                    f"{on['gain']:+.3f}",
                    fmt.epoch(on["onset"]),
                    fmt.epoch(on["half"]),
                    fmt.epoch(on["steepest"]),
                )
            )
    return heads, rows


def _v(v) -> str:
    effect = fmt.num(v.effect, signed=True)
    ci = fmt.interval(v.effect_lo, v.effect_hi) if v.effect_lo is not None else "n/a"
    return f"{v.label} (effect {effect}, 95% interval {ci}, {v.n} seed{'s' * (v.n != 1)})"


def _section(ctx, f, parsed, base, n_rows, fig, seeds):
    cfg, acfg = ctx.cfg, ctx.cfg.attention
    S = len(seeds)
    scale = scale_text(S, cfg.epochs, ctx.task().train.num_tokens)
    arcs = parsed.arcs
    per1 = {l: f["f1"]["per_layer"][f"layer {l}"] for l in f["layers"]}
    at_end = {  # trained mean over the members [95% interval] (the verdicts' numbers)
        l: fmt.mean_interval(v.mean, v.lo, v.hi, signed=False) for l, v in per1.items()
    }
    key1 = ", ".join(f"layer {l} {at_end[l]}" for l in f["layers"])
    untrained = ", ".join(fmt.num(per1[l].baseline) for l in f["layers"])
    # the rule is the same for every layer (per-layer numbers are in the section)
    rules = {k: next(iter(f[k]["per_layer"].values())).rule + " (per layer)" for k in ("f1", "f2")}
    summary = [
        summary_row(
            "attention: syntactic heads emerge (best-head UAS rises over training)",
            f["f1"]["verdict"],
            f"best-head UAS at the end {key1} (untrained {untrained})",
            seeds=S,
            scale=scale,
            rule=rules["f1"],
        ),
        summary_row(
            "attention: best heads beat the previous-token baseline",
            f["f2"]["verdict"],
            f"{key1} vs previous-token {f['baseline_uas']:.3f}",
            seeds=S,
            scale=scale,
            rule=rules["f2"],
        ),
    ]
    seeds_txt = (
        f"{S} seeds ({', '.join(map(str, seeds))}); verdicts across seeds with Student-t 95% "
        "intervals; the figure shows the mean over the seeds with a 95% t-interval band, the "
        "tables every seed"
        if S > 1
        else f"one seed ({seeds[0]}): no interval across seeds, every verdict is **single-seed**"
    )
    base_txt = ", ".join(f"{k} {base[k] / arcs:.3f}" for k in DIRECTIONS)
    means = (
        f"\nBest-head UAS per layer and checkpoint, mean over the {S} seeds:\n\n"
        f"{table(*mean_rows(f))}\n"
        if S > 1
        else ""
    )
    text = f"""## Syntactic attention structure

Chen et al. (2024): attention heads come to track dependency syntax during training. For
every checkpoint, layer and head of the run's Transformer ({cfg.model.num_layers} blocks,
{cfg.model.heads} heads, d_model {cfg.model.hidden}), the argmax of each word's attention
is compared with UD English-EWT `{acfg.split}` heads: {parsed.inputs.shape[0]:,} sentences
({parsed.skipped:,} longer than the context of {cfg.data.bptt} positions skipped),
{arcs:,} arcs (root arcs excluded), {100 * parsed.unk:.1f}% of the words unknown to the
run's vocabulary. Each sentence is fed as `<eos>` + words; the argmax runs over the words only. An arc counts as recovered when
the dependent attends most to its head or the head most to the dependent (UAS "either";
the two directions are also shown). A causal model can only recover an arc from its
later word. Positional baseline (every word attends to the previous position): {base_txt}.
{seeds_txt}. Margin: {acfg.min_effect} UAS.

| finding | verdict | per layer |
| --- | --- | --- |
| 1. syntactic heads emerge (best-head UAS, last vs untrained) | {verdict_text(f["f1"]["verdict"], S)} | {"; ".join(f"{k}: {_v(v)}" for k, v in f["f1"]["per_layer"].items())} |
| 2. best heads beat the previous-token baseline | {verdict_text(f["f2"]["verdict"], S)} | {"; ".join(f"{k}: {_v(v)}" for k, v in f["f2"]["per_layer"].items())} |

![best head per layer]({fig.name})
{means}
Best head per layer, checkpoint and seed:

{table(*best_head_rows(f, seeds))}

Onset of the rise (first checkpoint at least {acfg.min_effect} UAS above the untrained
best head), half of the total rise, and the checkpoint ending the steepest rise, per seed:

{table(*onset_rows(f, seeds))}

Tidy table: `{Path(ctx.workdir) / "attention" / "uas.csv"}` ({n_rows:,} rows: member, seed,
epoch, step, layer, head, direction, recovered arcs, arcs, UAS).
"""
    return text, summary
