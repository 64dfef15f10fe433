"""The ``phases`` stage: metric trajectories -> HMM -> tables, figures, report section.

Writes under ``workdir/phases/``: ``metrics.csv`` (one row per run, seed, step,
metric), ``bic.csv`` (state count, log-likelihood per restart, BIC),
``states.csv`` (Viterbi state per seed and step), ``transitions.csv`` (observed
transitions with the metrics that characterise them) and ``coincidence.csv``; and
the report section (order 60) with its figures.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import jax
import numpy as np

from jaxdyn.report import line_plot, table, write_section
from jaxdyn.studies.phases import plots
from jaxdyn.studies.phases.compute import read_rows, run_rows, write_rows
from jaxdyn.studies.phases.config import PhasesConfig
from jaxdyn.studies.phases.findings import coincidence, family_change, metric_matrix
from jaxdyn.studies.phases.hmm import (
    change_points,
    characterise,
    num_parameters,
    principal_components,
    select_states,
    standardise,
    state_means,
    transition_counts,
)


def _csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def fit_map(rows, cfg: PhasesConfig, out: Path) -> dict:
    """Standardise, project, select K by BIC, decode; write the tables. Returns the pieces."""
    mm = metric_matrix(rows, cfg.families())
    st = standardise(mm.values, mm.names)
    y, explained = principal_components(st.z, cfg.components)
    s, t, d = y.shape
    # no more free parameters than half the scalar observations (EM would fit noise)
    k_max = cfg.min_states
    while k_max < cfg.max_states and num_parameters(k_max + 1, d, cfg.covariance) <= s * t * d / 2:
        k_max += 1
    best, fits = select_states(
        y,
        range(cfg.min_states, max(cfg.min_states, k_max) + 1),
        key=jax.random.PRNGKey(cfg.seed),
        restarts=cfg.restarts,
        em_iters=cfg.em_iters,
        covariance=cfg.covariance,
    )
    _csv(
        out / "bic.csv",
        ["states", "loglik", "bic", "restart_logliks"],
        [
            (f.num_states, f.loglik, f.bic, " ".join(f"{v:.3f}" for v in f.restarts_loglik))
            for f in fits
        ],
    )
    _csv(
        out / "states.csv",
        ["seed", "step", "state"],
        [
            (sd, mm.steps[i], int(best.states[n, i]))
            for n, sd in enumerate(mm.seeds)
            for i in range(t)
        ],
    )
    chars = characterise(st.z, st.names, best.states, cfg.top_metrics)
    counts = transition_counts(best.states)
    _csv(
        out / "transitions.csv",
        ["from", "to", "count", "probability", "metrics (change in sd)"],
        [
            (
                i,
                j,
                counts[(i, j)],
                float(best.transition_matrix[i, j]),
                "; ".join(f"{m} {d:+.2f}" for m, d in ms),
            )
            for (i, j), ms in chars.items()
        ],
    )
    return {
        "mm": mm,
        "k_max": k_max,
        "st": st,
        "explained": explained,
        "best": best,
        "fits": fits,
        "chars": chars,
        "counts": counts,
    }


def phases_stage(ctx) -> None:
    """Run the study on the run's own checkpoints (``ctx.cfg.phases``) and write its section."""
    cfg: PhasesConfig = ctx.cfg.phases
    out = ctx.workdir / "phases"
    out.mkdir(parents=True, exist_ok=True)
    task = ctx.task()
    heldout = getattr(task, cfg.split)
    n = write_rows(out / "metrics.csv", run_rows(ctx.workdir, heldout, task.train, cfg))
    rows = read_rows(out / "metrics.csv")
    if ctx.progress:
        print(f"[phases] {n} metric rows -> {out / 'metrics.csv'}", file=sys.stderr)
    fit = fit_map(rows, cfg, out)
    mm, st, best = fit["mm"], fit["st"], fit["best"]
    rep = ctx.workdir / "report"
    # the change-point view over the held-out loss of every seed
    loss = np.array(
        [[_value(rows, sd, step, "loss", "valid") for step in mm.steps] for sd in mm.seeds]
    )
    f_loss = plots.phases_on_loss(rep / "phases_loss.png", mm.steps, loss, best.states, mm.seeds)
    f_graph = plots.transition_graph(
        rep / "phases_graph.png", best.transition_matrix, fit["counts"]
    )
    means = state_means(st.z, st.names, best.states)
    f_means = plots.state_means(rep / "phases_state_means.png", means, st.names)
    ks = [f.num_states for f in fit["fits"]]
    f_bic = line_plot(
        rep / "phases_bic.png",
        ks,
        {"BIC": [f.bic for f in fit["fits"]]},
        xlabel="states",
        ylabel="BIC",
        title="BIC by number of HMM states (lower is better)",
    )
    points = dict(zip(mm.seeds, change_points(best.states, mm.steps), strict=True))
    te = coincidence(points, family_change(rows, "te"), cfg.coincide_quantile)
    sim = coincidence(points, family_change(rows, "sim", "cka_prev"), cfg.coincide_quantile)
    _csv(
        out / "coincidence.csv",
        ["seed", "step", "from", "to", "te_change", "te_rank", "cka_change", "cka_rank"],
        [
            (
                a["seed"],
                a["step"],
                a["from"],
                a["to"],
                a["change"],
                a["rank"],
                b["change"],
                b["rank"],
            )
            for a, b in zip(te, sim, strict=True)
        ],
    )
    write_section(
        ctx.workdir,
        60,
        "phases",
        _text(ctx, cfg, fit, points, te, sim, (f_loss, f_graph, f_means, f_bic)),
    )


