"""Compare the tidy tables of two run folders (e.g. before and after a refactor).

    python benchmarks/compare_tables.py RUN_A RUN_B [--rtol 1e-4] [--atol 1e-5]

For every CSV table both folders hold (``metrics/epochs.csv``,
``sparsity/per_type.csv.gz``, ``similarity/<corpus>/*.csv``,
``interactions/di_pairs.csv.gz``, ``bottom_up/*.csv*``), prints the row counts,
whether the non-numeric columns are identical, and the largest absolute and
relative difference of every numeric column. Exit status 1 when a table differs
beyond the tolerances (timing columns such as ``seconds`` are ignored).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path

import numpy as np

TABLES = (
    "metrics/epochs.csv",
    "sparsity/per_type.csv.gz",
    "interactions/di_pairs.csv.gz",
    "bottom_up/closing.csv.gz",
    "bottom_up/summary.csv",
)
IGNORED = {"seconds"}


def _read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        return list(csv.DictReader(fh))


def _as_float(values):
    try:
        return np.array([float(v) if v not in ("", "None") else np.nan for v in values])
    except ValueError:
        return None


def compare(a: Path, b: Path, rtol: float, atol: float) -> bool:
    ok = True
    names = list(TABLES)
    for sub in sorted((a / "similarity").glob("*/*.csv")):
        names.append(str(sub.relative_to(a)))
    for name in names:
        pa, pb = a / name, b / name
        if not pa.exists() or not pb.exists():
            print(f"{name}: missing in {'A' if not pa.exists() else 'B'}")
            ok = ok and not (pa.exists() or pb.exists())
            continue
        ra, rb = _read(pa), _read(pb)
        if len(ra) != len(rb) or (ra and list(ra[0]) != list(rb[0])):
            print(f"{name}: {len(ra)} vs {len(rb)} rows, columns differ: DIFFERENT")
            ok = False
            continue
        cols = [c for c in (ra[0] if ra else {}) if c not in IGNORED]
        worst, same_text = [], True
        for c in cols:
            xa, xb = _as_float([r[c] for r in ra]), _as_float([r[c] for r in rb])
            if xa is None or xb is None:
                same_text &= [r[c] for r in ra] == [r[c] for r in rb]
                continue
            both_nan = np.isnan(xa) & np.isnan(xb)
            d = np.where(both_nan, 0.0, np.abs(xa - xb))
            if np.any(np.isnan(d)):
                worst.append((c, np.inf, np.inf, False))
                continue
            scale = np.where(both_nan, 0.0, np.abs(xa))
            rel = d / np.maximum(scale, 1e-30)
            good = bool(np.all(d <= atol + rtol * scale))
            worst.append((c, float(d.max(initial=0)), float(rel.max(initial=0)), good))
        table_ok = same_text and all(g for *_, g in worst)
        ok &= table_ok
        print(f"{name}: {len(ra)} rows, text columns {'equal' if same_text else 'DIFFER'}")
        for c, d, r, g in worst:
            print(
                f"    {c:<14} max |diff| {d:.3g}  max rel {r:.3g}{'' if g else '  <-- beyond tolerance'}"
            )
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args(argv)
    ok = compare(args.run_a, args.run_b, args.rtol, args.atol)
    print("all tables equal within tolerance" if ok else "tables differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
