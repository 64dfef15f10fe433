"""The sparsity study's verdict rules, decided across the run's seeds.

Per population member (seed), the statistics come from that member's per-type
trajectory (``compute.per_type_trajectory(member=m)``): Spearman correlations of
per-type TE with log training frequency, function-minus-content TE at matched
frequency, and the token-weighted mean TE per epoch. Each finding is then decided
per layer with :mod:`jaxdyn.studies.verdicts` (trained statistic against the same
seed's untrained checkpoint, epoch 0, beyond a stated margin, Student-t interval
across seeds), and the layers' verdicts are combined without voting
(:func:`jaxdyn.report.summary.combine`: "mixed (lstm_0 yes, lstm_1 no)").

1. frequent input words have concentrated activations: rho(TE of activation,
   input-keyed, log freq) < 0, below the untrained rho by ``rho_margin``; judged at the
   last epoch and at every trained epoch (epochs where the verdict differs are listed);
2. frequent target words have dispersed activations (target-keyed rho > 0) and
   concentrated gradients (rho < 0): both halves per layer; judged at the last epoch
   and at every trained epoch, as finding 1;
3. function words' gradients are more concentrated than content words' at matched
   frequency: difference < untrained difference - ``te_margin``; judged at the last
   epoch and at every trained epoch, as finding 1;
4. concentration emerges over training: mean activation TE at the last epoch over
   epoch 0 below ``1 - drop_margin``; the epoch by which half of the drop happened.

Pure functions of per-member tables; unit-tested on constructed numbers.
"""

from __future__ import annotations

import numpy as np

from jaxdyn.report.summary import combine
from jaxdyn.studies.sparsity.compute import DIRECTIONS, modules_of, series, token_weighted_mean
from jaxdyn.studies.stats import matched_difference, spearman
from jaxdyn.studies.verdicts import decide, decide_correlation


def frequency_correlations(traj, vocab, *, stat="te", min_count=3) -> list[dict]:
    """Spearman rho of per-type ``stat`` against log training frequency, every cell."""
    logf = np.log(np.maximum(np.asarray(vocab.counts, np.float64), 1.0))
    rows = []
    for epoch in sorted(traj):
        for kg in ("input", "target"):
            for module in modules_of(traj):
                for d in DIRECTIONS:
                    ids, mean, _ = series(traj, epoch, kg, module, d, stat, min_count)
                    rho, p = spearman(logf[ids], mean)
                    rows.append(
                        {
                            "epoch": epoch,
                            "keying": kg,
                            "module": module,
                            "direction": d,
                            "rho": rho,
                            "p": p,
                            "types": len(ids),
                        }
                    )
    return rows


def function_content(
    traj, vocab, classes, epoch, *, stat="te", min_count=3, directions=DIRECTIONS, n_boot=1000
) -> list[dict]:
    """Function minus content words at matched frequency, per module and direction (input
    keying); ``n_boot=0`` skips the bootstrap interval (``lo``/``hi`` NaN)."""
    logf = np.log(np.maximum(np.asarray(vocab.counts, np.float64), 1.0))
    rows = []
    for module in modules_of(traj):
        for d in directions:
            ids, mean, _ = series(traj, epoch, "input", module, d, stat, min_count)
            group = np.array(
                [{"function": 1, "content": 0}.get(classes.get(vocab.itos[i], ""), -1) for i in ids]
            )
            r = matched_difference(mean, logf[ids], group, n_boot=n_boot)
            rows.append({"epoch": epoch, "module": module, "direction": d, **r})
    return rows


def half_drop_epoch(epochs, values) -> int | None:
    """First epoch by which ``values`` fell by half its total drop (None: no drop)."""
    drop = values[0] - values[-1]
    if not drop > 0:
        return None
    return next(e for e, v in zip(epochs, values) if values[0] - v >= 0.5 * drop)


def member_statistics(traj, corr, fc_by_epoch, *, stat="te") -> dict:
    """The per-seed numbers the findings read, from one member's tables.

    Args:
      traj: the member's per-type trajectory ``{epoch: ...}``.
      corr: its :func:`frequency_correlations` rows.
      fc_by_epoch: ``{epoch: rows}`` of :func:`function_content` (empty without gold POS).

    Returns:
      ``{"epochs", "rho": {(keying, module, direction): {epoch: rho}}, "fc": {module:
      {epoch: gradient TE diff}}, "te": {module: [mean act TE per epoch]}}``.
    """
    epochs = sorted(traj)
    rho = {}
    for r in corr:
        rho.setdefault((r["keying"], r["module"], r["direction"]), {})[r["epoch"]] = r["rho"]
    fc: dict[str, dict[int, float]] = {}
    for e, rows in sorted(fc_by_epoch.items()):
        for r in rows:
            if r["direction"] == "act_grad":
                fc.setdefault(r["module"], {})[e] = r["diff"]
    te = {
        m: [token_weighted_mean(traj, e, "input", m, "act", stat) for e in epochs]
        for m in modules_of(traj)
    }
    return {"epochs": epochs, "rho": rho, "fc": fc, "te": te}


