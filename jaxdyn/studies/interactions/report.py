"""Findings, table, plots and report section of the syntax-interdependence study."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report import save, table, verdict, write_section
from jaxdyn.studies.interactions.findings import (
    SPACES,
    binned_means,
    correlations,
    finding,
    relation_means,
)

ORDER, NAME = 40, "interactions"
COLUMNS = (
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


def plot_heatmap(path, cols, space, epoch, syn_cap):
    seq, bins, mean, cnt = binned_means(cols, space, epoch, syn_cap)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(bins), 1.2 + 0.6 * len(seq)))
    im = ax.imshow(mean, cmap="viridis", aspect="auto")
    for a in range(len(seq)):
        for b in range(len(bins)):
            if cnt[a, b]:
                ax.text(
                    b,
                    a,
                    f"{mean[a, b]:.2f}\n({cnt[a, b]})",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="w",
                )
    ax.set_xticks(range(len(bins)), [f"{k}" if k < syn_cap else f"{k}+" for k in bins])
    ax.set_yticks(range(len(seq)), [str(d) for d in seq])
    ax.set_xlabel("syntactic (dependency path) distance")
    ax.set_ylabel("sequential distance")
    ax.set_title(f"mean {space} at epoch {epoch} (pairs in brackets)", fontsize=9)
    fig.colorbar(im, ax=ax)
    return save(fig, path)


def plot_rho(path, corr_by_space):
    fig, axes = plt.subplots(1, len(corr_by_space), figsize=(5.5 * len(corr_by_space), 3.8))
    for ax, (space, corr) in zip(np.atleast_1d(axes), corr_by_space.items()):
        for d in sorted({r["seq_dist"] for r in corr}):
            rs = [r for r in corr if r["seq_dist"] == d]
            ax.plot(
                [r["epoch"] for r in rs],
                [r["rho"] for r in rs],
                marker="o",
                ms=3,
                label=f"seq dist {d}",
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("epoch (0 = initialisation)")
        ax.set_ylabel("Spearman(DI, syntactic distance)")
        ax.set_title(space, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
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
    )


def write_outputs(workdir: Path, cols, config, lm_cfg, *, n_sentences: int, source: str) -> dict:
    """CSV, findings JSON, figures and the report section; returns the findings.

    Args:
      cols: the DI table; config: the study's section; lm_cfg: the language model's
        training config; n_sentences: sentences analysed; source: where they come from.
    """
    workdir = Path(workdir)
    out, rep = workdir / "interactions", workdir / "report"
    n_rows = write_csv(out / "di_pairs.csv.gz", cols)
    last = int(cols["epoch"].max())
    corr = {s: correlations(cols, s) for s in SPACES}
    fnd = {s: finding(corr[s], last) for s in SPACES}
    f = {
        "final_epoch": last,
        "sentences": n_sentences,
        "pairs": int((cols["epoch"] == last).sum()),
        "correlations": corr,
        "reproduced": {s: fnd[s][0] for s in SPACES},
        "significant_negative": {s: [fnd[s][1], fnd[s][2]] for s in SPACES},
    }
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=float))
    heat = plot_heatmap(
        rep / "interactions_di_heatmap.png", cols, "di_hidden", last, config.syn_cap
    )
    rho = plot_rho(rep / "interactions_rho_over_epochs.png", corr)
    at_last = {s: {r["seq_dist"]: r for r in corr[s] if r["epoch"] == last} for s in SPACES}
    rows = [
        (
            d,
            at_last["di_hidden"][d]["n"],
            at_last["di_hidden"][d]["rho"],
            at_last["di_hidden"][d]["p"],
            at_last["di_logits"][d]["rho"],
            at_last["di_logits"][d]["p"],
        )
        for d in sorted(at_last["di_hidden"])
    ]
    epochs = sorted({r["epoch"] for r in corr["di_hidden"]})
    traj_rows = [
        (
            e,
            *(
                next(r["rho"] for r in corr["di_hidden"] if r["epoch"] == e and r["seq_dist"] == d)
                for d in sorted(at_last["di_hidden"])
            ),
        )
        for e in epochs
    ]
    h = fnd["di_hidden"]
    text = f"""## Interdependence and syntax

Language model: {lm_cfg.model.num_layers} x {lm_cfg.model.hidden} LSTM trained on UD English-EWT train
(lowercased; vocabulary {lm_cfg.data.max_vocab or "all types"}), {lm_cfg.epochs} epochs, seed {lm_cfg.seed}; run folder
`interactions/lm`. DI (Saphra & Lopez 2020, Eq. 1) of every word pair at sequential distance
1-{config.max_seq_dist} in {n_sentences} parsed sentences of {source}
({config.min_words}-{config.max_words} words), measured at the **later word's** timestep
(the thesis script's default), each sentence read from a zero state after `<eos>`;
`di_hidden` = top-layer hidden state (primary), `di_logits` = decoder logits (no bias).
Syntactic distance = dependency path length. Table: `interactions/di_pairs.csv.gz`
({n_rows:,} rows = pairs x {len(epochs)} checkpoints); findings: `interactions/findings.json`.

| finding (thesis) | this run | numbers (epoch {last}) |
|---|---|---|
| DI is higher for pairs at lower syntactic distance, at equal sequential distance | {verdict(h[0])} | Spearman(DI, syntactic distance) < 0 with p < 0.05 in {h[1]} of {h[2]} sequential distances (hidden); logits: {fnd["di_logits"][1]} of {fnd["di_logits"][2]} |

{table(["seq dist", "pairs", "rho (hidden)", "p", "rho (logits)", "p"], rows)}

![DI heatmap]({heat.name})
![rho over training]({rho.name})

<details><summary>Spearman rho (hidden) by epoch and sequential distance</summary>

{table(["epoch", *[f"d={d}" for d in sorted(at_last["di_hidden"])]], traj_rows)}
</details>

<details><summary>Mean DI (hidden) by relation at epoch {last}</summary>

{table(["seq dist", "relation", "mean DI", "pairs"], relation_means(cols, "di_hidden", last))}
</details>
"""
    write_section(workdir, ORDER, NAME, text)
    return f


def interactions_stage(ctx) -> dict | None:
    """``jaxdyn run`` stage: the ``interactions`` section of ``ctx.cfg``."""
    from jaxdyn.studies.interactions.compute import run_interactions

    return run_interactions(
        ctx.workdir, ctx.data_dir, ctx.cfg.interactions, run=ctx.cfg, progress=ctx.progress
    )
