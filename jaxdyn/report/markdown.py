"""Report folders: each analysis writes one Markdown section; the report joins them.

Layout under ``workdir/report``::

    sections/<order>-<name>.md    one section per stage (rewritten when the stage reruns)
    sections/<order>-<name>.json  its metadata: stage, when written, summary rows, scale
    *.png                         figures the sections link to
    README.md                     the assembled report: summary table, stages, sections,
                                  appendix (configuration)

A section not rewritten by the current invocation (``assemble(..., since=t0)``)
is kept but marked with the stage and the date it was written, in the summary
and above the section.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from jaxdyn.report.format import cell
from jaxdyn.report.summary import scale_warnings, summary_table


def report_dir(workdir: str | Path) -> Path:
    """The report folder of a run (created)."""
    d = Path(workdir) / "report"
    (d / "sections").mkdir(parents=True, exist_ok=True)
    return d


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_section(
    workdir: str | Path,
    order: int,
    name: str,
    text: str,
    *,
    stage: str | None = None,
    summary: Sequence[Mapping] | None = None,
    scale: Mapping | None = None,
) -> Path:
    """Write (replace) one section and its metadata; ``order`` sorts sections.

    Args:
      stage: the ``jaxdyn run`` stage that wrote it (default ``name``).
      summary: the section's findings as :func:`jaxdyn.report.summary.row` dicts
        (they open the assembled report).
      scale: the run's scale (``{"seeds", "epochs", "tokens"}``), written by the
        training stage, read by the summary's evidence warning.
    """
    d = report_dir(workdir) / "sections"
    path = d / f"{order:02d}-{name}.md"
    meta = {
        "stage": stage or name,
        "written_ts": time.time(),
        "summary": list(summary or ()),
        "scale": None if scale is None else dict(scale),
    }
    _write(path, text.rstrip() + "\n")
    _write(path.with_suffix(".json"), json.dumps(meta, indent=1))
    return path


def read_sections(workdir: str | Path, since: float | None = None) -> list[dict]:
    """Every section in order with its metadata; ``stale``: written before ``since``.

    A section without metadata (an older jaxdyn) gets its file's modification time
    and its name as the stage.
    """
    out = []
    for sec in sorted((report_dir(workdir) / "sections").glob("*.md")):
        meta_path = sec.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        ts = float(meta.get("written_ts", sec.stat().st_mtime))
        out.append(
            {
                "path": sec,
                "name": sec.stem.split("-", 1)[-1],
                "stage": meta.get("stage", sec.stem.split("-", 1)[-1]),
                "written_ts": ts,
                "written": _utc(ts),
                "stale": since is not None and ts < since,
                # a stage skipped by the stage cache (jaxdyn.studies.cache.mark_current)
                "cached": bool(meta.get("cached")),
                "computed": _utc(float(meta.get("computed_ts") or ts)),
                "summary": meta.get("summary", []),
                "scale": meta.get("scale"),
                "text": sec.read_text(),
            }
        )
    return out


def _stale_note(sec: Mapping) -> str:
    return (
        f"> **From an earlier invocation**: stage `{sec['stage']}`, written {sec['written']}; "
        f"not rerun now (`--stages {sec['stage']}` refreshes it).\n\n"
    )


def assemble(
    workdir: str | Path,
    title: str,
    preamble: str = "",
    *,
    since: float | None = None,
    appendix: str = "",
) -> Path:
    """Join all sections into ``report/README.md``; returns its path.

    Order: title, preamble, summary (every section's findings; the run's scale and
    an evidence warning when it is small), the stages and when each last ran, the
    sections (stale ones marked), ``appendix``.

    Args:
      since: start of this invocation (``time.time()``); sections written before
        it are marked stale. None: nothing is marked.
    """
    d = report_dir(workdir)
    secs = read_sections(workdir, since)
    parts = [f"# {title}\n", preamble.rstrip() + "\n" if preamble else ""]
    scale = next((s["scale"] for s in secs if s.get("scale")), None)
    summ = ["## Summary\n"]
    if scale is not None:
        from jaxdyn.report.summary import scale_text

        summ.append(
            "Run's language model: "
            + scale_text(scale["seeds"], scale["epochs"], scale.get("tokens"))
            + ".\n"
        )
        warn = scale_warnings(scale["seeds"], scale["epochs"], scale.get("tokens"))
        if any("seed" not in w for w in warn):
            summ.append(
                "> **Warning: this run is too small to count as evidence** ("
                + "; ".join(warn)
                + "). Its verdicts show that the pipeline works, not what the thesis claims.\n"
            )
        elif warn:
            summ.append("> Note: " + "; ".join(warn) + ": verdicts are single-seed.\n")
    summ.append(summary_table(secs) + "\n")
    stale = [s for s in secs if s["stale"]]
    if stale:
        summ.append(
            "Rows marked *stale* come from sections written by an earlier invocation: "
            + ", ".join(f"`{s['stage']}` ({s['written']})" for s in stale)
            + ".\n"
        )
    skipped = skipped_note(workdir)
    if skipped:
        summ.append(skipped)
    parts.append("\n".join(summ))
    runs: dict[str, dict] = {}
    for s in secs:
        if s["stage"] not in runs or s["written_ts"] > runs[s["stage"]]["written_ts"]:
            runs[s["stage"]] = s

    def when(s):
        if s["stale"]:
            return "no (earlier invocation)"
        return f"yes (cached: inputs unchanged since {s['computed']})" if s["cached"] else "yes"

    rows = [
        (st, s["computed"] if s["cached"] else s["written"], when(s))
        for st, s in sorted(runs.items(), key=lambda kv: kv[1]["written_ts"])
    ]
    parts.append(
        "## Stages\n\n"
        + table(["stage", "section last written", "in this invocation"], rows)
        + "\n"
    )
    for sec in secs:
        note = _stale_note(sec) if sec["stale"] else ""
        if sec["cached"] and not sec["stale"]:
            note = (
                f"> Stage `{sec['stage']}` was not recomputed: its inputs are unchanged since "
                f"{sec['computed']} (stage cache).\n\n"
            )
        parts.append(note + sec["text"])
    if appendix:
        parts.append("## Appendix\n\n" + appendix.rstrip() + "\n")
    out = d / "README.md"
    out.write_text("\n".join(p for p in parts if p))
    return out


#: What analyses write beside a run they analysed (``jaxdyn.studies._common.record_skipped``).
SKIPPED_FILE = "skipped_checkpoints.json"


def skipped_note(workdir: str | Path) -> str:
    """A warning listing every checkpoint an analysis of ``workdir`` (or of a study's own
    run below it) skipped as unreadable; ``""`` when none was."""
    root = Path(workdir)
    lines = []
    for path in sorted(root.rglob(SKIPPED_FILE)):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            lines.append(f"- `{path.relative_to(root)}` is unreadable ({e})")
            continue
        where = path.parent.relative_to(root).as_posix()
        for key, entries in sorted(rec.items()):
            for e in entries:
                what = f"epoch {e['epoch']}" if e.get("epoch") is not None else "checkpoint"
                lines.append(
                    f"- `{key}` left out the {what} (step {e['step']}) of "
                    f"`{where if where != '.' else 'the run'}`: {e['problem']}"
                )
    if not lines:
        return ""
    return (
        "> **Warning: checkpoints skipped as unreadable** (their analyses have fewer "
        "epochs; rerun training in a fresh folder or restore the files):\n>\n"
        + "\n".join("> " + x for x in lines)
        + "\n"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats get 4 significant digits, None/NaN read ``n/a``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    """A finding's status word for reports."""
    return {True: "**reproduced**", False: "**not reproduced**", None: "**inconclusive**"}[ok]
