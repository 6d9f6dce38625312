"""The run report in a notebook: `%wdl report RUN` and the folded section of the final summary.

The report itself (data, SVG pictures, text) is built by the core (`miniwdl_jupyter.report`);
this module only chooses how much of it goes into the notebook.
"""

from __future__ import annotations

from typing import Any, Dict

from ..report import REPORT_FILE, RunReport
from ..report.page import report_fragment
from ..report.plain import report_data
from .summary import esc

REPORT_MIME = "application/vnd.miniwdl-jupyter.report+json"
# Past this many calls the folded summary section carries the advice and the usage table, and
# names report.html for the pictures, so a notebook does not grow by megabytes of SVG.
FOLDED_MAX_CALLS = 500


def report_bundle(report: RunReport) -> Dict[str, Any]:
    """{'text/html', 'text/plain'} of the whole report (`%wdl report`), and the report as data
    (REPORT_MIME), which JupyterLab's extension draws itself: a notebook JupyterLab does not trust
    shows HTML sanitized, without its SVG pictures."""
    state = report.state
    data = {"name": state.name or report.run_dir.name, "status": state.status, "run_dir": str(report.run_dir),
            "report": report_data(report)}
    return {"text/html": report_fragment(report), "text/plain": report.text(), REPORT_MIME: data}


def folded_report_html(report: RunReport) -> str:
    """A closed <details> section for the final summary."""
    if len(report.call_reports) <= FOLDED_MAX_CALLS:
        inside = report_fragment(report)
    else:
        inside = (
            f"<pre>{esc(report.text())}</pre><div>timeline and workflow graph: "
            f"<code>{esc(report.run_dir / REPORT_FILE)}</code> (or <code>%wdl report</code>)</div>"
        )
    return "<details class='miniwdl-report'><summary style='cursor:pointer'>run report: time, usage, graph</summary>" + inside + "</details>"
