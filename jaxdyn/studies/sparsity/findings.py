"""The sparsity study's verdict rules: Spearman correlations with frequency,
function vs content words at matched frequency, and the four findings.

Pure functions of the per-type trajectory (``compute.per_type_trajectory``) and
the vocabulary; unit-tested on constructed numbers.
"""

from __future__ import annotations

import numpy as np

from jaxdyn.studies.sparsity.compute import DIRECTIONS, modules_of, series, token_weighted_mean
from jaxdyn.studies.stats import matched_difference, spearman


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


def function_content(traj, vocab, classes, epoch, *, stat="te", min_count=3) -> list[dict]:
    """Function minus content words at matched frequency, per module and direction (input keying)."""
    logf = np.log(np.maximum(np.asarray(vocab.counts, np.float64), 1.0))
    rows = []
    for module in modules_of(traj):
        for d in DIRECTIONS:
            ids, mean, _ = series(traj, epoch, "input", module, d, stat, min_count)
            group = np.array(
                [{"function": 1, "content": 0}.get(classes.get(vocab.itos[i], ""), -1) for i in ids]
            )
            r = matched_difference(mean, logf[ids], group)
            rows.append({"module": module, "direction": d, **r})
    return rows


def _majority(flags):
    flags = [f for f in flags if f is not None]
    return None if not flags else sum(flags) > len(flags) / 2


def findings(traj, vocab, corr, fc, *, stat="te") -> dict:
    """Evaluate the chapter's four findings; returns a JSON-able summary."""
    last = max(traj)
    mods = modules_of(traj)
    # The findings concern word representations: the embedding and the LSTM layers
    # (the decoder's logits are in the tables and plots, not in the verdicts).
    rep = [m for m in mods if m != "logits"]
    at_last = {(r["keying"], r["module"], r["direction"]): r for r in corr if r["epoch"] == last}

    def sig(r, sign):
        if not np.isfinite(r["rho"]):
            return None
        return bool(np.sign(r["rho"]) == sign and r["p"] < 0.05)

    f1 = {m: at_last[("input", m, "act")]["rho"] for m in rep}
    f1_ok = _majority([sig(at_last[("input", m, "act")], -1) for m in rep])
    f2a = {m: at_last[("target", m, "act")]["rho"] for m in rep}
    f2g = {m: at_last[("target", m, "act_grad")]["rho"] for m in rep}
    f2_ok = None
    a_ok = _majority([sig(at_last[("target", m, "act")], +1) for m in rep])
    g_ok = _majority([sig(at_last[("target", m, "act_grad")], -1) for m in rep])
    if a_ok is not None and g_ok is not None:
        f2_ok = a_ok and g_ok
    f3 = {
        r["module"]: (r["diff"], r["lo"], r["hi"])
        for r in fc
        if r["direction"] == "act_grad" and r["module"] in rep
    }
    f3_ok = None
    if fc and any(np.isfinite(v[0]) for v in f3.values()):
        f3_ok = _majority([bool(hi < 0) if np.isfinite(hi) else None for _, _, hi in f3.values()])
    epochs = sorted(traj)
    trend, emerge = {}, {}
    for m in rep:
        te = [token_weighted_mean(traj, e, "input", m, "act", stat) for e in epochs]
        trend[m] = te
        drop = te[0] - te[-1]
        emerge[m] = (
            next((e for e, v in zip(epochs, te) if te[0] - v >= 0.5 * drop), None)
            if drop > 0
            else None
        )
    f4_ok = _majority([trend[m][-1] < trend[m][0] for m in rep]) if len(epochs) > 1 else None
    return {
        "final_epoch": last,
        "f1_input_act_rho": f1,
        "f1": f1_ok,
        "f2_target_act_rho": f2a,
        "f2_target_grad_rho": f2g,
        "f2": f2_ok,
        "f3_grad_function_minus_content": f3,
        "f3": f3_ok,
        "f4_mean_act_te_by_epoch": trend,
        "f4_half_drop_epoch": emerge,
        "f4": f4_ok,
    }