def _value(rows, seed, step, family, metric):
    for r in rows:
        if (
            r["seed"] == seed
            and r["step"] == step
            and r["family"] == family
            and r["metric"] == metric
        ):
            return r["value"]
    raise KeyError(f"no {family}/{metric} at step {step} (seed {seed})")


def _verdict(found: list[dict]) -> str:
    judged = [r for r in found if r["coincides"] is not None]
    if not judged:
        return "cannot be judged (no values at the transition checkpoints)"
    yes = sum(r["coincides"] for r in judged)
    return f"{yes} of {len(judged)} transitions coincide"


def _text(ctx, cfg, fit, points, te, sim, figs) -> str:
    mm, st, best = fit["mm"], fit["st"], fit["best"]
    n_points = sum(len(p) for p in points.values())
    bic_rows = [(f.num_states, f.loglik, f.bic) for f in fit["fits"]]
    trans_rows = [
        (
            f"{i} -> {j}",
            fit["counts"][(i, j)],
            float(best.transition_matrix[i, j]),
            ", ".join(f"`{m}` {d:+.2f}" for m, d in ms),
        )
        for (i, j), ms in fit["chars"].items()
    ]
    cp_rows = [
        (sd, ", ".join(f"{s} ({i}->{j})" for s, i, j in p) or "none") for sd, p in points.items()
    ]
    co_rows = [
        (a["seed"], a["step"], f"{a['from']} -> {a['to']}", _fmt(a["rank"]), _fmt(b["rank"]))
        for a, b in zip(te, sim, strict=True)
    ]
    proj = (
        f"projected on their first {st.z.shape[-1] if cfg.components == 0 else len(fit['explained'])} principal components "
        f"({100 * float(np.sum(fit['explained'])):.1f}% of the variance)"
        if cfg.components
        else "all of them"
    )
    n_obs = len(mm.seeds) * len(mm.steps)
    few = (
        f" **Only {n_obs} observations (seeds x checkpoints): treat this map as illustrative;**"
        " a denser schedule (`checkpoint.every`) or more seeds (`--seeds`) makes it reliable."
        if n_obs < 50
        else ""
    )
    return f"""## Training map: latent phases

{len(mm.seeds)} seed(s) x {len(mm.steps)} checkpoints (steps {mm.steps[0]}..{mm.steps[-1]}; every
saved kind, see `checkpoint.schedule`). Metrics per checkpoint: `{ctx.workdir / "phases" / "metrics.csv"}`
(weights, gradient norms, losses, token-mean TE per module, SVCCA/CKA to the previous checkpoint).
The HMM sees the families `{cfg.hmm_families}`: {len(st.names)} standardised metrics
({len(st.dropped)} constant ones dropped, {len(mm.missing)} not present at every checkpoint left out),
{proj}; Gaussian HMM with {cfg.covariance} covariances (dynamax EM, {cfg.restarts} k-means restarts,
{cfg.em_iters} iterations). BIC over {cfg.min_states}..{fit["k_max"]} states (at most half as many free parameters as
scalar observations; `phases.max_states` = {cfg.max_states}) picks **{best.num_states} state(s)**;
{n_points} transitions in the Viterbi paths.{few}

{table(["states", "log-likelihood", "BIC"], bic_rows)}

![phases over the loss curve]({figs[0].name})

Change points (step, from -> to) per seed:

{table(["seed", "change points"], cp_rows)}

![transition graph]({figs[1].name}) ![state means]({figs[2].name}) ![BIC]({figs[3].name})

Transitions and the metrics whose state means move most (z-score units):

{table(["transition", "count", "probability", "metrics"], trans_rows) if trans_rows else "No transitions: one phase over the whole trajectory."}

**Do the transitions coincide with the sparsity and similarity changes?** At each
transition checkpoint, the quantile of the TE change (mean |ΔTE| / sd over modules) and of
the representation change (mean 1 - CKA with the previous checkpoint over layers) among
all of that seed's checkpoints; a transition coincides when the quantile is at least
{cfg.coincide_quantile:g}. Sparsity: {_verdict(te)}. Similarity: {_verdict(sim)}.

{table(["seed", "step", "transition", "TE change quantile", "CKA change quantile"], co_rows) if co_rows else ""}
"""


def _fmt(v):
    return "n/a" if v is None else f"{v:.2f}"