def _rho_verdict(members, cell, epoch, base_epoch, direction, margin, seeds):
    tr = [m["rho"][cell].get(epoch, np.nan) for m in members]
    un = [
        m["rho"][cell].get(base_epoch, np.nan) if base_epoch is not None else 0.0 for m in members
    ]
    return decide_correlation(tr, un, margin=margin, direction=direction, min_seeds=1, seeds=seeds)


def both_halves(a, b) -> str:
    """Finding 2's label from its two halves: reproduced only when both are."""
    if a.verdict is True and b.verdict is True:
        return "reproduced"
    if a.verdict is False or b.verdict is False:
        return "contradicted"
    return "inconclusive"


def findings(members, *, seeds, rho_margin=0.05, te_margin=0.05, drop_margin=0.02) -> dict:
    """Decide the chapter's four findings across seeds.

    Args:
      members: one :func:`member_statistics` dict per seed (same epochs and modules).
      seeds: ``(S,)`` seed labels, aligned with ``members``.
      rho_margin, te_margin, drop_margin: the effect-size margins (``sparsity.*``).

    Returns:
      ``{"epochs", "base_epoch", "layers", "f1".."f4"}``; each finding has ``verdict``
      (a label or ``mixed (...)``) and ``per_layer``: ``{layer: Verdict}`` (``f2``: a pair
      per layer; ``f1``, ``f2`` and ``f3``: also ``by_epoch``: ``{layer: {epoch: label}}``,
      every epoch but the untrained one).
    """
    if not members:
        raise ValueError("findings: no members")
    epochs = members[0]["epochs"]
    for m in members[1:]:
        if m["epochs"] != epochs:
            raise ValueError(f"findings: members have different epochs: {m['epochs']} vs {epochs}")
    last = epochs[-1]
    base = 0 if 0 in epochs and last != 0 else None
    mods = [k[1] for k in members[0]["rho"] if k[0] == "input" and k[2] == "act"]
    # The findings concern word representations: the embedding and the LSTM layers
    # (a Transformer's residual streams; the decoder's logits and the blocks' attention
    # and MLP outputs are in the tables and plots, not in the verdicts).
    rep = [m for m in dict.fromkeys(mods) if m != "logits" and "." not in m]
    seeds = tuple(seeds)

    f1 = {
        m: _rho_verdict(members, ("input", m, "act"), last, base, -1, rho_margin, seeds)
        for m in rep
    }
    f1_epochs = {
        m: {
            e: _rho_verdict(members, ("input", m, "act"), e, base, -1, rho_margin, seeds).label
            for e in epochs
            if e != base
        }
        for m in rep
    }
    f2 = {
        m: (
            _rho_verdict(members, ("target", m, "act"), last, base, +1, rho_margin, seeds),
            _rho_verdict(members, ("target", m, "act_grad"), last, base, -1, rho_margin, seeds),
        )
        for m in rep
    }
    f2_epochs = {
        m: {
            e: both_halves(
                _rho_verdict(members, ("target", m, "act"), e, base, +1, rho_margin, seeds),
                _rho_verdict(members, ("target", m, "act_grad"), e, base, -1, rho_margin, seeds),
            )
            for e in epochs
            if e != base
        }
        for m in rep
    }
    have_fc = all(m["fc"] for m in members)

    def f3_at(m, e):
        return decide(
            [x["fc"].get(m, {}).get(e, np.nan) for x in members],
            [x["fc"].get(m, {}).get(base, np.nan) if base is not None else 0.0 for x in members],
            direction=-1,
            margin=te_margin,
            min_seeds=1,
            seeds=seeds,
            quantity="TE(function - content), trained - untrained",
        )

    f3 = {m: f3_at(m, last) for m in rep} if have_fc else {}
    f3_epochs = (
        {m: {e: f3_at(m, e).label for e in epochs if e != base} for m in rep} if have_fc else {}
    )
    f4, half = {}, {}
    for m in rep:
        curves = [np.asarray(x["te"][m], np.float64) for x in members]
        half[m] = [half_drop_epoch(epochs, c) for c in curves]
        if base is None:
            continue
        f4[m] = decide(
            [c[-1] / c[0] for c in curves],
            1.0,
            direction=-1,
            margin=drop_margin,
            min_seeds=1,
            seeds=seeds,
            quantity="mean TE at the last epoch / at epoch 0 - 1",
        )
    return {
        "epochs": epochs,
        "base_epoch": base,
        "seeds": list(seeds),
        "layers": rep,
        "f1": {"verdict": combine(f1), "per_layer": f1, "by_epoch": f1_epochs},
        "f2": {
            "verdict": combine({m: both_halves(*v) for m, v in f2.items()}),
            "per_layer": f2,
            "by_epoch": f2_epochs,
        },
        "f3": {
            "verdict": combine(f3) if f3 else "skipped",
            "per_layer": f3,
            "by_epoch": f3_epochs,
        },
        "f4": {
            "verdict": combine(f4) if f4 else "inconclusive",
            "per_layer": f4,
            "half_drop_epoch": half,
            "te": {m: np.mean([x["te"][m] for x in members], axis=0).tolist() for m in rep},
        },
    }
