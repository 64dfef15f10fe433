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
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from jaxdyn.cli import add_process_args, prepare_process
from jaxdyn.report import assemble
from jaxdyn.studies.interactions import PRESETS, run_interactions


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--workdir", help="run folder (default: jaxdyn-runs/interactions-<preset>)")
    ap.add_argument("--data-dir", help="folder with ud-english-ewt/ (default: $JAXDYN_DATA_DIR)")
    ap.add_argument("--no-progress", action="store_true", help="no progress output")
    add_process_args(ap)
    args = ap.parse_args(argv)
    prepare_process(args)
    from jaxdyn.data.paths import CorpusNotFoundError, resolve_data_dir

    try:
        data_dir = resolve_data_dir(args.data_dir)
    except CorpusNotFoundError as e:
        raise SystemExit(f"this experiment needs UD English-EWT: {e}") from None
    workdir = Path(args.workdir or f"jaxdyn-runs/interactions-{args.preset}")
    t0 = time.perf_counter()
    run_interactions(workdir, data_dir, PRESETS[args.preset], progress=not args.no_progress)
    report = assemble(
        workdir, "jaxdyn: interdependence and syntax", f"{time.perf_counter() - t0:.0f} s."
    )
    print(f"report: {report}")


if __name__ == "__main__":
    main()
