"""The run record: a run's final state as JSON, the `application/vnd.miniwdl-jupyter.run+json`
output that the JupyterLab extension renders (its src/runview.ts). The final summary carries it
beside its HTML and text, so a saved notebook shows how the run ended without widget state, without
re-running, and in an untrusted notebook (the renderer builds its DOM from text only). An ended
run's record also carries its run report as plain data (`report`: report/plain.py), which the
renderer draws as a folded section with SVG built element by element.

Bounded like the views: O(call groups + outputs shown), whatever the number of calls; the report's
data has its own caps.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..monitor import CALL_STATES, RunState
from ..report.plain import report_data
from . import summary
from .links import href

RUN_MIME = "application/vnd.miniwdl-jupyter.run+json"
RECORD_VERSION = 1
MAX_OUTPUTS = 50
MAX_ITEMS = 50  # items of an array (or entries of a map) listed per output
ALSO_FAILED_LISTED = 5


def _file(path: Path) -> Dict[str, Any]:
    return {"$file": str(path), "href": href(path)}


def _value(value: Any) -> Any:
    """A Python output value as JSON, Paths as file references; long collections cut short."""
    if isinstance(value, os.PathLike):
        return _file(Path(value))
    if isinstance(value, dict):
        items = list(itertools.islice(value.items(), MAX_ITEMS))
        out = {str(k): _value(v) for k, v in items}
        if len(value) > MAX_ITEMS:
            out["..."] = f"{len(value) - MAX_ITEMS:,} more"
        return out
    if isinstance(value, (list, tuple)):
        out_list = [_value(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out_list.append(f"... {len(value) - MAX_ITEMS:,} more")
        return out_list
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _outputs(run: Any, state: RunState) -> List[Dict[str, Any]]:
    if state.status != "succeeded":
        return []
    try:
        values = run.outputs
    except Exception:  # a record must not fail the cell: the outputs are rendered elsewhere too
        return []
    return [{"name": name, "value": _value(v)} for name, v in itertools.islice(values.items(), MAX_OUTPUTS)]


def _report(run: Any) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(the run report as plain data, None) or (None, why not): the record must not fail the cell.
    `run.report()` is kept once the run has ended, so the folded HTML section beside it reuses it."""
    try:
        return report_data(run.report()), None
    except Exception as exn:
        return None, f"{type(exn).__name__}: {exn}"


def run_record(run: Any, state: RunState, view: Any) -> Dict[str, Any]:
    """The record of `state` (a run's final state); `view` is the ProgressView that followed it."""
    groups = list(state.groups.values())
    record: Dict[str, Any] = {
        "version": RECORD_VERSION,
        "name": summary.run_title(state),
        "run_dir": str(state.run_dir),
        "status": state.status,
        "backend": state.backend,
        "start_time": state.start_time,
        "duration": round(state.duration, 1) if state.duration is not None else None,
        "calls": {
            "total": state.task_calls,
            "finished": state.finished_calls,
            "counts": {s: state.counts[s] for s in CALL_STATES if state.counts[s]},
        },
        "groups": [
            {"name": g.name, "total": g.total, "finished": g.finished, "counts": {s: g.counts[s] for s in CALL_STATES if g.counts[s]}}
            for g in groups[: summary.MAX_GROUP_ROWS]
        ],
        "more_groups": max(len(groups) - summary.MAX_GROUP_ROWS, 0),
        "failure": None,
        "error": summary.run_error_text(state) if state.error and state.done else None,
        "outputs": _outputs(run, state),
        "attach": f"%wdl attach {state.run_dir.name}",
    }
    if state.done:
        record["report"], record["report_error"] = _report(run)
    failed = view.first_failure()
    if failed is not None:
        path = summary.stderr_path(failed)
        others = [c.id for c in itertools.islice(view.failed.values(), ALSO_FAILED_LISTED + 1) if c is not failed][:ALSO_FAILED_LISTED]
        record["failure"] = {
            "call": failed.id,
            "state": failed.state,
            "exit_code": failed.exit_code,
            "reason": summary.failure_reason(failed),
            "log": str(failed.dir / "task.log") if failed.dir else None,
            "stderr": str(path) if path else None,
            "stderr_tail": view.stderr_tail(failed),
            "also_failed": others,
            "more_failed": max(len(view.failed) - 1 - len(others), 0),
        }
    return record
