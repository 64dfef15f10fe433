"""Interdependence and syntax: is DI higher for word pairs closer in the dependency tree?

Trains (or resumes) a language model on UD English-EWT train (lowercased), then,
for every checkpoint, computes decompositional interdependence (DI) for every
word pair at sequential distance 1-5 in parsed EWT dev sentences, at the later
word's timestep, and relates it to the pair's dependency path length (Spearman
within each sequential distance, binned heatmap, rho over training). Writes
`interactions/di_pairs.csv.gz`, `interactions/findings.json` and a report
section under the run folder.

    python experiments/syntax_interdependence.py --preset default --data-dir ../shared/data
    python experiments/syntax_interdependence.py --preset thesis --workdir runs/di-thesis
    python experiments/syntax_interdependence.py --set interactions.eval_path=wsj.conllu --set interactions.checkpoints=0,5
"""

from __future__ import annotations

import sys

from jaxdyn.cli import experiment_main


def main(argv=None) -> int:
    return experiment_main(argv, stage="interactions", doc=__doc__, needs_corpora=True)


if __name__ == "__main__":
    sys.exit(main())
