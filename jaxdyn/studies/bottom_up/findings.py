"""The synthetic bottom-up study's verdict rules (unit-tested on constructed numbers).

Testable versions of the thesis's findings. :func:`findings` gives one seed's
per-condition numbers and its own per-condition rule (``ok``, shown per seed);
:func:`across_seeds` decides each condition across seeds with
:mod:`jaxdyn.studies.verdicts` and combines the conditions without voting
("mixed (L3 yes, L8 no)"):

* **(a) familiar conduits are learned before fresh ones**: accuracy on the
  ``familiar`` set rises by at least ``learned_gain`` over training, reaches half
  of its rise no later than the ``fresh`` set does (never, if the fresh set does
  not rise by ``learned_gain``), and is higher on average over epochs 1..E by at
  least ``ACC_MARGIN`` (smaller differences are ties: inconclusive).
* **(a') the shorter constituent before the long relation**: on the ``familiar``
  set, the CD log-probability of ``")"`` from the conduit alone reaches half of its
  rise no later than the one from the open symbol alone (the open symbol's
  independent long-range contribution).
* **(b) interdependence with familiar phrases hurts generalisation**: for each
  rule length, the condition (familiar / unfamiliar conduits) with the higher
  final-epoch DI(open, conduit) on the ``familiar`` set also has the larger
  final-epoch accuracy gap ``familiar - fresh``.
"""

from __future__ import annotations

import numpy as np

from jaxdyn.studies.bottom_up.config import EVAL_SETS, MEASURES
from jaxdyn.studies.stats import spearman


def summarise(results) -> list[dict]:
    """Mean of every measure per condition, epoch and evaluation set."""
    rows = []
    for name, r in results.items():
        for epoch, sets in sorted(r["epochs"].items()):
            for s in EVAL_SETS:
                row = {
                    "condition": name,
                    "rule_length": r["rule_length"],
                    "familiar_repeats": r["familiar_repeats"],
                    "epoch": epoch,
                    "eval_set": s,
                }
                row.update({k: float(np.mean(sets[s][k])) for k in MEASURES})
                rows.append(row)
    return rows


def curve(summary, name, s, key) -> tuple[np.ndarray, np.ndarray]:
    rs = sorted(
        (r for r in summary if r["condition"] == name and r["eval_set"] == s),
        key=lambda r: r["epoch"],
    )
    return np.array([r["epoch"] for r in rs]), np.array([r[key] for r in rs])


#: Smallest mean-accuracy difference (familiar minus fresh set) counted as a difference
#: in finding (a); smaller ones are ties (with 200 evaluation sequences one sequence is 0.005).
ACC_MARGIN = 0.02


def half_rise_epoch(epochs, values, min_gain) -> int | None:
    """First epoch at which ``values`` has risen by half its maximum rise over epoch 0
    (None when the maximum rise is below ``min_gain`` or a value is not finite)."""
    values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(values)):
        return None
    gain = float(np.max(values) - values[0])
    if gain < min_gain:
        return None
    return int(epochs[np.argmax(values - values[0] >= 0.5 * gain)])


def findings(results, summary, config) -> dict:
    """Evaluate (a), (a') and (b); returns a JSON-able summary."""
    g = config.learned_gain
    a, a2 = {}, {}
    for name in results:
        ep, fam = curve(summary, name, "familiar", "correct")
        _, fre = curve(summary, name, "fresh", "correct")
        tf, tr = half_rise_epoch(ep, fam, g), half_rise_epoch(ep, fre, g)
        ok, diff = None, float(fam[1:].mean() - fre[1:].mean())
        if tf is not None and np.isfinite(diff):  # differences under ACC_MARGIN are ties
            if (tr is not None and tf > tr) or diff <= -ACC_MARGIN:
                ok = False
            elif diff >= ACC_MARGIN:
                ok = True
        a[name] = {
            "ok": ok,
            "half_familiar": tf,
            "half_fresh": tr,
            "mean_acc_familiar": float(fam[1:].mean()),
            "mean_acc_fresh": float(fre[1:].mean()),
            "mean_acc_diff": diff,
            "acc_diff_epoch0": float(fam[0] - fre[0]),
        }
        _, op = curve(summary, name, "familiar", "cd_open")
        _, co = curve(summary, name, "familiar", "cd_conduit")
        to, tc = half_rise_epoch(ep, op, g), half_rise_epoch(ep, co, g)
        finite = np.all(np.isfinite(op)) and np.all(np.isfinite(co))
        ok2 = None if tc is None or not finite else bool(to is None or tc <= to)
        a2[name] = {"ok": ok2, "half_conduit": tc, "half_open": to}
    b, pts = {}, []
    for L in config.rule_lengths:
        cells = {}
        for name, r in results.items():
            if r["rule_length"] != L:
                continue
            last = max(r["epochs"])
            di = float(curve(summary, name, "familiar", "di_hidden")[1][-1])
            gap = float(
                curve(summary, name, "familiar", "correct")[1][-1]
                - curve(summary, name, "fresh", "correct")[1][-1]
            )
            cells["familiar" if r["familiar_repeats"] else "unfamiliar"] = (di, gap, last)
        if len(cells) == 2:
            (d1, g1, _), (d0, g0, _) = cells["familiar"], cells["unfamiliar"]
            tie = d1 == d0 or g1 == g0 or not np.all(np.isfinite([d1, d0, g1, g0]))
            ok = None if tie else bool(np.sign(d1 - d0) == np.sign(g1 - g0))
            b[f"L{L}"] = {
                "ok": ok,
                "di_familiar_cond": d1,
                "gap_familiar_cond": g1,
                "di_unfamiliar_cond": d0,
                "gap_unfamiliar_cond": g0,
            }
    for name in results:
        ep, di = curve(summary, name, "familiar", "di_hidden")
        _, fam = curve(summary, name, "familiar", "correct")
        _, fre = curve(summary, name, "fresh", "correct")
        pts += [(d, f - r) for e, d, f, r in zip(ep, di, fam, fre) if e > 0]
    rho, p = (
        spearman([x for x, _ in pts], [y for _, y in pts]) if len(pts) > 3 else (np.nan, np.nan)
    )
    return {
        "epochs": [int(e) for e in ep],
        "a_detail": a,
        "a2_detail": a2,
        "b_detail": b,
        "b_spearman_di_gap": [rho, p, len(pts)],
    }


