"""The syntax-interdependence study's verdict rule and summaries of its DI table.

Pure functions of the tidy table's columns (``compute.di_table``); the rule is
unit-tested on constructed numbers.
"""

from __future__ import annotations

import numpy as np

from jaxdyn.studies.stats import spearman

SPACES = ("di_hidden", "di_logits")


def correlations(cols: dict[str, np.ndarray], space: str) -> list[dict]:
    """Spearman(DI, syntactic distance) within each sequential distance, per member and epoch.

    ``cols`` without a ``member`` column is one model (member 0).
    """
    member = cols.get("member", np.zeros(len(cols["epoch"]), np.int64))
    rows = []
    for m in np.unique(member):
        for e in np.unique(cols["epoch"]):
            for d in np.unique(cols["seq_dist"]):
                sel = (member == m) & (cols["epoch"] == e) & (cols["seq_dist"] == d)
                rho, p = spearman(cols[space][sel], cols["syn_dist"][sel])
                rows.append(
                    {
                        "member": int(m),
                        "epoch": int(e),
                        "seq_dist": int(d),
                        "rho": rho,
                        "p": p,
                        "n": int(sel.sum()),
                    }
                )
    return rows


def _rho(corr, member, epoch, d) -> float:
    return next(
        (
            r["rho"]
            for r in corr
            if r["member"] == member and r["epoch"] == epoch and r["seq_dist"] == d
        ),
        float("nan"),
    )


def finding(corr: list[dict], *, seeds, margin: float, epoch: int | None = None) -> dict:
    """Decide "DI is higher at lower syntactic distance" per sequential distance across seeds.

    Per distance ``d``: :func:`jaxdyn.studies.verdicts.decide_correlation` on the
    members' rho(DI, syntactic distance) at ``epoch`` (default: the last) against the
    same members' rho at the untrained checkpoint (epoch 0; 0 when epoch 0 was not
    scored), direction -1, margin ``margin``, with the trained mean itself < 0. With
    10^5 pairs a tiny rho is significant, so significance is not the rule: an
    untrained model with rho -0.02 (p 1e-15) does not pass, the margin decides. One
    seed decides alone (``min_seeds=1``; its verdict is single-seed). The distances
    are combined without voting (:func:`jaxdyn.report.summary.combine`).

    Returns:
      ``{"verdict", "per_distance": {"d=1": Verdict, ...}, "by_epoch": {"d=1": {epoch:
      label}}, "epoch", "base_epoch"}``.
    """
    from jaxdyn.report.summary import combine
    from jaxdyn.studies.verdicts import decide_correlation

    epochs = sorted({r["epoch"] for r in corr})
    if not epochs:
        return {"verdict": "inconclusive", "per_distance": {}, "by_epoch": {}, "epoch": None,
                "base_epoch": None}  # fmt: skip
    last = epochs[-1] if epoch is None else epoch
    base = 0 if 0 in epochs and last != 0 else None
    members = sorted({r["member"] for r in corr})
    dists = sorted({r["seq_dist"] for r in corr})

    def at(e, d):
        tr = [_rho(corr, m, e, d) for m in members]
        un = [_rho(corr, m, base, d) if base is not None else 0.0 for m in members]
        return decide_correlation(tr, un, margin=margin, min_seeds=1, seeds=tuple(seeds))

    per = {f"d={d}": at(last, d) for d in dists}
    by_epoch = {f"d={d}": {e: at(e, d).label for e in epochs if e != base} for d in dists}
    return {
        "verdict": combine(per),
        "per_distance": per,
        "by_epoch": by_epoch,
        "epoch": last,
        "base_epoch": base,
    }


def binned_means(cols, space: str, epoch: int, syn_cap: int):
    """Mean DI and counts ``(seq_dists, syn_bins, mean (S, K), count (S, K))`` at ``epoch``
    (pooled over members)."""
    sel = cols["epoch"] == epoch
    seq = np.unique(cols["seq_dist"])
    syn = np.minimum(cols["syn_dist"][sel], syn_cap)
    bins = np.arange(1, syn_cap + 1)
    mean = np.full((len(seq), len(bins)), np.nan)
    cnt = np.zeros((len(seq), len(bins)), np.int64)
    for a, d in enumerate(seq):
        for b, k in enumerate(bins):
            m = (cols["seq_dist"][sel] == d) & (syn == k)
            cnt[a, b] = m.sum()
            if m.any():
                mean[a, b] = cols[space][sel][m].mean()
    return seq, bins, mean, cnt


def relation_means(cols, space: str, epoch: int) -> list[tuple]:
    """Mean DI by relation and sequential distance at ``epoch``: ``(seq, rel, mean, n)`` rows."""
    sel = cols["epoch"] == epoch
    out = []
    for d in np.unique(cols["seq_dist"]):
        for rel in ("head-dependent", "ancestor", "unconnected"):
            m = sel & (cols["seq_dist"] == d) & (cols["relation"] == rel)
            if m.any():
                out.append((int(d), rel, float(cols[space][m].mean()), int(m.sum())))
    return out
