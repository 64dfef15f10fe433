"""Findings and plots of the similarity study (tidy rows in, numbers and PNGs out).

Findings (Saphra & Lopez 2019; thesis chapter "Understanding learning dynamics
with SVCCA") and how this study tests them:

1. Part of speech stabilises before topic. Per tagger and layer, the
   stabilisation epoch is the first epoch from which SVCCA with the tagger's own
   final checkpoint stays >= ``stable_threshold`` (0.9); ties are broken by the
   mean SVCCA-to-final over the epochs before the last (higher = earlier; a
   difference within ``min_effect`` is a tie). Per layer, every
   (corpus, init, POS task, topic task) cell must agree; layers that disagree are
   reported as "mixed (embedding yes, lstm_0 no)" (no majority vote).
   Probes give a second view: the epoch at which the language model's probe
   reaches 90% of its largest accuracy gain over epoch 0.
2. Recurrent layers grow more similar to the taggers', embeddings less. The
   change of language-model-vs-tagger SVCCA from epoch 0 to the last epoch,
   averaged over the own-initialisation taggers (with a shared initialisation
   every layer is identical at epoch 0, so the start is trivially 1): reproduced
   when the embedding's change is below ``-min_effect`` and every LSTM layer's
   above ``min_effect``; not reproduced when one clearly goes the other way.
3. Embeddings of different tasks start similar and become task-specific. SVCCA
   between shared-initialisation taggers of different tasks at epoch 1 (epoch 0
   is trivially 1) and at the last epoch, per task pair: falls by more than
   ``min_effect`` = yes, rises = no; pairs combined as above.

Across seeds (:func:`across_seeds`): each finding is computed per member (seed) from
that member's own models, then every part (layer; task pair for 3) is decided across
the S seeds by :func:`jaxdyn.studies.verdicts.decide` (``min_seeds=1``: with one
seed the seed decides alone, exactly as the single-seed rule above, and the report
calls it single-seed):

* 1 and 1b: the seed's statistic is the part's agreed order, +1 (every cell: POS
  first), -1 (every cell: POS later) or 0 (cells split or tied), against a shared
  baseline of 0 (a stabilisation order has no untrained counterpart), margin 0;
* 2: LM-vs-own-tagger SVCCA at the last epoch against the same seed's epoch-0
  (untrained) value, predicted down for the embedding and up for every LSTM layer,
  margin ``min_effect``;
* 3: embedding SVCCA of two shared-init taggers at the last epoch against the same
  seed's epoch-1 value (at epoch 0 both are the language model's initialisation and
  the similarity is 1 by construction), predicted down, margin ``min_effect``.

A part missing or non-finite in a seed makes that seed failed for the part (listed,
never averaged away), except in 1b, where a part is missing when that seed's probes
never gain ``min_effect`` over epoch 0: no order, so 0. Parts are combined without voting
(:func:`jaxdyn.report.summary.combine`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def index(rows) -> dict:
    """``(corpus, comparison, task, init, other, layer, metric) -> {epoch: value}``."""
    out = defaultdict(dict)
    for r in rows:
        key = (
            r["corpus"],
            r["comparison"],
            r["task"],
            r["init"],
            r["other"],
            r["layer"],
            r["metric"],
        )
        out[key][int(r["epoch"])] = float(r["value"])
    return out


def stabilisation_epoch(series: dict[int, float], threshold: float) -> int:
    """First epoch from which the series stays >= ``threshold`` (the last epoch if never before)."""
    epochs = sorted(series)
    for k, e in enumerate(epochs):
        if all(series[f] >= threshold for f in epochs[k:]):
            return e
    return epochs[-1]


def _pre_final_mean(series):
    epochs = sorted(series)[:-1]
    return float(np.mean([series[e] for e in epochs])) if epochs else float("nan")


def layer_key(name: str) -> int:
    """Sort key of layer names: ``embedding`` first, then ``lstm_0``/``block_0``, ..."""
    return -1 if name == "embedding" else int(name.split("_")[-1])


def _layers(idx):
    return sorted({k[5] for k in idx}, key=layer_key)


def _part(corpora, corpus, layer) -> str:
    return layer if len(corpora) == 1 else f"{corpus} {layer}"


def _combined(parts: dict) -> dict:
    """Per-part verdicts (each part's cells must agree) combined without voting.

    Returns ``{"verdict": label or "mixed (...)", "per_part": {part: label}, "ok"}`` with
    ``ok`` True / False only when every part is reproduced / contradicted.
    """
    from jaxdyn.report.summary import combine

    def one(votes):
        kinds = set(votes)
        return {True: "reproduced", False: "contradicted"}.get(
            kinds.pop() if len(kinds) == 1 else None, "inconclusive"
        )

    per = {k: one(v) for k, v in parts.items()}
    verdict = combine(per)
    ok = {"reproduced": True, "contradicted": False}.get(verdict)
    return {"verdict": verdict, "per_part": per, "ok": ok}


def finding_pos_before_topic(idx, cfg) -> dict:
    """Finding 1, per layer: every (corpus, init, POS task, topic task) cell of the layer
    must agree (POS stabilises first: yes; later: no; else inconclusive)."""
    cells, earlier, later, parts = [], 0, 0, {}
    corpora = sorted({k[0] for k in idx})
    for corpus in corpora:
        for init in ("shared", "own"):
            for layer in _layers(idx):
                ser = {
                    k[2]: v
                    for k, v in idx.items()
                    if k[0] == corpus
                    and k[1] == "vs-own-final"
                    and k[3] == init
                    and k[5] == layer
                    and k[6] == "svcca"
                }
                for p in [t for t in ser if t in cfg.pos_tasks]:
                    for t in [t for t in ser if t in cfg.topic_tasks]:
                        vals = [*ser[p].values(), *ser[t].values()]
                        if len(ser[p]) < 3 or not np.all(np.isfinite(vals)):
                            continue  # too short to order, or no evidence (non-finite)
                        ep, et = (stabilisation_epoch(ser[x], cfg.stable_threshold) for x in (p, t))
                        mp, mt = _pre_final_mean(ser[p]), _pre_final_mean(ser[t])
                        tol = cfg.min_effect
                        first = ep < et or (ep == et and mp - mt > tol)
                        last = ep > et or (ep == et and mt - mp > tol)
                        earlier += first
                        later += last
                        cells.append((corpus, init, layer, p, ep, mp, t, et, mt))
                        parts.setdefault(_part(corpora, corpus, layer), []).append(
                            True if first else (False if last else None)
                        )
    return {"cells": cells, "earlier": earlier, "later": later, **_combined(parts)}


def probe_stabilisation(probes, frac: float = 0.9, min_gain: float = 0.01) -> dict:
    """``(corpus, task, layer) -> epoch`` at which the LM probe first reaches ``frac`` of its
    best accuracy gain over epoch 0 (None when the best gain is below ``min_gain``)."""
    ser = defaultdict(dict)
    for r in probes:
        ser[(r["corpus"], r["task"], r["layer"])][int(r["epoch"])] = float(r["test_acc"])
    out = {}
    for key, s in ser.items():
        epochs = sorted(s)
        gain = max(s.values()) - s[epochs[0]]
        out[key] = (
            next(e for e in epochs if s[e] - s[epochs[0]] >= frac * gain)
            if gain >= min_gain
            else None
        )
    return out


def finding_probe_view(probes, cfg) -> dict:
    """Finding 1 in the probe view, per layer (cells of a layer must agree)."""
    stab = probe_stabilisation(probes, min_gain=cfg.min_effect)
    cells, earlier, later, parts = [], 0, 0, {}
    corpora = sorted({k[0] for k in stab})
    for (corpus, task, layer), e in sorted(stab.items()):
        if task not in cfg.pos_tasks or e is None:
            continue
        for (c2, t2, l2), e2 in stab.items():
            if c2 == corpus and l2 == layer and t2 in cfg.topic_tasks and e2 is not None:
                earlier += e < e2
                later += e > e2
                cells.append((corpus, layer, task, e, t2, e2))
                parts.setdefault(_part(corpora, corpus, layer), []).append(
                    True if e < e2 else (False if e > e2 else None)
                )
    n_epochs = len({r["epoch"] for r in probes})
    comb = _combined(parts) if n_epochs >= 3 else {"verdict": "inconclusive", "per_part": {},
                                                    "ok": None}  # fmt: skip
    return {"cells": cells, "earlier": earlier, "later": later, **comb}


def finding_recurrent_vs_embedding(idx, tol: float) -> dict:
    change = defaultdict(lambda: defaultdict(list))  # (corpus, init) -> layer -> [delta]
    own_ends = defaultdict(list)  # (corpus, layer) -> [(last, epoch 0)] of own-init taggers
    for k, s in idx.items():
        corpus, comp, _, init, _, layer, metric = k
        if comp != "lm-vs-tagger" or metric != "svcca":
            continue
        epochs = sorted(s)
        start = epochs[0] if init == "own" else (epochs[1] if len(epochs) > 2 else None)
        if start is None or start == epochs[-1]:
            continue
        change[(corpus, init)][layer].append(s[epochs[-1]] - s[start])
        if init == "own":
            own_ends[(corpus, layer)].append((s[epochs[-1]], s[start]))
    means = defaultdict(dict)  # corpus -> init -> layer -> mean change
    for (corpus, init), d in sorted(change.items()):
        means[corpus][init] = {l: float(np.mean(v)) for l, v in d.items()}
    per_corpus, parts, ends = [], {}, {}
    for corpus, m in ((c, d.get("own", {})) for c, d in means.items()):
        if "embedding" not in m:
            continue
        for l, v in sorted(m.items(), key=lambda lv: layer_key(lv[0])):
            want = -1 if l == "embedding" else 1
            s_ = int(np.sign(v)) if abs(v) > tol else 0
            part = _part(list(means), corpus, l)
            parts[part] = [True if s_ == want else (False if s_ == -want else None)]
            last, start = np.mean(own_ends[(corpus, l)], axis=0)
            ends[part] = {"layer": l, "last": float(last), "start": float(start)}
        sign = {l: int(np.sign(v)) if abs(v) > tol else 0 for l, v in m.items()}
        rec = [v for l, v in sign.items() if l != "embedding"]
        ok = sign["embedding"] < 0 and all(v > 0 for v in rec)
        bad = sign["embedding"] > 0 or any(v < 0 for v in rec)  # a clear contradiction
        per_corpus.append(True if ok else (False if bad else None))
    if per_corpus and all(v is True for v in per_corpus):
        verdict_ = True
    elif per_corpus and all(v is False for v in per_corpus):
        verdict_ = False
    else:
        verdict_ = None
    comb = _combined(parts)
    return {
        "mean_change": dict(means),
        "ok": verdict_,
        "ends": ends,
        **{k: comb[k] for k in ("verdict", "per_part")},
    }


def finding_task_specific_embeddings(idx, tol: float) -> dict:
    """Finding 3, per task pair (embedding SVCCA epoch 1 -> last: fell = yes, rose = no)."""
    cells, fell, rose, parts, ends = [], 0, 0, {}, {}
    corpora = sorted({k[0] for k in idx})
    for k, s in sorted(idx.items()):
        corpus, comp, task, init, other, layer, metric = k
        if comp != "tagger-vs-tagger" or init != "shared" or metric != "svcca":
            continue
        epochs = sorted(s)
        if len(epochs) < 3:
            continue
        d = s[epochs[-1]] - s[epochs[1]]
        cells.append((corpus, layer, f"{task} vs {other}", s[epochs[1]], s[epochs[-1]], d))
        if layer == "embedding":
            fell += d < -tol
            rose += d > tol
            key = f"{task} vs {other}" if len(corpora) == 1 else f"{corpus} {task} vs {other}"
            parts[key] = [True if d < -tol else (False if d > tol else None)]
            ends[key] = {"last": s[epochs[-1]], "start": s[epochs[1]]}
    return {"cells": cells, "fell": fell, "rose": rose, "ends": ends, **_combined(parts)}


# ----------------------------------------------------------------------------- across seeds

#: A single seed's part verdict as the across-seed statistic of findings 1 and 1b.
ORDER_VALUE = {"reproduced": 1.0, "contradicted": -1.0, "inconclusive": 0.0}


def per_seed_findings(idx, probes, cfg) -> dict:
    """Findings 1, 1b, 2 and 3 of one seed (its ``index`` of rows and its probe rows)."""
    return {
        "f1": finding_pos_before_topic(idx, cfg),
        "f1_probe": finding_probe_view(probes, cfg),
        "f2": finding_recurrent_vs_embedding(idx, cfg.min_effect),
        "f3": finding_task_specific_embeddings(idx, cfg.min_effect),
    }


def _parts(dicts) -> list:
    """Union of the keys of several dicts, in order of first appearance."""
    return list(dict.fromkeys(k for d in dicts for k in d))


def _result(per: dict) -> dict:
    from jaxdyn.report.summary import combine

    verdict = combine(per)
    return {
        "verdict": verdict,
        "ok": {"reproduced": True, "contradicted": False}.get(verdict),
        "per_part": per,
    }


def across_seeds(per_seed_idx, per_seed_probes, seeds, cfg) -> dict:
    """Decide findings 1, 1b, 2 and 3 per part across seeds (module docstring).

    Args:
      per_seed_idx: one :func:`index` of the comparison rows per seed (member).
      per_seed_probes: one list of probe rows per seed.
      seeds: the members' seeds ``(S,)`` (labels of the verdicts).
      cfg: the study's section (``min_effect`` is the margin of findings 2 and 3).

    Returns:
      ``{"seeds", "f1", "f1_probe", "f2", "f3", "per_seed"}``: each finding
      ``{"verdict" (combined), "ok", "per_part": {part: Verdict}}``; ``per_seed``: one
      :func:`per_seed_findings` dict per seed.
    """
    from jaxdyn.studies.verdicts import decide

    seeds = tuple(seeds)
    if len(per_seed_idx) != len(seeds) or len(per_seed_probes) != len(seeds):
        raise ValueError(
            f"across_seeds: {len(seeds)} seeds but {len(per_seed_idx)} indexes and "
            f"{len(per_seed_probes)} probe tables"
        )
    per_seed = [per_seed_findings(i, p, cfg) for i, p in zip(per_seed_idx, per_seed_probes)]
    nan = float("nan")
    out = {"seeds": list(seeds)}
    for key, what, missing in (("f1", "POS first", nan), ("f1_probe", "POS probe first", 0.0)):
        parts = [f[key]["per_part"] for f in per_seed]
        out[key] = _result({
            part: decide(
                [ORDER_VALUE[p[part]] if part in p else missing for p in parts], 0.0, direction=1,
                margin=0.0, min_seeds=1, seeds=seeds,
                quantity=f"the seed's agreed order (+1 {what} in every cell, -1 later, 0 split; "
                "shared baseline 0: no untrained counterpart)",
            )
            for part in _parts(parts)
        })  # fmt: skip

    def ends_of(key, part, end):
        return [f[key]["ends"][part][end] if part in f[key]["ends"] else nan for f in per_seed]

    layer = {p: e["layer"] for f in per_seed for p, e in f["f2"]["ends"].items()}
    out["f2"] = _result({
        part: decide(
            ends_of("f2", part, "last"), ends_of("f2", part, "start"),
            direction=-1 if layer[part] == "embedding" else 1, margin=cfg.min_effect,
            min_seeds=1, seeds=seeds,
            quantity="LM-vs-own-tagger SVCCA, last epoch - epoch 0 (untrained)",
        )
        for part in _parts([f["f2"]["ends"] for f in per_seed])
    })  # fmt: skip
    out["f3"] = _result({
        part: decide(
            ends_of("f3", part, "last"), ends_of("f3", part, "start"),
            direction=-1, margin=cfg.min_effect, min_seeds=1, seeds=seeds,
            quantity="embedding SVCCA of the two shared-init taggers, last epoch - epoch 1 "
            "(epoch 0 is 1 by construction)",
        )
        for part in _parts([f["f3"]["ends"] for f in per_seed])
    })  # fmt: skip
    out["per_seed"] = per_seed
    return out


# ----------------------------------------------------------------------------- plots
