"""Reports: Markdown sections with PNG figures, a summary table, one plotting standard."""

from jaxdyn.report.markdown import (
    assemble,
    read_sections,
    report_dir,
    table,
    verdict,
    write_section,
)
from jaxdyn.report.plots import check_figure, line_plot, save, style, training_curves
from jaxdyn.report.summary import combine, row, scale_text, scale_warnings, verdict_text

__all__ = [
    "assemble",
    "check_figure",
    "combine",
    "line_plot",
    "read_sections",
    "report_dir",
    "row",
    "save",
    "scale_text",
    "scale_warnings",
    "style",
    "table",
    "training_curves",
    "verdict",
    "verdict_text",
    "write_section",
]
