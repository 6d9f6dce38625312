"""The report as HTML (a fragment for notebooks and the final summary, a whole page for
report.html) and as text. Everything inline: SVG pictures, one small style block, no script and
nothing fetched, so it shows in an untrusted notebook and in a browser with no network."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

from .svg import clock, esc
from .timeline import timeline_svg
from .graph import graph_svg
from .usage import size

if TYPE_CHECKING:
    from . import RunReport

TIMELINE_LEGEND = "grey: waiting; bars: attempts coloured by state; diamonds: cached; outlined: the critical path"
_STYLE = (
    ".wdl-report{font-family:sans-serif;font-size:13px}.wdl-report table{border-collapse:collapse}"
    ".wdl-report td,.wdl-report th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    ".wdl-report td:first-child,.wdl-report th:first-child{text-align:left}"
    ".wdl-report .scroll{overflow:auto;max-height:40em}"
)


def report_fragment(report: "RunReport") -> str:
    state = report.state
    cpu_hours = sum(row.cpu_hours for row in report.task_rows)
    parts = [
        f"<div class='wdl-report'><style>{_STYLE}</style>",
        f"<h3>Run report: {esc(state.name or report.run_dir.name)} ({esc(state.status)})</h3>",
        f"<p>{len(report.call_reports):,} task calls; {esc(duration_text(state))}; {cpu_hours:.3f} CPU-hours; "
        f"<code>{esc(report.run_dir)}</code></p>",
    ]
    if report.usage_missing:
        parts.append(f"<p><b>Usage is missing for {report.usage_missing:,} call(s)</b>: {esc(missing_why())}</p>")
    if report.advice:
        parts.append("<h4>Rightsizing</h4><ul>" + "".join(f"<li>{esc(line)}</li>" for line in report.advice) + "</ul>")
    parts.append(f"<h4>Timeline</h4><p>{TIMELINE_LEGEND}</p>")
    parts.append(f"<div class='scroll'>{timeline_svg(report.call_reports, report.critical_path, state.end_time)}</div>")
    parts.append("<h4>Usage against requests</h4>" + _usage_table(report))
    parts.append(f"<h4>Workflow graph</h4><div class='scroll'>{graph_svg(report.graph, report.call_reports)}</div></div>")
    return "".join(parts)


def report_page(report: "RunReport") -> str:
    title = esc(f"Run report: {report.state.name or report.run_dir.name}")
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{report_fragment(report)}</body></html>"


def report_text(report: "RunReport") -> str:
    state = report.state
    lines = [f"Run report: {state.name or report.run_dir.name} ({state.status}), {len(report.call_reports):,} task calls, {duration_text(state)}"]
    if report.usage_missing:
        lines.append(f"usage is missing for {report.usage_missing:,} call(s): {missing_why()}")
    lines += [f"  {line}" for line in report.advice]
    lines.append(f"{'task':<24} {'calls':>6} {'cpu asked':>9} {'mem asked':>10} {'peak min/median/max':>24} {'CPU-h':>8}")
    for row in report.task_rows:
        lines.append(
            f"{row.name:<24} {row.calls:>6} {_cpu(row.cpu_requested):>9} {size(row.memory_requested):>10} "
            f"{_peaks(row):>24} {row.cpu_hours:>8.3f}"
        )
    if report.critical_path:
        lines.append("critical path: " + " -> ".join(report.critical_path[:12]) + (" ..." if len(report.critical_path) > 12 else ""))
    return "\n".join(lines)


USAGE_HEAD = ("task", "calls", "measured", "cached", "CPUs asked", "busiest CPUs", "memory asked", "peak min / median / max", "CPU-hours")


def usage_cells(row) -> tuple:
    """One task's row of the usage table, as text (USAGE_HEAD's columns)."""
    return (row.name, f"{row.calls:,}", f"{row.measured:,}", f"{row.cached:,}", _cpu(row.cpu_requested),
            "" if row.cpu_used_max is None else f"{row.cpu_used_max:g}", size(row.memory_requested), _peaks(row), f"{row.cpu_hours:.4f}")


def _usage_table(report: "RunReport") -> str:
    return (
        "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in USAGE_HEAD) + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in usage_cells(row)) + "</tr>" for row in report.task_rows)
        + "</table>"
    )


def _peaks(row) -> str:
    if row.peak_memory_max is None:
        return "cached" if row.cached == row.calls else "missing"
    return " / ".join(size(v) for v in (row.peak_memory_min, row.peak_memory_median, row.peak_memory_max))


def _cpu(value: Optional[float]) -> str:
    return "" if value is None else f"{value:g}"


def duration_text(state) -> str:
    if state.start_time is None:
        return "not started"
    return clock((state.end_time or time.time()) - state.start_time)


def missing_why() -> str:
    return ("its backend wrote no usage file (the sampler did not run or could not start: see the call's task.log; "
            "[usage] sample turns it on)")
