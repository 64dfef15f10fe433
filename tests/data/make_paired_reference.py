"""Record ``paired_similarity`` outputs before ``pairwise(..., pairs=...)`` replaced it.

Run once (``python tests/data/make_paired_reference.py``) from the repository root with
the kernels of commit 4faff8d (before the speed work): it loads ``paired_similarity``
from ``jaxdyn/studies/similarity_analysis.py`` as of that commit (``git show``) and writes
``tests/data/paired_reference.npz`` with the seeded inputs, the pair list and the
values for every metric and method, which ``tests/test_pairwise.py`` compares with
``pairwise(metric, mats, pairs=...)``.
"""

from __future__ import annotations

import subprocess
import types
from pathlib import Path

import numpy as np


def inputs(seed: int = 0):
    """Six drifting (120 x 10) float32 views and 11 pairs (ordered, repeated, self)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(120, 10))
    mats = np.stack([np.tanh(base @ rng.normal(size=(10, 10)) * 0.5 + 0.3 * k) for k in range(6)])
    mats = mats + 0.3 * rng.normal(size=mats.shape)
    pairs = np.array(
        [[0, 1], [1, 0], [2, 5], [5, 2], [3, 3], [0, 5], [4, 1], [1, 4], [2, 2], [0, 1], [3, 4]]
    )
    return mats.astype(np.float32), pairs.astype(np.int32)


def _paired_similarity(commit: str = "4faff8d"):
    src = subprocess.run(
        ["git", "show", f"{commit}:jaxdyn/studies/similarity_analysis.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("similarity_analysis_4faff8d")
    exec(compile(src, module.__name__, "exec"), module.__dict__)
    return module.paired_similarity


def main():
    paired_similarity = _paired_similarity()

    mats, pairs = inputs()
    out = {"mats": mats, "pairs": pairs}
    for metric in ("svcca", "pwcca", "cka"):
        for method in ("svd", "gram"):
            out[f"{metric}_{method}"] = paired_similarity(
                mats, pairs[:, 0], pairs[:, 1], metric, keep=0.99, method=method, chunk=4
            )
    path = Path(__file__).with_name("paired_reference.npz")
    np.savez(path, **out)
    print("wrote", path, {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