def _never(t, epochs) -> int:
    """A half-rise epoch, with "never" counted as one epoch after the last."""
    return int(epochs[-1]) + 1 if t is None else int(t)


def across_seeds(per_seed: list[dict], seeds, config, names=None) -> dict:
    """Decide (a), (a') and (b) per condition (rule length) across seeds, then combine.

    ``names``: ``{condition: name}`` the combined verdicts of (a) and (a') use for the
    conditions (the report's, e.g. "L8, bracket-only conduits"); default the raw names.

    Per seed ``i`` (one :func:`findings` dict each, same conditions and epochs):

    * (a), per condition: ``mean acc(bank set) - mean acc(fresh set)`` over epochs
      1..E, against the same difference at epoch 0 (untrained), predicted > 0 beyond
      ``ACC_MARGIN``;
    * (a'), per condition: ``half-rise epoch(open) - half-rise epoch(conduit)`` on the
      bank set ("never" = E + 1), predicted > 0 (the conduit strictly earlier);
    * (b), per rule length: ``sign(DI_exposed - DI_bracket-only) * sign(gap_exposed -
      gap_bracket-only)`` at the last epoch (gap = bank-set minus fresh-set accuracy),
      predicted > 0 (+1: the condition with the higher DI generalises worse).

    Each is :func:`jaxdyn.studies.verdicts.decide` (``min_seeds=1``: one seed decides
    alone and is reported as single-seed); the parts are combined by
    :func:`jaxdyn.report.summary.combine` (``mixed (...)`` when they disagree).
    """
    from jaxdyn.report.summary import combine
    from jaxdyn.studies.verdicts import decide

    seeds = tuple(seeds)
    first = per_seed[0]

    def named(parts):
        return {(names or {}).get(n, n): v for n, v in parts.items()}

    a, a2, b = {}, {}, {}
    for name in first["a_detail"]:
        trained = [f["a_detail"][name]["mean_acc_diff"] for f in per_seed]
        untrained = [f["a_detail"][name]["acc_diff_epoch0"] for f in per_seed]
        a[name] = decide(
            trained, untrained, direction=1, margin=ACC_MARGIN, min_seeds=1, seeds=seeds,
            quantity="mean accuracy (bank - fresh set) over epochs 1..E, trained - epoch 0",
        )  # fmt: skip
        lead = [
            _never(f["a2_detail"][name]["half_open"], f["epochs"])
            - _never(f["a2_detail"][name]["half_conduit"], f["epochs"])
            for f in per_seed
        ]
        a2[name] = decide(
            lead, 0.0, direction=1, margin=0.0, min_seeds=1, seeds=seeds,
            quantity="half-rise epoch of CD(open) - of CD(conduit)",
        )  # fmt: skip
    for L in first["b_detail"]:
        agree = []
        for f in per_seed:
            d = f["b_detail"][L]
            x = np.sign(d["di_familiar_cond"] - d["di_unfamiliar_cond"]) * np.sign(
                d["gap_familiar_cond"] - d["gap_unfamiliar_cond"]
            )
            agree.append(float(x))
        b[L] = decide(
            agree, 0.0, direction=1, margin=0.0, min_seeds=1, seeds=seeds,
            quantity="sign(DI difference) x sign(gap difference), exposed - bracket-only",
        )  # fmt: skip
    return {
        "seeds": list(seeds),
        "a": {"verdict": combine(named(a)), "per_condition": a},
        "a2": {"verdict": combine(named(a2)), "per_condition": a2},
        "b": {"verdict": combine(b), "per_rule_length": b},
    }
