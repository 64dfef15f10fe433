"""Training maps (Hu et al. 2023): metric trajectories over dense checkpoints, latent phases.

Trains (or resumes) the run's language model with a dense, Pythia-style schedule of
light parameters-only checkpoints (steps 1, 2, 4, ..., 64, then every 128; epoch
ends stay full, resumable checkpoints), then computes per checkpoint the weight
metrics (norms, singular-value statistics), gradient norms, losses, the sparsity
study's TE per module and SVCCA/CKA to the previous checkpoint
(`phases/metrics.csv`), fits a Gaussian HMM over the standardised trajectories of
all seeds with the number of states chosen by BIC, and writes the phases, the
transition graph and whether transitions coincide with sparsity/similarity changes
to a report section. `--set checkpoint.*=...` and `--set phases.*=...` override
the defaults; `--seeds N` maps N seeds.

    python experiments/training_maps.py --preset smoke --workdir runs/maps-smoke
    python experiments/training_maps.py --seeds 3 --set checkpoint.every=64
"""

from __future__ import annotations

import sys

from jaxdyn.cli import experiment_main

#: The dense schedule this experiment trains with unless told otherwise (later --set win).
DENSE = [
    "checkpoint.schedule=log",
    "checkpoint.log_until=64",
    "checkpoint.every=128",
    "checkpoint.kind=params",
]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("-h", "--help") for a in argv):
        argv = [x for a in DENSE for x in ("--set", a)] + argv
    return experiment_main(argv, stage="phases", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
