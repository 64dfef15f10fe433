"""Thesis chapter "Sparsity emerges naturally": TE of activations and gradients over training.

Trains (or resumes) a Penn Treebank language model with per-epoch checkpoints,
then traces every checkpoint on the validation text, aggregates TE = L1/L2 per
word type (keyed by input and by target word) for every module and direction,
and writes `sparsity/per_type.csv.gz`, `sparsity/findings.json` and a report
section with plots under the run folder.

    python experiments/sparsity.py --preset default --data-dir ../shared/data
    python experiments/sparsity.py --preset thesis --workdir runs/thesis   # full setup (hours on CPU)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jaxdyn.cli import add_config_args, config_from_args, prepare_process
from jaxdyn.study import run_study


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_args(ap, "default")
    ap.add_argument("--workdir", help="run folder (default: jaxdyn-runs/sparsity-<preset>)")
    ap.add_argument("--max-chunks", type=int, help="limit held-out BPTT chunks per checkpoint")
    args = ap.parse_args(argv)
    prepare_process(args)
    cfg, data_dir = config_from_args(args)
    workdir = Path(args.workdir or f"jaxdyn-runs/sparsity-{args.preset}")
    report = run_study(
        cfg,
        workdir,
        stages=["train", "sparsity"],
        progress=not args.no_progress,
        data_dir=data_dir,
        options={"sparsity_max_chunks": args.max_chunks},
        preset_name=args.preset,
    )
    print(f"report: {report}")


if __name__ == "__main__":
    main()
