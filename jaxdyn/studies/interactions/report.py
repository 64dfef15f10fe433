"""Findings, table, plots and report section of the syntax-interdependence study."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.report import save, scale_text, table, verdict_text, write_section
from jaxdyn.report.plots import cell_format, epoch_axis, legend, seed_label, seed_series
from jaxdyn.report.summary import over_training
from jaxdyn.studies._common import model_text
from jaxdyn.studies.interactions.findings import (
    SPACES,
    binned_means,
    correlations,
    finding,
    relation_means,
)
from jaxdyn.studies.verdicts import describe

ORDER, NAME = 40, "interactions"
COLUMNS = (
    "member",
    "seed",
    "split",
    "sentence",
    "i",
    "j",
    "word_i",
    "word_j",
    "seq_dist",
    "syn_dist",
    "relation",
    "epoch",
    "di_hidden",
    "di_logits",
)


def write_csv(path: Path, cols: dict[str, np.ndarray]) -> int:
    """Tidy table (gzip CSV), one row per pair and checkpoint; returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(cols["epoch"])
    with gzip.open(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        fmt = {k: (lambda v: f"{v:.6g}") for k in SPACES}
        data = [cols[k].tolist() for k in COLUMNS]
        for r in range(n):
            w.writerow(
                [fmt[k](data[c][r]) if k in fmt else data[c][r] for c, k in enumerate(COLUMNS)]
            )
    return n


def plot_heatmap(path, cols, space, epoch, syn_cap, *, who: str):
    """Mean DI per (sequential, syntactic distance) cell at ``epoch``, labels with enough digits."""
    seq, bins, mean, cnt = binned_means(cols, space, epoch, syn_cap)
    fig, ax = plt.subplots(figsize=(1.4 + 0.8 * len(bins), 1.6 + 0.6 * len(seq)))
    im = ax.imshow(mean, cmap="viridis", aspect="auto")
    spec = cell_format(mean)
    for a in range(len(seq)):
        for b in range(len(bins)):
            if cnt[a, b]:
                ax.text(b, a, f"{mean[a, b]:{spec}}\n({cnt[a, b]})", ha="center", va="center",
                        fontsize=6, color="w")  # fmt: skip
    ax.set_xticks(range(len(bins)), [f"{k}" if k < syn_cap else f"{k}+" for k in bins])
    ax.set_yticks(range(len(seq)), [str(d) for d in seq])
    ax.set_xlabel("syntactic (dependency path) distance")
    ax.set_ylabel("sequential distance")
    ax.set_title(f"mean {space} at epoch {epoch}, {who} (pairs in brackets)", fontsize=9)
    fig.colorbar(im, ax=ax, label=f"mean {space}")
    return save(fig, path)


def plot_rho(path, corr_by_space, *, n_seeds: int):
    """rho(DI, syntactic distance) per epoch, one series per sequential distance (seed mean)."""
    fig, axes = plt.subplots(1, len(corr_by_space), figsize=(5.5 * len(corr_by_space), 3.8),
                             squeeze=False)  # fmt: skip
    for ax, (space, corr) in zip(axes[0], corr_by_space.items()):
        epochs = sorted({r["epoch"] for r in corr})
        for k, d in enumerate(sorted({r["seq_dist"] for r in corr})):
            per = np.array([[r["rho"] for r in corr if r["seq_dist"] == d and r["member"] == m
                             and r["epoch"] == e] for m in sorted({r["member"] for r in corr})
                            for e in epochs], np.float64).reshape(-1, len(epochs))  # fmt: skip
            seed_series(ax, epochs, per, i=k, label=f"sequential distance {d}", clip=(-1, 1))
        ax.axhline(0, color="k", lw=0.5)
        epoch_axis(ax)
        ax.set_ylabel("Spearman(DI, syntactic distance)")
        ax.set_title(f"{space} over training", fontsize=9)
        ax.grid(alpha=0.3)
        legend(ax, fontsize=7)
    who = seed_label(n_seeds)
    fig.suptitle(f"DI vs syntactic distance over training ({who})", fontsize=10)
    return save(fig, path)


def write_skipped(workdir: Path, reason: str) -> None:
    """A section saying the study was skipped and why."""
    write_section(
        workdir,
        ORDER,
        NAME,
        "## Interdependence and syntax\n\n"
        f"Skipped: {reason}. This study needs the parsed UD English-EWT sentences "
        "(`--data-dir` pointing at a folder with `ud-english-ewt/`).\n",
        summary=[summary_row("all findings", "skipped", f"{reason} (needs --data-dir)", seeds=0)],
    )


def write_outputs(workdir: Path, cols, config, lm_cfg, *, n_sentences: int, source: str) -> dict:
    """CSV, findings JSON, figures and the report section; returns the findings.

    Args:
      cols: the DI table (every member); config: the study's section; lm_cfg: the
        language model's training config (``seed``/``seeds``: the members' seeds);
        n_sentences: sentences analysed; source: where they come from.
    """
    workdir = Path(workdir)
    out, rep = workdir / "interactions", workdir / "report"
    n_rows = write_csv(out / "di_pairs.csv.gz", cols)
    last = int(cols["epoch"].max())
    S = int(lm_cfg.seeds)
    seeds = [lm_cfg.seed + m for m in range(S)]
    corr = {s: correlations(cols, s) for s in SPACES}
    fnd = {s: finding(corr[s], seeds=seeds, margin=config.rho_margin) for s in SPACES}
    first_member = cols["member"] == 0 if "member" in cols else np.ones(len(cols["epoch"]), bool)
    f = {
        "final_epoch": last,
        "sentences": n_sentences,
        "pairs": int(((cols["epoch"] == last) & first_member).sum()),
        "seeds": seeds,
        "correlations": corr,
        "findings": fnd,
    }
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=fmt.jsonable))
    who = f"pooled over {S} seeds" if S > 1 else f"seed {seeds[0]}"
    heat = plot_heatmap(
        rep / "interactions_di_heatmap.png", cols, "di_hidden", last, config.syn_cap, who=who
    )
    rho = plot_rho(rep / "interactions_rho_over_epochs.png", corr, n_seeds=S)
    dists = sorted({r["seq_dist"] for r in corr["di_hidden"]})
    h, lg = fnd["di_hidden"], fnd["di_logits"]
    rows = []
    for d in dists:
        vh, vl = h["per_distance"][f"d={d}"], lg["per_distance"][f"d={d}"]
        n = next(r["n"] for r in corr["di_hidden"] if r["seq_dist"] == d and r["epoch"] == last)
        rows.append((d, n, vh.label, describe(vh), over_training(h["by_epoch"][f"d={d}"],
                     vh.label) or "same at every epoch", vl.label, describe(vl)))  # fmt: skip
    epochs = sorted({r["epoch"] for r in corr["di_hidden"]})
    members = sorted({r["member"] for r in corr["di_hidden"]})
    traj_rows = [
        (m, e, *(fmt.rho(next(r["rho"] for r in corr["di_hidden"] if r["member"] == m
                              and r["epoch"] == e and r["seq_dist"] == d)).removeprefix("rho ")
                 for d in dists))
        for m in members for e in epochs
    ]  # fmt: skip
    scale = scale_text(S, lm_cfg.epochs, lm_cfg.data.max_train_tokens)
    base = (
        "the same seed's untrained checkpoint (epoch 0)"
        if h["base_epoch"] is not None
        else "0 (epoch 0 was not scored)"
    )
    rule = next(iter(h["per_distance"].values())).rule if h["per_distance"] else ""

    def key(x):
        return ", ".join(
            f"{k} {fmt.mean_interval(v.mean, v.lo, v.hi, single='1 seed')} (untrained "
            f"{fmt.num(v.baseline, signed=True)})"
            for k, v in x["per_distance"].items()
        )

    name = "DI higher at lower syntactic distance (equal sequential distance)"
    summary = [
        summary_row(name + ", hidden", h["verdict"], "rho " + key(h), seeds=S, scale=scale,
                    rule=rule),
        summary_row(name + ", logits", lg["verdict"], "rho " + key(lg), seeds=S, scale=scale,
                    rule=rule),
    ]  # fmt: skip
    seeds_txt = (
        f"{S} seeds ({', '.join(map(str, seeds))}; one population), each scored as its own "
        "model; the verdict is decided across seeds with Student-t 95% intervals"
        if S > 1
        else f"seed {seeds[0]}: one seed, no interval across seeds is available, the verdict "
        "is **single-seed**"
    )
    hidden_text = (
        "top block's residual stream (CD-T rules, `jaxdyn/decompose/transformer/rules.py`)"
        if lm_cfg.model.kind == "transformer"
        else "top-layer hidden state"
    )
    text = f"""## Interdependence and syntax

Language model: {lm_cfg.model.num_layers} x {lm_cfg.model.hidden} {model_text(lm_cfg.model)} trained on UD English-EWT train
(lowercased; vocabulary {lm_cfg.data.max_vocab or "all types"}), {lm_cfg.epochs} epochs, {seeds_txt}; run folder
`interactions/lm`. DI (Saphra & Lopez 2020, Eq. 1) of every word pair at sequential distance
1-{config.max_seq_dist} in {n_sentences} parsed sentences of {source}
({config.min_words}-{config.max_words} words), measured at the **later word's** timestep
(the thesis script's default), each sentence read from a zero state after `<eos>`;
`di_hidden` = {hidden_text} (primary), `di_logits` = decoder logits (no bias).
Syntactic distance = dependency path length. Each sequential distance is decided against
{base} with margin {config.rho_margin} in rho (significance alone is not the rule: with many
pairs a tiny rho is significant even for an untrained model). Table:
`interactions/di_pairs.csv.gz` ({n_rows:,} rows = members x pairs x {len(epochs)} checkpoints,
`member`/`seed` columns); findings: `interactions/findings.json`.

| finding (thesis) | verdict (hidden) | verdict (logits) |
|---|---|---|
| DI is higher for pairs at lower syntactic distance, at equal sequential distance | {verdict_text(h["verdict"], S)} | {verdict_text(lg["verdict"], S)} |

Rule per sequential distance: {rule}.

Spearman(DI, syntactic distance) at epoch {last}: trained mean [95% interval across seeds],
untrained, effect [interval]:

{table(["seq dist", "pairs", "hidden", "hidden: numbers", "hidden over training", "logits", "logits: numbers"], rows)}

![DI heatmap]({heat.name})
![rho over training]({rho.name})

<details><summary>Spearman rho (hidden) by member, epoch and sequential distance</summary>

{table(["member", "epoch", *[f"d={d}" for d in dists]], traj_rows)}
</details>

<details><summary>Mean DI (hidden) by relation at epoch {last}, {who}</summary>

{table(["seq dist", "relation", "mean DI", "pairs"], relation_means(cols, "di_hidden", last))}
</details>
"""
    write_section(workdir, ORDER, NAME, text, stage="interactions", summary=summary)
    return f


def interactions_stage(ctx) -> dict | None:
    """``jaxdyn run`` stage: the ``interactions`` section of ``ctx.cfg``."""
    from jaxdyn.studies.interactions.compute import run_interactions

    return run_interactions(
        ctx.workdir, ctx.data_dir, ctx.cfg.interactions, run=ctx.cfg, progress=ctx.progress
    )
