"""The run report: where the time and the resources went, from the run directory alone.

    report = build_report(run_dir)   # plain data: calls, tasks, advice, critical path, pictures
    report.html()                    # one self-contained page (inline SVG, no script, no network)
    write_report_html(run_dir)       # ... written as <run_dir>/report.html

Core module: imports neither IPython nor the display layer.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from ..monitor import FAILED, SUCCEEDED, RunState
from .data import CallReport, read_calls
from .graph import GraphNode, upstream_names, workflow_graph
from .usage import TaskUsage, advice, task_usage

REPORT_FILE = "report.html"


@dataclass
class RunReport:
    run_dir: Path
    state: RunState
    call_reports: List[CallReport]
    task_rows: List[TaskUsage]
    advice: List[str]  # rightsizing lines
    critical_path: List[str]  # call ids, first to last
    graph: Optional[List[GraphNode]]

    @property
    def usage_missing(self) -> int:
        """Task calls that ran to an end (not cached) without a usage figure."""
        return sum(1 for c in self.call_reports if c.state in (SUCCEEDED, FAILED) and not c.cached and not c.has_usage)

    @property
    def calls(self) -> Any:
        """One row per call attempt: a pandas DataFrame when pandas is installed, else dicts."""
        rows = []
        for call in self.call_reports:
            base = {"call": call.id, "name": call.name, "state": call.state, "cached": call.cached,
                    "ready": call.ready, "start": call.start, "end": call.end, "critical": call.id in self.critical_path,
                    "cpu_requested": call.cpu_requested, "memory_requested": call.memory_requested}
            for attempt in call.attempts or [None]:
                usage = attempt.usage if attempt else {}
                rows.append({**base, "attempt": attempt.number if attempt else None,
                             "attempt_start": attempt.start if attempt else None, "attempt_end": attempt.end if attempt else None,
                             **{key: usage.get(key) for key in ("peak_memory_bytes", "cpu_seconds", "wall_seconds")}})
        return _frame(rows)

    @property
    def tasks(self) -> Any:
        """Usage against requests per task name: a pandas DataFrame when pandas is installed."""
        return _frame([dataclasses.asdict(row) for row in self.task_rows])

    def html(self) -> str:
        from .page import report_page

        return report_page(self)

    def text(self) -> str:
        from .page import report_text

        return report_text(self)


def build_report(run_dir: os.PathLike | str, state: Optional[RunState] = None) -> RunReport:
    """`state`: the run as a monitor has already read it (saves reading the log twice)."""
    from .timeline import critical_path

    run_dir = Path(run_dir)
    state, calls = read_calls(run_dir, state)
    rows = task_usage(calls)
    graph = workflow_graph(run_dir)
    return RunReport(run_dir, state, calls, rows, advice(rows), critical_path(calls, upstream_names(graph)), graph)


def write_report_html(run_dir: os.PathLike | str, report: Optional[RunReport] = None) -> Path:
    """Write <run_dir>/report.html whole (a temporary file renamed into place)."""
    path = Path(run_dir) / REPORT_FILE
    temporary = path.with_name(f".{REPORT_FILE}.{os.getpid()}.tmp")
    temporary.write_text((report or build_report(run_dir)).html(), encoding="utf-8")
    os.replace(temporary, path)
    return path


def _frame(rows: List[dict]) -> Any:
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)
