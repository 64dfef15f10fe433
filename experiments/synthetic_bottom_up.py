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

import argparse
import time
from pathlib import Path

from jaxdyn.cli import add_process_args, prepare_process
from jaxdyn.report import assemble
from jaxdyn.studies.bottom_up import PRESETS, run_bottom_up


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--workdir", help="run folder (default: jaxdyn-runs/bottom-up-<preset>)")
    ap.add_argument("--data-dir", help="unused (synthetic data); accepted for symmetry")
    ap.add_argument("--no-progress", action="store_true", help="no progress output")
    add_process_args(ap)
    args = ap.parse_args(argv)
    prepare_process(args)
    workdir = Path(args.workdir or f"jaxdyn-runs/bottom-up-{args.preset}")
    t0 = time.perf_counter()
    run_bottom_up(workdir, PRESETS[args.preset], progress=not args.no_progress)
    report = assemble(
        workdir, "jaxdyn: bottom-up learning (synthetic)", f"{time.perf_counter() - t0:.0f} s."
    )
    print(f"report: {report}")


if __name__ == "__main__":
    main()
