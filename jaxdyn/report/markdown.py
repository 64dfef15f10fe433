"""Report folders: each analysis writes one Markdown section; the report joins them.

Layout under ``workdir/report``::

    sections/<order>-<name>.md   one section per stage (rewritten when the stage reruns)
    *.png                        figures the sections link to
    README.md                    the assembled report (title, sections in order)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def report_dir(workdir: str | Path) -> Path:
    """The report folder of a run (created)."""
    d = Path(workdir) / "report"
    (d / "sections").mkdir(parents=True, exist_ok=True)
    return d


def write_section(workdir: str | Path, order: int, name: str, text: str) -> Path:
    """Write (replace) one section; ``order`` sorts sections in the report."""
    path = report_dir(workdir) / "sections" / f"{order:02d}-{name}.md"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text.rstrip() + "\n")
    tmp.replace(path)
    return path


def assemble(workdir: str | Path, title: str, preamble: str = "") -> Path:
    """Join all sections into ``report/README.md``; returns its path."""
    d = report_dir(workdir)
    parts = [f"# {title}\n", preamble.rstrip() + "\n" if preamble else ""]
    for sec in sorted((d / "sections").glob("*.md")):
        parts.append(sec.read_text())
    out = d / "README.md"
    out.write_text("\n".join(p for p in parts if p))
    return out


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats get 4 significant digits."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    """A finding's status word for reports."""
    return {True: "**reproduced**", False: "**not reproduced**", None: "**inconclusive**"}[ok]
