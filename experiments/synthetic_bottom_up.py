"""Bottom-up learning on synthetic bracket data, with familiar and unfamiliar conduits.

Trains one language model per condition (rule length; conduits seen only inside
brackets or also outside them) with per-epoch checkpoints, then measures at
every closing symbol of the evaluation sets (bank conduits and fresh conduits):
log p(")") of the full model and of CD with relevant = open symbol / conduit /
both, DI(open symbol, conduit), and accuracy. Writes `bottom_up/closing.csv.gz`,
`bottom_up/summary.csv`, `bottom_up/findings.json` and a report section.
Needs no corpora.

    python experiments/synthetic_bottom_up.py --preset default
    python experiments/synthetic_bottom_up.py --preset thesis --workdir runs/bottom-up-thesis
"""

from __future__ import annotations

import sys

from jaxdyn.cli import experiment_main


def main(argv=None) -> int:
    return experiment_main(argv, stage="bottom_up", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
