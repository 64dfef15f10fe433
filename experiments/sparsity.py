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

import sys

from jaxdyn.cli import experiment_main


def main(argv=None) -> int:
    return experiment_main(argv, stage="sparsity", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
