"""Tables, plots and report section of the synthetic bottom-up study (rules: ``findings``;
figures: ``plots``), over every seed of each condition."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np

from jaxdyn.report import format as fmt
from jaxdyn.report import row as summary_row
from jaxdyn.report import scale_text, table, verdict_text, write_section
from jaxdyn.studies._common import model_text
from jaxdyn.studies.bottom_up import plots
from jaxdyn.studies.bottom_up.config import EVAL_SETS, MEASURES
from jaxdyn.studies.bottom_up.findings import ACC_MARGIN, across_seeds, findings, summarise
from jaxdyn.studies.verdicts import describe
from jaxdyn.train.population import member_seeds

ORDER, NAME = 50, "bottom_up"


def write_tables(out: Path, per_member, summaries, seeds) -> int:
    """``closing.csv.gz`` (one row per seed, sequence, epoch and set) and ``summary.csv``
    (means per seed, condition, epoch and set); both with ``member`` and ``seed`` columns."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with gzip.open(out / "closing.csv.gz", "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "member",
                "seed",
                "condition",
                "rule_length",
                "familiar_repeats",
                "epoch",
                "eval_set",
                "example",
                *MEASURES,
            ]
        )
        for m, results in enumerate(per_member):
            for name, r in results.items():
                for epoch, sets in sorted(r["epochs"].items()):
                    for s in EVAL_SETS:
                        cols = [sets[s][k] for k in MEASURES]
                        for i in range(len(cols[0])):
                            w.writerow(
                                [
                                    m,
                                    seeds[m],
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
    rows = [{"member": m, "seed": seeds[m], **r} for m, sm in enumerate(summaries) for r in sm]
    with open(out / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return n


def mean_summary(summaries) -> list[dict]:
    """The per-seed summaries averaged over seeds (same rows, measures averaged)."""
    out = []
    for rows in zip(*summaries):
        r = dict(rows[0])
        r.update({k: float(np.mean([x[k] for x in rows])) for k in MEASURES})
        out.append(r)
    return out


def _per_seed(values, f=str) -> str:
    return ", ".join(f(v) for v in values)


def write_outputs(workdir: Path, per_member, config, lm_cfg) -> dict:
    """Tables, findings JSON, figures and the report section; returns the findings.

    Args:
      per_member: one ``{condition: {"rule_length", "familiar_repeats", "epochs"}}``
        per seed (member of each condition's population).
      config: the study's section; lm_cfg: a condition's training config (its
        ``seed``/``seeds`` name the models' seeds).

    Returns:
      ``{"seeds", "a", "a2", "b"`` (verdicts across seeds), ``"per_seed"`` (one
      :func:`findings` dict per seed)``}``.
    """
    workdir = Path(workdir)
    out, rep = workdir / "bottom_up", workdir / "report"
    seeds = member_seeds(lm_cfg.seed, len(per_member))
    summaries = [summarise(r) for r in per_member]
    n_rows = write_tables(out, per_member, summaries, seeds)
    per_seed = [findings(r, sm, config) for r, sm in zip(per_member, summaries)]
    names = {n: plots.condition_name(n, per_member[0]) for n in per_member[0]}  # as reported
    f = {**across_seeds(per_seed, seeds, config, names), "per_seed": per_seed}
    results, mean = per_member[0], mean_summary(summaries)
    S, last = len(seeds), max(max(r["epochs"]) for r in results.values())
    who = f"mean of {S} seeds" if S > 1 else f"seed {seeds[0]}"
    figs = [
        plots.plot_accuracy(
            rep / "bottom_up_accuracy.png", results, summaries, config, last_epoch=last
        ),
        plots.plot_measures(
            rep / "bottom_up_logp.png", results, summaries,
            ("full_logp", "cd_open", "cd_conduit", "cd_both"), "log p(')') at the closing position",
            f"Log-probability of ')' ({who})", last_epoch=last,
        ),
        plots.plot_measures(
            rep / "bottom_up_di.png", results, summaries, ("di_hidden",),
            "DI(open, conduit), hidden",
            f"Interdependence of open symbol and conduit ({who})", last_epoch=last,
        ),
    ]  # fmt: skip
    cond = lambda n: plots.condition_name(n, results)  # noqa: E731
    (out / "findings.json").write_text(json.dumps(f, indent=1, default=fmt.jsonable))
    a_txt = "; ".join(
        f"{cond(n)} {v.label}: {describe(v)}; half-rise epoch bank vs fresh set per seed: "
        + _per_seed(
            f"{fmt.epoch(x['a_detail'][n]['half_familiar'])} vs "
            f"{fmt.epoch(x['a_detail'][n]['half_fresh'])}"
            for x in per_seed
        )
        for n, v in f["a"]["per_condition"].items()
    )
    a2_txt = "; ".join(
        f"{cond(n)} {v.label}: {describe(v)}; conduit vs open per seed: "
        + _per_seed(
            f"{fmt.epoch(x['a2_detail'][n]['half_conduit'])} vs "
            f"{fmt.epoch(x['a2_detail'][n]['half_open'])}"
            for x in per_seed
        )
        for n, v in f["a2"]["per_condition"].items()
    )
    b_txt = "; ".join(
        f"{L} {v.label}: agreement per seed {_per_seed(v.effects, lambda e: f'{int(e):+d}')}; "
        + _per_seed(
            (
                f"DI {fmt.fixed(x['b_detail'][L]['di_familiar_cond'])} vs "
                f"{fmt.fixed(x['b_detail'][L]['di_unfamiliar_cond'])}, gap "
                f"{fmt.fixed(x['b_detail'][L]['gap_familiar_cond'], signed=True)} vs "
                f"{fmt.fixed(x['b_detail'][L]['gap_unfamiliar_cond'], signed=True)}"
                for x in per_seed
            ),
            lambda t: t,
        ).replace(", DI", "; DI")
        for L, v in f["b"]["per_rule_length"].items()
    )
    sp = "; ".join(
        fmt.rho(*x["b_spearman_di_gap"]) + f" (seed {sd})" for x, sd in zip(per_seed, seeds)
    )
    last_rows = [
        (cond(r["condition"]), plots.SET_NAME[r["eval_set"]], *(r[k] for k in MEASURES))
        for r in mean
        if r["epoch"] == max(results[r["condition"]]["epochs"])
    ]  # fmt: skip
    scale = scale_text(S, lm_cfg.epochs, config.num_tokens)
    rules = {k: next(iter(f[k][p].values())).rule for k, p in
             (("a", "per_condition"), ("a2", "per_condition"), ("b", "per_rule_length"))}  # fmt: skip
    names = {
        "a": "(a) long rules are learned bottom-up: bank conduits before fresh ones",
        "a2": "(a') the conduit's own CD contribution becomes predictive before the open symbol's",
        "b": "(b) high interdependence with familiar phrases hurts generalisation",
    }

    def key(k):
        per = f[k]["per_condition" if k != "b" else "per_rule_length"]
        return ", ".join(
            f"{cond(n) if k != 'b' else n}: "
            f"{fmt.mean_interval(v.effect, v.effect_lo, v.effect_hi, single='1 seed')}"
            for n, v in per.items()
        )

    summary = [
        summary_row(names[k], f[k]["verdict"], key(k), seeds=S, scale=scale, rule=rules[k])
        for k in ("a", "a2", "b")
    ]
    seeds_txt = (
        f"{S} seeds per condition ({_per_seed(seeds)}; one population each), verdicts across "
        "seeds with Student-t 95% intervals"
        if S > 1
        else f"one seed ({seeds[0]}) per condition: no interval across seeds is available, "
        "every verdict is **single-seed**"
    )
    text = f"""## Bottom-up learning on synthetic brackets

{len(results)} conditions (rule lengths {", ".join(map(str, config.rule_lengths))}; conduits
*bracket-only* = seen only inside brackets, *exposed* = also {config.familiar_repeats} times
outside each), vocabulary {config.vocab_size}, {config.num_tokens:,} training tokens with
{config.num_rules:,} rules over {config.bank_size} bank conduits; {lm_cfg.model.num_layers} x
{lm_cfg.model.hidden} {model_text(lm_cfg.model)}, {lm_cfg.epochs} epochs, data seed {config.seed}, {seeds_txt}.
Measured on {config.num_eval} evaluation sequences per set (*bank-conduit set* = conduits seen in
training, *fresh-conduit set* = unseen conduits) at the position whose next token is `)`:
full-model log p(`)`), CD log p(`)`) = log softmax of the relevant logits (decoder bias left out,
as the thesis script) with relevant = open symbol / conduit / both, DI(open, conduit) and
accuracy (p(`)`) > 1/2). Half-rise epoch = first epoch reaching half of the curve's maximum rise
over epoch 0 (rise < {config.learned_gain} = never); accuracy differences under {ACC_MARGIN}
count as none in (a). Tables: `bottom_up/closing.csv.gz` ({n_rows:,} rows), `bottom_up/summary.csv`
(both with `member`/`seed` columns); `bottom_up/findings.json`.

| finding (thesis) | verdict | per condition: effect (trained - untrained) mean [95% interval] across seeds, and per-seed numbers |
|---|---|---|
| {names["a"]} | {verdict_text(f["a"]["verdict"], S)} | {a_txt} |
| {names["a2"]} | {verdict_text(f["a2"]["verdict"], S)} | {a2_txt} |
| {names["b"]} | {verdict_text(f["b"]["verdict"], S)} | {b_txt}; Spearman(DI, gap) over conditions x epochs: {sp} |

Rules:
- (a): {rules["a"]}
- (a'): {rules["a2"]}
- (b): {rules["b"]}

Final epoch, {who}:

{table(["condition", "set", *MEASURES], last_rows)}

{chr(10).join(f"![bottom-up]({p.name})" for p in figs)}
"""
    write_section(workdir, ORDER, NAME, text, stage="bottom_up", summary=summary)
    return f


def bottom_up_stage(ctx) -> dict:
    """``jaxdyn run`` stage: the ``bottom_up`` section of ``ctx.cfg``."""
    from jaxdyn.studies.bottom_up.compute import run_bottom_up

    return run_bottom_up(ctx.workdir, ctx.cfg.bottom_up, run=ctx.cfg, progress=ctx.progress)
