"""Thesis chapter "Understanding learning dynamics with SVCCA": LM vs taggers over training.

Trains (or resumes) a language model and taggers (EWT: XPOS, UPOS, dependency
relation, genre; Brown: POS, genre) on the same text with per-epoch checkpoints,
each tagger from the language model's initialisation and from its own seed;
compares every layer (embedding, each LSTM layer) of every checkpoint on the same
held-out tokens with SVCCA, PWCCA and linear CKA, probes the language model's
frozen activations with MLPs, and writes `similarity/<corpus>/*.csv`, plots and a
report section with the chapter's findings under the run folder.

    python experiments/similarity.py --preset smoke --data-dir ../shared/data
    python experiments/similarity.py --preset default --data-dir ../shared/data --workdir /tmp/sim
    python experiments/similarity.py --preset thesis --set similarity.corpora=ewt   # thesis sizes (GPU)
"""

from __future__ import annotations

import sys

from jaxdyn.cli import experiment_main


def main(argv=None) -> int:
    return experiment_main(argv, stage="similarity", doc=__doc__, needs_corpora=True)


if __name__ == "__main__":
    sys.exit(main())
