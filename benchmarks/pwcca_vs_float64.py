"""PWCCA of a finished similarity study against a float64 NumPy reference.

    python benchmarks/pwcca_vs_float64.py RUN_DIR --data-dir ../shared/data [--epoch 3]

Recomputes the held-out activations of three comparisons of the default preset's
study in ``RUN_DIR`` (top LSTM layer at ``--epoch``: the language model and the
POS tagger against the own-initialisation genre tagger, whose top layer is the
worst-conditioned view), and prints their condition number, the float64
reference (``tests/reference/similarity_ref.py``) and jaxdyn's ``pwcca`` with the
study's ``cca_method``. Used to check that PWCCA values changed by the one-engine
refactor moved to the reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxdyn.analysis import pwcca
from jaxdyn.config import preset
from jaxdyn.data.corpora import load_brown, load_ewt
from jaxdyn.studies.similarity import runs as sim
from jaxdyn.train.tasks import lm_task_from_tagged
from tests.reference import similarity_ref as ref


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--epoch", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = preset("default").similarity
    print("| corpus | comparison | cond(y) | float64 reference | jaxdyn |\n|---|---|---|---|---|")
    for corpus, a, b in [
        ("ewt", "lm", "genre-own"),
        ("brown", "lm", "genre-own"),
        ("brown", "pos-own", "genre-own"),
    ]:
        splits = (load_ewt if corpus == "ewt" else load_brown)(args.data_dir, lowercase=True)
        splits = sim.prepare_corpus(splits, cfg)
        lm = lm_task_from_tagged(splits, sim.run_config(cfg, corpus, 1111).data)
        tokens = sim.heldout_tokens(lm.valid, cfg.heldout_tokens)
        root = args.run_dir / "similarity" / corpus
        _, xa = sim.collect_activations(root / a, tokens)
        _, xb = sim.collect_activations(root / b, tokens)
        x32, y32 = xa["lstm_1"][args.epoch], xb["lstm_1"][args.epoch]
        y = y32.astype(np.float64)
        s = np.linalg.svd(y - y.mean(0), compute_uv=False)
        want = ref.pwcca(x32.astype(np.float64), y)
        got = float(pwcca(x32, y32, method=cfg.cca_method))
        print(f"| {corpus} | {a} vs {b} | {s[0] / s[-1]:.3g} | {want:.6f} | {got:.6f} |")


if __name__ == "__main__":
    main()
