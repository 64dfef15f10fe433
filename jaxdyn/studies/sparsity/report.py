"""Findings, plots and the report section of the sparsity study."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from jaxdyn.report import save, table, verdict, write_section
from jaxdyn.studies.sparsity.compute import (
    DIRECTIONS,
    modules_of,
    per_type_trajectory,
    series,
    token_weighted_mean,
    write_table,
)
from jaxdyn.studies.sparsity.findings import findings, frequency_correlations, function_content
from jaxdyn.studies.stats import word_classes

DIR_NAME = {"act": "activation", "act_grad": "gradient"}


def plot_te_vs_frequency(path, traj, vocab, epoch, *, stat="te", min_count=3):
    logf = np.log(np.maximum(np.asarray(vocab.counts, np.float64), 1.0))
    mods = modules_of(traj)
    fig, axes = plt.subplots(2, len(mods), figsize=(3.2 * len(mods), 6), squeeze=False)
    for j, m in enumerate(mods):
        for i, d in enumerate(DIRECTIONS):
            ax = axes[i, j]
            for kg, color in (("input", "C0"), ("target", "C3")):
                ids, mean, _ = series(traj, epoch, kg, m, d, stat, min_count)
                if len(ids) < 2:
                    continue
                x = logf[ids]
                edges = np.quantile(x, np.linspace(0, 1, 11))
                k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, 9)
                xs = [x[k == b].mean() for b in range(10) if (k == b).any()]
                ys = [mean[k == b].mean() for b in range(10) if (k == b).any()]
                ax.scatter(x, mean, s=2, alpha=0.15, color=color)
                ax.plot(xs, ys, color=color, marker="o", ms=3, label=f"{kg} word")
            ax.set_title(f"{m} {DIR_NAME[d]}", fontsize=9)
            ax.set_xlabel("log train frequency", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{stat.upper()} (L1/L2)", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(
        f"Concentration vs frequency, epoch {epoch} (lower = more concentrated)", fontsize=10
    )
    return save(fig, path)


def plot_over_epochs(path, traj, corr, *, stat="te"):
    mods, epochs = modules_of(traj), sorted(traj)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for d, ax in zip(DIRECTIONS, axes[:2]):
        for m in mods:
            te = [token_weighted_mean(traj, e, "input", m, d, stat) for e in epochs]
            ax.plot(epochs, np.array(te) / te[0], marker="o", ms=3, label=m)
        ax.set_title(f"mean {stat.upper()} of {DIR_NAME[d]}s (relative to epoch 0)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax = axes[2]
    for m in mods:
        rho = [
            r["rho"]
            for r in corr
            if r["module"] == m and r["keying"] == "input" and r["direction"] == "act"
        ]
        ax.plot(sorted(traj), rho, marker="o", ms=3, label=m)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title("Spearman(TE of activation, log freq), input-keyed", fontsize=9)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_function_content(path, fc):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels, diffs, errs = [], [], []
    for r in fc:
        labels.append(f"{r['module']}\n{DIR_NAME[r['direction']]}")
        diffs.append(r["diff"])
        errs.append(
            [r["diff"] - r["lo"], r["hi"] - r["diff"]] if np.isfinite(r["diff"]) else [0, 0]
        )
    ax.bar(
        range(len(diffs)),
        diffs,
        yerr=np.array(errs).T,
        capsize=3,
        color=["C0" if "grad" not in lb else "C3" for lb in labels],
    )
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("TE function - content\n(matched frequency)", fontsize=8)
    return save(fig, path)


def sparsity_stage(ctx) -> dict:
    """Run the sparsity study (``ctx.cfg.sparsity``) on a trained run; write its section."""
    scfg = ctx.cfg.sparsity
    min_count = scfg.min_count
    out = Path(ctx.workdir) / "sparsity"
    out.mkdir(parents=True, exist_ok=True)
    vocab, stream = ctx.task().vocab, getattr(ctx.task(), scfg.split)
    traj = per_type_trajectory(
        ctx.workdir,
        stream,
        max_chunks=scfg.max_chunks,
        checkpoints=scfg.checkpoints,
        progress=ctx.progress,
    )
    classes = {}
    if ctx.data_dir is not None:
        from jaxdyn.data.corpora import load_ewt

        ewt = load_ewt(ctx.data_dir, lowercase=True)["train"]
        classes = word_classes(zip(ewt.sentences, ewt.tags["xpos"], strict=True))
    n_rows = write_table(out / "per_type.csv.gz", traj, vocab, classes)
    corr = frequency_correlations(traj, vocab, min_count=min_count)
    last = max(traj)
    fc = function_content(traj, vocab, classes, last, min_count=min_count) if classes else []
    f = findings(traj, vocab, corr, fc)
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=float))
    rep = Path(ctx.workdir) / "report"
    p1 = plot_te_vs_frequency(
        rep / "sparsity_te_vs_freq.png", traj, vocab, last, min_count=min_count
    )
    p2 = plot_over_epochs(rep / "sparsity_over_epochs.png", traj, corr)
    figs = [p1, p2]
    if fc:
        figs.append(plot_function_content(rep / "sparsity_function_content.png", fc))
    corr_rows = [
        (r["module"], DIR_NAME[r["direction"]], r["keying"], r["rho"], r["p"], r["types"])
        for r in corr
        if r["epoch"] == last
    ]
    fmt = lambda d: ", ".join(f"{k} {v:+.3f}" for k, v in d.items())  # noqa: E731
    f3_text = (
        "; ".join(
            f"{m} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for m, (d, lo, hi) in f["f3_grad_function_minus_content"].items()
        )
        if fc
        else "skipped: needs gold POS (pass --data-dir with UD English-EWT)"
    )
    f4_text = "; ".join(
        f"{m}: {v[0]:.3f} -> {v[-1]:.3f} (half of the drop by epoch {f['f4_half_drop_epoch'][m]})"
        for m, v in f["f4_mean_act_te_by_epoch"].items()
    )
    text = f"""## Sparsity (taxi-Euclidean ratio L1/L2, lower = more concentrated)

Held-out tokens: {stream.num_tokens:,} ({scfg.split} stream); statistics per word type,
keyed by the input word and by the target word, for {len(traj)} checkpoints (epochs
{", ".join(str(e) for e in sorted(traj))}). Types seen fewer than {min_count} times are left out of
correlations. Verdicts concern word representations (embedding and LSTM layers); the
decoder's logits are in the tables and plots only. Tidy table: `sparsity/per_type.csv.gz` ({n_rows:,} rows); findings: `sparsity/findings.json`.

| finding (thesis) | this run | numbers (epoch {last}) |
|---|---|---|
| 1. frequent input words have concentrated activations | {verdict(f["f1"])} | Spearman(TE, log freq): {fmt(f["f1_input_act_rho"])} |
| 2. frequent target words: dispersed activations, concentrated gradients | {verdict(f["f2"])} | activations {fmt(f["f2_target_act_rho"])}; gradients {fmt(f["f2_target_grad_rho"])} |
| 3. function words' gradients more concentrated than content words' at equal frequency | {verdict(f["f3"])} | TE difference [95% bootstrap CI]: {f3_text} |
| 4. concentration emerges over training, some layers late | {verdict(f["f4"])} | mean activation TE, epoch 0 -> {last}: {f4_text} |

{chr(10).join(f"![sparsity]({p.name})" for p in figs)}

<details><summary>Spearman correlations at epoch {last}</summary>

{table(["module", "direction", "keyed by", "rho", "p", "types"], corr_rows)}
</details>
"""
    write_section(ctx.workdir, 20, "sparsity", text)
    return f
