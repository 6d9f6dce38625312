"""The timeline (Gantt) of a run's calls and its critical path.

One row per call (per call name past MAX_CALL_ROWS, with the calls' bars drawn over each other, so
a 10,000-way scatter stays one readable band): waiting from ready to its command's start in grey,
each attempt in its own bar (a retried attempt in the retrying colour, the last one in the call's
final state), a cached call as a diamond, the critical path outlined.

The critical path is read from the times: from the call that finished last, step back to the call
that finished last before it became ready, and so on; where the run keeps its WDL, only calls the
workflow graph puts upstream count, so a call that merely ended just before is not taken for a cause.

`timeline()` gives the marks as data: timeline_svg draws them here, and the run record carries them
(report/plain.py) for JupyterLab's run renderer, so both show the same bars.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Set

from .data import CallReport
from .svg import STATE_COLOURS, WAITING_COLOUR, clock, esc, svg, time_axis

MAX_CALL_ROWS = 300
LABEL_WIDTH = 190
PLOT_WIDTH = 760
ROW = 16
# A call ready within this long after another ended is taken to have waited for it (log clocks
# are written at millisecond precision, and dispatch takes a moment).
DISPATCH_SLACK = 0.05


def critical_path(calls: List[CallReport], upstream: Optional[Dict[str, Set[str]]] = None) -> List[str]:
    """`upstream` (from the workflow graph, when there is one): call name -> the names it depends
    on, so that a call that merely happened to end just before is not taken for a cause."""
    finished = sorted((c for c in calls if c.end is not None), key=lambda c: c.end)
    if not finished:
        return []
    ends = [c.end for c in finished]
    path = [finished[-1]]
    on_path = {path[0].id}
    while True:
        current = path[-1]
        became_ready = current.ready if current.ready is not None else current.start
        if became_ready is None:
            break
        i = bisect.bisect_right(ends, became_ready + DISPATCH_SLACK) - 1
        allowed = upstream.get(_top_name(current)) if upstream else None
        while i >= 0 and (
            finished[i].id in on_path
            or finished[i].end >= current.end  # a short call that ended within the slack
            or (allowed is not None and _top_name(finished[i]) not in allowed)
        ):
            i -= 1
        if i < 0:
            break
        path.append(finished[i])
        on_path.add(finished[i].id)
    return [c.id for c in reversed(path)]


def _top_name(call: CallReport) -> str:
    """The workflow's own call name: a sub-workflow's calls ("sub.greet") count as its call ("sub")."""
    return call.name.split(".", 1)[0]


@dataclass
class Bar:
    """One mark on the timeline, in the run's clock (seconds since the epoch)."""

    kind: str  # "waiting" (ready to running), "attempt", "cached" (a diamond at `start`)
    call: str
    start: float
    end: float
    state: str  # an attempt's: the call's final state for its last attempt, "retrying" before
    critical: bool
    tip: str
    attempt: Optional[int] = None


@dataclass
class Row:
    label: str
    calls: int  # more than one: a band of one call name, its bars drawn faint over each other
    bars: List[Bar]


@dataclass
class Timeline:
    t0: float
    t1: float
    rows: List[Row]


def timeline(calls: List[CallReport], critical: List[str], now: Optional[float] = None,
             max_rows: int = MAX_CALL_ROWS) -> Optional[Timeline]:
    """The timeline as data (what timeline_svg draws, and the run record carries); None without calls."""
    if not calls:
        return None
    now = now or time.time()
    t0 = min(t for c in calls for t in (c.ready, c.start) if t is not None) if any(c.ready or c.start for c in calls) else now
    t1 = max([c.end or now for c in calls] + [t0 + 1])
    on_path = set(critical)
    rows = [
        Row(label, len(members), [bar for call in members for bar in _call_bars(call, t0, now, call.id in on_path)])
        for label, members in _rows(calls, max_rows).items()
    ]
    return Timeline(t0, t1, rows)


