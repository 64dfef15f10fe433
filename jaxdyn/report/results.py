"""The cross-seed verdict table of a finished run, from its studies' ``findings.json``.

``python -m jaxdyn.report.results RUN_DIR`` prints one Markdown row per finding and
part (layer, sequential distance, condition): verdict, trained mean, its 95% interval
across seeds, the untrained baseline, the effect with its interval, and the seeds.
This is the table ``docs/results.md`` records. (The similarity study's "untrained"
column is a shared 0 for findings 1/1b, which have no untrained counterpart, and the
epoch-1 value for finding 3; its report states each rule.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaxdyn.report.format import interval, num

HEADER = (
    "| study | finding | part | verdict | trained mean | 95% interval | untrained | "
    "effect [95% interval] | seeds |\n|---|---|---|---|---|---|---|---|---|"
)


def _row(study, finding, part, v: dict) -> str:
    seeds = str(v["n"]) + (f" ({len(v['failed'])} failed)" if v.get("failed") else "")
    eff = f"{num(v['effect'], signed=True)} {interval(v['effect_lo'], v['effect_hi'])}"
    cells = (
        study,
        finding,
        part,
        v["label"] + (" (single-seed)" if v["n"] == 1 else ""),
        num(v["mean"], signed=True),
        interval(v["lo"], v["hi"]),
        num(v["baseline"], signed=True),
        eff,
        seeds,
    )
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def verdict_rows(workdir: str | Path) -> list[str]:
    """Markdown rows (:data:`HEADER`) of every decided finding of a run folder."""
    wd = Path(workdir)
    rows = []
    sp = _load(wd / "sparsity" / "findings.json")
    if sp:
        names = {
            "f1": "1. frequent input words: concentrated activations",
            "f3": "3. function words' gradients more concentrated",
            "f4": "4. concentration emerges over training",
        }
        for k in ("f1", "f2", "f3", "f4"):
            for layer, v in sp[k]["per_layer"].items():
                if k == "f2":
                    rows.append(_row("sparsity", "2a. frequent targets: dispersed activations",
                                     layer, v[0]))  # fmt: skip
                    rows.append(_row("sparsity", "2b. frequent targets: concentrated gradients",
                                     layer, v[1]))  # fmt: skip
                else:
                    rows.append(_row("sparsity", names[k], layer, v))
    ia = _load(wd / "interactions" / "findings.json")
    if ia and "findings" in ia:
        for space, fd in ia["findings"].items():
            for d, v in fd["per_distance"].items():
                rows.append(_row("interactions", f"DI vs syntactic distance ({space})", d, v))
    bu = _load(wd / "bottom_up" / "findings.json")
    if bu and "a" in bu and "per_condition" in bu["a"]:
        names = {"a": "(a) bank before fresh conduits", "a2": "(a') conduit before open symbol",
                 "b": "(b) interdependence hurts generalisation"}  # fmt: skip
        for k, key in (("a", "per_condition"), ("a2", "per_condition"), ("b", "per_rule_length")):
            for part, v in bu[k][key].items():
                rows.append(_row("bottom_up", names[k], part, v))
    sim = _load(wd / "similarity" / "findings.json")
    if sim and "seeds" in sim:  # decided across seeds (older files: single_seed_rows)
        for k, name in _SIMILARITY:
            for part, v in (sim[k].get("per_part") or {}).items():
                rows.append(_row("similarity", name, part, v))
    return rows


_SIMILARITY = (("f1", "1. POS before topic"), ("f1_probe", "1b. probe view"),
               ("f2", "2. recurrent more tagger-like"), ("f3", "3. task-specific embeddings"))  # fmt: skip


def single_seed_rows(workdir: str | Path) -> list[str]:
    """``| study | finding | part | verdict |`` rows of findings without seed statistics
    (a similarity ``findings.json`` written before the study decided across seeds)."""
    sim = _load(Path(workdir) / "similarity" / "findings.json")
    rows = []
    if sim and "seeds" not in sim:
        for k, name in _SIMILARITY:
            for part, lab in (sim[k].get("per_part") or {}).items():
                rows.append(f"| similarity | {name} | {part} | {lab} (single-seed) |")
    return rows


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m jaxdyn.report.results RUN_DIR", file=sys.stderr)
        return 2
    rows = verdict_rows(argv[0])
    print(HEADER)
    print("\n".join(rows))
    single = single_seed_rows(argv[0])
    if single:
        print("\n| study | finding | part | verdict |\n|---|---|---|---|")
        print("\n".join(single))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
