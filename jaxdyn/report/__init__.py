"""Reports: Markdown sections with PNG figures."""

from jaxdyn.report.markdown import assemble, report_dir, table, verdict, write_section
from jaxdyn.report.plots import line_plot, save, training_curves

__all__ = [
    "assemble",
    "line_plot",
    "report_dir",
    "save",
    "table",
    "training_curves",
    "verdict",
    "write_section",
]
