"""The syntactic-attention stage: EWT heads vs the run's attention heads, table, plot, section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaxdyn.report import format as fmt
from jaxdyn.report import line_plot, scale_text, table, verdict_text, write_section
from jaxdyn.report import row as summary_row
from jaxdyn.studies.attention.compute import (
    DIRECTIONS,
    attention_trajectory,
    baseline_counts,
    parse_sentences,
    write_table,
)
from jaxdyn.studies.attention.findings import findings
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
    best = f["best"][0]
    series = {f"layer {l}, best head": [b["uas"] for b in best[l]] for l in f["layers"]}
    series["previous-token baseline"] = [f["baseline_uas"]] * len(f["epochs"])
    who = f"seed {seeds[0]}" + (f" (member 0 of {len(seeds)})" if len(seeds) > 1 else "")
    return line_plot(
        Path(ctx.workdir) / "report" / "attention_uas.png",
        f["epochs"],
        series,
        xlabel="epoch (0 = initialisation)",
        ylabel="UAS of the attention argmax (either direction)",
        title=f"Best attention head per layer vs EWT heads over training, {who}",
    )


def _v(v) -> str:
    effect = fmt.num(v.effect, signed=True)
    ci = fmt.interval(v.effect_lo, v.effect_hi) if v.effect_lo is not None else "n/a"
    return f"{v.label} (effect {effect}, 95% interval {ci}, {v.n} seed{'s' * (v.n != 1)})"


def _section(ctx, f, parsed, base, n_rows, fig, seeds):
    cfg, acfg = ctx.cfg, ctx.cfg.attention
    S = len(seeds)
    scale = scale_text(S, cfg.epochs, ctx.task().train.num_tokens)
    arcs = parsed.arcs
    best0 = f["best"][0]
    last = {l: best0[l][-1] for l in f["layers"]}
    key1 = ", ".join(f"layer {l} {last[l]['uas']:.3f}" for l in f["layers"])
    # the rule is the same for every layer (per-layer numbers are in the section)
    rules = {k: next(iter(f[k]["per_layer"].values())).rule + " (per layer)" for k in ("f1", "f2")}
    summary = [
        summary_row(
            "attention: syntactic heads emerge (best-head UAS rises over training)",
            f["f1"]["verdict"],
            f"best-head UAS at the end {key1} (untrained "
            + ", ".join(f"{best0[l][0]['uas']:.3f}" for l in f["layers"])
            + ")",
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
    heads = [
        "epoch",
        "step",
        *(f"layer {l}: best head (UAS; dep->head, head->dep)" for l in f["layers"]),
    ]
    rows = []
    for i, e in enumerate(f["epochs"]):
        cells = [e, best0[f["layers"][0]][i]["step"]]
        for l in f["layers"]:
            b = best0[l][i]
            cells.append(
                f"h{b['head']} {b['uas']:.3f} ({b['dep_to_head']:.3f}; {b['head_to_dep']:.3f})"
            )
        rows.append(cells)
    on = f["onset"][0]
    onset_rows = [
        (
            f"layer {l}",
            f"{on[l]['untrained']:.3f}",
            f"{on[l]['max']:.3f}",
            f"{on[l]['gain']:+.3f}",
            fmt.epoch(on[l]["onset"]),
            fmt.epoch(on[l]["half"]),
            fmt.epoch(on[l]["steepest"]),
        )
        for l in f["layers"]
    ]
    seeds_txt = (
        f"{S} seeds ({', '.join(map(str, seeds))}); verdicts across seeds with Student-t 95% "
        "intervals; the table, onsets and figure show member 0"
        if S > 1
        else f"one seed ({seeds[0]}): no interval across seeds, every verdict is **single-seed**"
    )
    base_txt = ", ".join(f"{k} {base[k] / arcs:.3f}" for k in DIRECTIONS)
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

Best head per layer and checkpoint (member 0):

{table(heads, rows)}

Onset of the rise (first checkpoint at least {acfg.min_effect} UAS above the untrained
best head), half of the total rise, and the checkpoint ending the steepest rise:

{table(["layer", "untrained", "max", "gain", "onset epoch", "half-rise epoch", "steepest rise epoch"], onset_rows)}

Tidy table: `{Path(ctx.workdir) / "attention" / "uas.csv"}` ({n_rows:,} rows: member, seed,
epoch, step, layer, head, direction, recovered arcs, arcs, UAS).
"""
    return text, summary
