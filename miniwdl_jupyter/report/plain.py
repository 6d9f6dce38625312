"""The report as compact plain data: what the run record carries for JupyterLab's run renderer
(src/report.ts draws it with DOM and SVG elements, no HTML parsed), so a reopened untrusted
notebook still shows the report.

The numbers, the timeline's marks, the graph's node states and every text shown come from the
same functions that draw report.html (timeline.timeline, graph.GraphLayout and node_state,
page.usage_cells...), so the two never disagree; only pixels are left to the renderer. Times are
seconds from the run's first call becoming ready.

Bounded whatever the run's size, so a notebook stays small: at most MAX_ROWS timeline rows (one per
call up to that many calls, else one band per call name), MAX_BARS marks in all (a band keeps its
critical-path marks and an even sample of the rest), MAX_NODES graph nodes (scatters and
conditionals are one node each already), MAX_TASKS usage rows; each list says how many it left out.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .graph import GraphLayout, counts_text, node_state, report_states
from .page import TIMELINE_LEGEND, USAGE_HEAD, duration_text, missing_why, usage_cells
from .svg import axis_ticks, clock
from .timeline import Bar, timeline

if TYPE_CHECKING:
    from . import RunReport

REPORT_DATA_VERSION = 1
MAX_ROWS = 100
MAX_BARS = 400
MAX_NODES = 60
MAX_TASKS = 50
MAX_ADVICE = 20
MAX_PATH = 12
NO_GRAPH = "no workflow graph: the run directory keeps no WDL"


def report_data(report: "RunReport") -> Dict[str, Any]:
    state = report.state
    return {
        "version": REPORT_DATA_VERSION,
        "calls": len(report.call_reports),
        "duration": duration_text(state),
        "cpu_hours": round(sum(row.cpu_hours for row in report.task_rows), 6),
        "usage_missing": report.usage_missing,
        "usage_missing_why": missing_why() if report.usage_missing else None,
        "advice": report.advice[:MAX_ADVICE],
        "more_advice": max(len(report.advice) - MAX_ADVICE, 0),
        "critical_path": report.critical_path[:MAX_PATH],
        "more_critical": max(len(report.critical_path) - MAX_PATH, 0),
        "timeline": _timeline(report),
        "usage": {
            "head": list(USAGE_HEAD),
            "rows": [{**_rounded(dataclasses.asdict(row)), "cells": list(usage_cells(row))} for row in report.task_rows[:MAX_TASKS]],
            "more": max(len(report.task_rows) - MAX_TASKS, 0),
        },
        "graph": _graph(report),
    }


def _timeline(report: "RunReport") -> Optional[Dict[str, Any]]:
    drawn = timeline(report.call_reports, report.critical_path, report.state.end_time, max_rows=MAX_ROWS)
    if drawn is None:
        return None
    rows = drawn.rows[:MAX_ROWS]
    per_row = max(2, MAX_BARS // max(1, len(rows)))
    left_out = sum(len(row.bars) for row in drawn.rows[MAX_ROWS:])
    shown_rows = []
    for row in rows:
        bars = _sample(row.bars, per_row)
        left_out += len(row.bars) - len(bars)
        shown_rows.append({"label": row.label, "calls": row.calls, "bars": [_bar(bar, drawn.t0) for bar in bars]})
    seconds = drawn.t1 - drawn.t0
    return {
        "seconds": round(seconds, 3),
        "ticks": [{"at": tick, "label": clock(tick)} for tick in axis_ticks(seconds)],
        "legend": TIMELINE_LEGEND,
        "rows": shown_rows,
        "more_rows": max(len(drawn.rows) - MAX_ROWS, 0),
        "more_bars": left_out,
    }


def _sample(bars: List[Bar], limit: int) -> List[Bar]:
    """Every critical-path mark, and evenly spread others up to `limit` (a band's outline survives)."""
    if len(bars) <= limit:
        return bars
    critical = [bar for bar in bars if bar.critical][:limit]
    others = sorted((bar for bar in bars if not bar.critical), key=lambda bar: bar.start)
    room = max(limit - len(critical), 0)
    if room == 1:
        picked = others[:1]
    else:
        picked = [others[round(i * (len(others) - 1) / (room - 1))] for i in range(room)] if room else []
    return critical + picked


def _bar(bar: Bar, t0: float) -> Dict[str, Any]:
    shown = {"kind": bar.kind, "call": bar.call, "start": round(bar.start - t0, 3), "end": round(bar.end - t0, 3),
             "state": bar.state, "tip": bar.tip}
    if bar.critical:
        shown["critical"] = True
    if bar.attempt is not None:
        shown["attempt"] = bar.attempt
    return shown


def _graph(report: "RunReport") -> Dict[str, Any]:
    if not report.graph:
        return {"nodes": [], "more": 0, "missing": NO_GRAPH}
    kept = report.graph[:MAX_NODES]  # in the workflow's order: a kept node's inputs come before it
    ids = {node.id for node in kept}
    states_of = report_states(report.call_reports)
    nodes = []
    for node, _x, _y, _h, listed, more in GraphLayout(kept).placed:  # which calls a group lists: as report.html
        own = sum((states_of(name) for name in node.calls), Counter())
        lines = [{"name": name, "state": node_state(states_of(name)), "counts": counts_text(states_of(name))} for name in listed]
        nodes.append({
            "id": node.id, "label": node.label, "group": node.label.startswith(("scatter", "if")), "layer": node.layer,
            "after": sorted(node.after & ids), "state": node_state(own), "counts": counts_text(own), "lines": lines, "more": more,
        })
    return {"nodes": nodes, "more": len(report.graph) - len(kept), "missing": None}


def _rounded(row: Dict[str, Any]) -> Dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in row.items()}
