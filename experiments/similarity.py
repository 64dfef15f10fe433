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
    python experiments/similarity.py --preset thesis --corpora ewt   # thesis sizes (GPU)
"""

from __future__ import annotations

import argparse
import time

from jaxdyn.cli import add_process_args, prepare_process
from jaxdyn.data.paths import resolve_data_dir
from jaxdyn.studies.similarity import SIMILARITY_PRESETS
from jaxdyn.studies.similarity_report import run_similarity_study


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", default="default", choices=list(SIMILARITY_PRESETS))
    ap.add_argument("--workdir", help="run folder (default: jaxdyn-runs/similarity-<preset>)")
    ap.add_argument("--data-dir", help="folder with the real corpora (default: $JAXDYN_DATA_DIR)")
    ap.add_argument("--corpora", help="comma-separated subset of the preset's corpora (ewt,brown)")
    ap.add_argument("--no-progress", action="store_true", help="no progress output")
    add_process_args(ap)
    args = ap.parse_args(argv)
    prepare_process(args)
    data_dir = resolve_data_dir(args.data_dir)  # errors clearly when missing
    corpora = tuple(args.corpora.split(",")) if args.corpora else None
    t0 = time.perf_counter()
    report = run_similarity_study(
        args.workdir or f"jaxdyn-runs/similarity-{args.preset}",
        data_dir,
        preset=args.preset,
        corpora=corpora,
        progress=not args.no_progress,
    )
    print(f"report: {report} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
