"""Tables, plots and report section of the synthetic bottom-up study (rules: ``findings``)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import matplotlib.pyplot as plt

from jaxdyn.report import save, table, verdict, write_section
from jaxdyn.studies.bottom_up.config import EVAL_SETS, MEASURES
from jaxdyn.studies.bottom_up.findings import ACC_MARGIN, curve, findings, summarise

ORDER, NAME = 50, "bottom_up"


def write_tables(out: Path, results, summary) -> int:
    """``closing.csv.gz`` (one row per sequence, epoch and set) and ``summary.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.open(out / "closing.csv.gz", "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "condition",
                "rule_length",
                "familiar_repeats",
                "epoch",
                "eval_set",
                "example",
                *MEASURES,
            ]
        )
        for name, r in results.items():
            for epoch, sets in sorted(r["epochs"].items()):
                for s in EVAL_SETS:
                    cols = [sets[s][k] for k in MEASURES]
                    for i in range(len(cols[0])):
                        w.writerow(
                            [
                                name,
                                r["rule_length"],
                                r["familiar_repeats"],
                                epoch,
                                s,
                                i,
                                *(f"{c[i]:.6g}" for c in cols),
                            ]
                        )
                        n += 1
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    return n


def plot_accuracy(path, results, summary, config):
    fig, axes = plt.subplots(
        1, len(config.rule_lengths), figsize=(5 * len(config.rule_lengths), 3.6), squeeze=False
    )
    for ax, L in zip(axes[0], config.rule_lengths):
        for k, name in enumerate(n for n, r in results.items() if r["rule_length"] == L):
            for s, ls in zip(EVAL_SETS, ("-", "--")):
                ep, acc = curve(summary, name, s, "correct")
                ax.plot(ep, acc, ls, color=f"C{k}", marker="o", ms=3, label=f"{name}, {s} set")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy: p(')') > 1/2")
        ax.set_title(f"rule length {L}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)


def plot_measures(path, results, summary, keys, ylabel):
    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for k, key in enumerate(keys):
            for s, ls in zip(EVAL_SETS, ("-", "--")):
                ep, v = curve(summary, name, s, key)
                ax.plot(ep, v, ls, color=f"C{k}", marker="o", ms=3, label=f"{key} ({s})")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=6)
    return save(fig, path)


def write_outputs(workdir: Path, results, config, lm_cfg) -> dict:
    """Tables, findings JSON, figures and the report section; returns the findings.

    ``config`` is the study's section, ``lm_cfg`` a condition's training config.
    """
    workdir = Path(workdir)
    out, rep = workdir / "bottom_up", workdir / "report"
    summary = summarise(results)
    n_rows = write_tables(out, results, summary)
    f = findings(results, summary, config)
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=float))
    figs = [
        plot_accuracy(rep / "bottom_up_accuracy.png", results, summary, config),
        plot_measures(
            rep / "bottom_up_logp.png",
            results,
            summary,
            ("full_logp", "cd_open", "cd_conduit", "cd_both"),
            "log p(')')",
        ),
        plot_measures(
            rep / "bottom_up_di.png", results, summary, ("di_hidden",), "DI(open, conduit)"
        ),
    ]
    fmt_t = lambda t: "never" if t is None else str(t)  # noqa: E731
    a_txt = "; ".join(
        f"{n}: half-rise epoch {fmt_t(d['half_familiar'])} vs {fmt_t(d['half_fresh'])}, "
        f"mean acc {d['mean_acc_familiar']:.3f} vs {d['mean_acc_fresh']:.3f}"
        for n, d in f["a_detail"].items()
    )
    a2_txt = "; ".join(
        f"{n}: conduit {fmt_t(d['half_conduit'])}, open {fmt_t(d['half_open'])}"
        for n, d in f["a2_detail"].items()
    )
    b_txt = "; ".join(
        f"{k}: DI {d['di_familiar_cond']:.3f} vs {d['di_unfamiliar_cond']:.3f}, gap "
        f"{d['gap_familiar_cond']:+.3f} vs {d['gap_unfamiliar_cond']:+.3f}"
        for k, d in f["b_detail"].items()
    )
    rho, p, npts = f["b_spearman_di_gap"]
    last_rows = []
    for r in summary:
        if r["epoch"] == max(results[r["condition"]]["epochs"]):
            last_rows.append(
                (
                    r["condition"],
                    r["eval_set"],
                    r["correct"],
                    r["full_logp"],
                    r["cd_open"],
                    r["cd_conduit"],
                    r["cd_both"],
                    r["di_hidden"],
                    r["di_logits"],
                )
            )
    text = f"""## Bottom-up learning on synthetic brackets

{len(results)} conditions (rule lengths {", ".join(map(str, config.rule_lengths))}; conduits
unfamiliar = only inside brackets, familiar = also {config.familiar_repeats} times outside each),
vocabulary {config.vocab_size}, {config.num_tokens:,} training tokens with {config.num_rules:,} rules
over {config.bank_size} bank conduits; {lm_cfg.model.num_layers} x {lm_cfg.model.hidden} LSTM, {lm_cfg.epochs} epochs, data seed {config.seed}.
Measured on {config.num_eval} evaluation sequences per set (`familiar` = bank conduits, `fresh` =
unseen conduits) at the position whose next token is `)`: full-model log p(`)`), CD log p(`)`)
= log softmax of the relevant logits (decoder bias left out, as the thesis script) with relevant =
open symbol / conduit / both, DI(open, conduit) and accuracy (p(`)`) > 1/2). Half-rise epoch =
first epoch reaching half of the curve's maximum rise over epoch 0 (rise < {config.learned_gain} = never);
mean-accuracy differences under {ACC_MARGIN} count as ties in (a).
Tables: `bottom_up/closing.csv.gz` ({n_rows:,} rows), `bottom_up/summary.csv`; `bottom_up/findings.json`.

| finding (thesis) | this run | numbers |
|---|---|---|
| (a) long rules are learned bottom-up: familiar conduits before fresh ones | {verdict(f["a"])} | accuracy, familiar vs fresh set: {a_txt} |
| (a') the conduit's own CD contribution becomes predictive before the open symbol's | {verdict(f["a2"])} | half-rise epoch of CD log p, familiar set: {a2_txt} |
| (b) high interdependence with familiar phrases hurts generalisation | {verdict(f["b"])} | final epoch, familiar-conduit vs unfamiliar-conduit training: {b_txt}; Spearman(DI, gap) over conditions x epochs: rho {rho:+.3f} (p {p:.3g}, n {npts}) |

{table(["condition", "set", "accuracy", "log p", "CD open", "CD conduit", "CD both", "DI hidden", "DI logits"], last_rows)}

{chr(10).join(f"![bottom-up]({p.name})" for p in figs)}
"""
    write_section(workdir, ORDER, NAME, text)
    return f


def bottom_up_stage(ctx) -> dict:
    """``jaxdyn run`` stage: the ``bottom_up`` section of ``ctx.cfg``."""
    from jaxdyn.studies.bottom_up.compute import run_bottom_up

    return run_bottom_up(ctx.workdir, ctx.cfg.bottom_up, run=ctx.cfg, progress=ctx.progress)