def timeline_svg(calls: List[CallReport], critical: List[str], now: Optional[float] = None) -> str:
    drawn = timeline(calls, critical, now)
    if drawn is None:
        return svg(LABEL_WIDTH + PLOT_WIDTH, 30, ["<text x='4' y='18'>no calls yet</text>"], "timeline")
    scale = PLOT_WIDTH / (drawn.t1 - drawn.t0)
    body: List[str] = []
    for i, row in enumerate(drawn.rows):
        y = 4 + i * ROW
        body.append(f"<text x='{LABEL_WIDTH - 6}' y='{y + 11}' text-anchor='end'>{esc(row.label)}</text>")
        body.extend(_bar_svg(bar, y, drawn.t0, scale, row.calls > 1) for bar in row.bars)
    axis_y = 8 + len(drawn.rows) * ROW
    body.extend(time_axis(LABEL_WIDTH, PLOT_WIDTH, axis_y, drawn.t1 - drawn.t0))
    return svg(LABEL_WIDTH + PLOT_WIDTH + 20, axis_y + 22, body, "timeline of the run's calls")


def _rows(calls: List[CallReport], max_rows: int) -> Dict[str, List[CallReport]]:
    if len(calls) <= max_rows:
        return {call.id: [call] for call in calls}
    bands: Dict[str, List[CallReport]] = {}
    for call in calls:
        bands.setdefault(call.name, []).append(call)
    return {f"{name} ({len(members):,})": members for name, members in bands.items()}


def _call_bars(call: CallReport, t0: float, now: float, critical: bool) -> List[Bar]:
    if call.cached:
        at = call.end or call.start or t0
        return [Bar("cached", call.id, at, at, "cached", critical, f"{call.id}: cached")]
    bars = []
    running = call.running
    if call.ready is not None and running is not None and running - call.ready > 0:
        bars.append(Bar("waiting", call.id, call.ready, running, "waiting", False, f"{call.id}: waited {clock(running - call.ready)}"))
    last = len(call.attempts)
    for attempt in call.attempts:
        start = attempt.start if attempt.start is not None else running
        if start is None:
            continue
        end = attempt.end if attempt.end is not None else (call.end if attempt.number == last and call.end else now)
        state = call.state if attempt.number == last else "retrying"
        tip = f"{call.id} attempt {attempt.number}: {state}, {clock(end - start)}" + _usage_tip(attempt.usage)
        bars.append(Bar("attempt", call.id, start, end, state, critical, tip, attempt.number))
    return bars


def _bar_svg(bar: Bar, y: float, t0: float, scale: float, faint: bool) -> str:
    x = LABEL_WIDTH + (bar.start - t0) * scale
    opacity = " fill-opacity='0.35'" if faint else ""
    outline = " stroke='#000' stroke-width='1.5'" if bar.critical else ""
    if bar.kind == "cached":
        return f"<path d='M{x:.1f} {y + 2} l5 5 l-5 5 l-5 -5 z' fill='{STATE_COLOURS['cached']}'{outline}><title>{esc(bar.tip)}</title></path>"
    if bar.kind == "waiting":
        return (f"<rect x='{x:.1f}' y='{y + 4}' width='{max(0.5, (bar.end - bar.start) * scale):.1f}' height='6' "
                f"fill='{WAITING_COLOUR}'{opacity}><title>{esc(bar.tip)}</title></rect>")
    return (f"<rect x='{x:.1f}' y='{y + 1}' width='{max(1.0, (bar.end - bar.start) * scale):.1f}' height='12' "
            f"fill='{STATE_COLOURS.get(bar.state, '#555')}'{opacity}{outline}><title>{esc(bar.tip)}</title></rect>")


def _usage_tip(usage: dict) -> str:
    shown = []
    if "peak_memory_bytes" in usage:
        shown.append(f"peak {usage['peak_memory_bytes'] / 2**20:,.0f} MiB")
    if "cpu_seconds" in usage:
        shown.append(f"{usage['cpu_seconds']:.1f} CPU s")
    return "; " + ", ".join(shown) if shown else ""
