"""Syntactic attention structure (Chen et al. 2024) over a Transformer LM's training.

Trains (or resumes) a Transformer language model (``model.kind=transformer`` unless
``--set model.kind=...`` says otherwise) with per-epoch checkpoints, then compares
every head's attention argmax at every checkpoint with UD English-EWT dependency
heads: UAS per head (either direction, and each direction), the best head per
layer over training, the onset of its rise, verdicts against the untrained model
and the previous-token baseline. Writes `attention/uas.csv`, `attention/findings.json`
and a report section with a plot under the run folder.

    python experiments/attention.py --preset smoke --data-dir ../shared/data
    python experiments/attention.py --preset default --data-dir ../shared/data
"""

from __future__ import annotations

import sys

from jaxdyn.cli import experiment_main


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any("model.kind=" in a for a in argv):
        argv = ["--set", "model.kind=transformer", *argv]
    return experiment_main(argv, stage="attention", doc=__doc__, needs_corpora=True)


if __name__ == "__main__":
    sys.exit(main())
