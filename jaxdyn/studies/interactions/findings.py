"""The syntax-interdependence study's verdict rule and summaries of its DI table.

Pure functions of the tidy table's columns (``compute.di_table``); the rule is
unit-tested on constructed numbers.
"""

from __future__ import annotations

import numpy as np

from jaxdyn.studies.stats import spearman

SPACES = ("di_hidden", "di_logits")


def correlations(cols: dict[str, np.ndarray], space: str) -> list[dict]:
    """Spearman(DI, syntactic distance) within each sequential distance, per epoch."""
    rows = []
    for e in np.unique(cols["epoch"]):
        for d in np.unique(cols["seq_dist"]):
            sel = (cols["epoch"] == e) & (cols["seq_dist"] == d)
            rho, p = spearman(cols[space][sel], cols["syn_dist"][sel])
            rows.append(
                {"epoch": int(e), "seq_dist": int(d), "rho": rho, "p": p, "n": int(sel.sum())}
            )
    return rows


def finding(corr: list[dict], epoch: int) -> tuple[bool | None, int, int]:
    """Reproduced when rho < 0 with p < 0.05 in most sequential distances at ``epoch``."""
    at = [r for r in corr if r["epoch"] == epoch and np.isfinite(r["rho"])]
    hits = sum(1 for r in at if r["rho"] < 0 and r["p"] < 0.05)
    if not at:
        return None, 0, 0
    return hits > len(at) / 2, hits, len(at)


def binned_means(cols, space: str, epoch: int, syn_cap: int):
    """Mean DI and counts ``(seq_dists, syn_bins, mean (S, K), count (S, K))`` at ``epoch``."""
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
