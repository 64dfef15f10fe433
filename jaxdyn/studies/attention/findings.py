"""Findings of the syntactic-attention study: best heads, onset of their rise, verdicts.

Per layer and checkpoint the *best head* is the head with the highest either-direction
UAS (``jaxdyn.analysis.attention``). Chen et al. (2024) report that syntactic attention
structure appears abruptly during training. The rules, per layer ``l``, over the
population's seeds (``jaxdyn.studies.verdicts.decide``, margin ``min_effect`` UAS):

1. **syntactic heads emerge**: the best head's UAS at the last checkpoint exceeds the
   same seed's untrained (first) checkpoint's best head by more than the margin;
2. **beyond position**: it also exceeds the previous-token baseline (every word
   attends to the word before it) by more than the margin.

The *onset* of a layer's rise is the first checkpoint whose best-head UAS is at least
``min_effect`` above the untrained value, *half* the first at half of its total rise,
and *steepest* the checkpoint ending the largest rise between consecutive checkpoints
(None, reported as "never", when the UAS never rises by the margin).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxdyn.report.summary import combine
from jaxdyn.studies.verdicts import decide


def best_heads(traj: Sequence[Mapping], arcs: int) -> dict[int, list[dict]]:
    """``{layer: [{"epoch", "step", "head", "uas", "dep_to_head", "head_to_dep"}]}`` (best by
    either-direction UAS; ties: the lowest head index), one entry per checkpoint."""
    out: dict[int, list[dict]] = {}
    for row in traj:
        for layer, d in row["layers"].items():
            either = np.asarray(d["either"]) / arcs
            h = int(np.argmax(either))
            out.setdefault(layer, []).append(
                {
                    "epoch": row["epoch"],
                    "step": row["step"],
                    "head": h,
                    "uas": float(either[h]),
                    "dep_to_head": float(np.asarray(d["dep_to_head"])[h] / arcs),
                    "head_to_dep": float(np.asarray(d["head_to_dep"])[h] / arcs),
                }
            )
    return out


def uas_curves(f: Mapping, layer: int) -> np.ndarray:
    """``(members, checkpoints)`` best-head UAS of ``layer`` from :func:`findings` output
    (members in ascending order; each member's best head may differ)."""
    return np.array([[b["uas"] for b in f["best"][m][layer]] for m in sorted(f["best"])])


def onset(epochs: Sequence[int], values: Sequence[float], min_effect: float) -> dict:
    """Onset, half-rise and steepest-rise epochs of a UAS curve (module docstring)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("onset: no checkpoints")
    gain = float(v.max() - v[0])
    res = {"untrained": float(v[0]), "max": float(v.max()), "gain": gain}
    if gain < min_effect or v.size < 2:
        return {**res, "onset": None, "half": None, "steepest": None}
    first = int(np.argmax(v >= v[0] + min_effect))
    half = int(np.argmax(v >= v[0] + gain / 2))
    steep = int(np.argmax(np.diff(v))) + 1
    return {**res, "onset": epochs[first], "half": epochs[half], "steepest": epochs[steep]}


def findings(
    trajs: Mapping[int, Sequence[Mapping]],
    arcs: int,
    baseline_uas: float,
    *,
    seeds: Sequence[int],
    min_effect: float,
) -> dict:
    """Best heads, onsets and the two verdicts per layer, across the members in ``trajs``.

    Args:
      trajs: ``{member: attention_trajectory(...)}`` (same checkpoints for every member).
      arcs: the corpus's arcs; baseline_uas: the previous-token pattern's UAS.
      seeds: each member's seed (labels).

    Returns:
      ``{"epochs", "layers", "best": {member: best_heads}, "onset": {member: {layer: onset}},
      "f1"/"f2": {"verdict": combined label, "per_layer": {layer name: Verdict}}}``.
    """
    members = sorted(trajs)
    epochs = [r["epoch"] for r in trajs[members[0]]]
    for m in members[1:]:
        if [r["epoch"] for r in trajs[m]] != epochs:
            raise ValueError("attention findings: members have different checkpoints")
    best = {m: best_heads(trajs[m], arcs) for m in members}
    layers = sorted(best[members[0]])
    ons = {
        m: {l: onset(epochs, [b["uas"] for b in best[m][l]], min_effect) for l in layers}
        for m in members
    }
    labels = [seeds[m] for m in members]
    f1, f2 = {}, {}
    for l in layers:
        last = [best[m][l][-1]["uas"] for m in members]
        first = [best[m][l][0]["uas"] for m in members]
        name = f"layer {l}"
        f1[name] = decide(
            last,
            first,
            direction=1,
            margin=min_effect,
            min_seeds=1,
            seeds=labels,
            quantity="best-head UAS (last - untrained)",
        )
        f2[name] = decide(
            last,
            baseline_uas,
            direction=1,
            margin=min_effect,
            min_seeds=1,
            seeds=labels,
            quantity="best-head UAS - previous-token UAS",
        )
    return {
        "epochs": epochs,
        "layers": layers,
        "best": best,
        "onset": ons,
        "baseline_uas": baseline_uas,
        "f1": {"verdict": combine(f1), "per_layer": f1},
        "f2": {"verdict": combine(f2), "per_layer": f2},
    }
