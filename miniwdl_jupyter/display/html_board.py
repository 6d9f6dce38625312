"""--progress html (and headless kernels): a status board updated in place through one display_id.

The board is ordinary display_data: papermill/nbclient replace it on every update_display_data, so
the saved notebook holds exactly one board, with the final state, however long the run took.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict

from ..monitor import RunState
from . import summary
from .live_graph import LiveGraph
from .logtail import friendly_tail
from .progress import ProgressView
from .report import folded_report_html
from .record import RUN_MIME, run_record

LOG_TAIL_LINES = 12
MORE_FAILURES_LISTED = 5


JOBS_LISTED = 8  # running calls listed with their scheduler job on the live board


def board_bundle(state: RunState, view: ProgressView, final: bool, with_groups: bool = True) -> Dict[str, Any]:
    """{'text/html', 'text/plain'} of the board; the final board adds the run record (RUN_MIME) that
    the JupyterLab extension renders. The live log tail is left out of the final board: the log is
    in the run directory, and the notebook should stay small."""
    groups = list(state.groups.values()) if with_groups else []
    html_parts = [
        "<div class='miniwdl-run' style='font-size:90%;line-height:1.4'>",
        summary.header_html(state),
        f"<div>{summary.html_bar(state.finished_calls, state.task_calls, state.counts['failed'], '24em')} "
        f"{state.finished_calls:,}/{state.task_calls:,} calls &middot; {summary.counts_html(state.counts)}</div>",
        summary.groups_html(groups) if groups else "",
    ]
    text_parts = [summary.summary_text(state)] + ["  " + summary.group_text(g) for g in groups[: summary.MAX_GROUP_ROWS]]
    failed = view.first_failure()
    if failed is not None:
        tail = view.stderr_tail(failed)
        html_parts.append(summary.failure_html(failed, tail))
        text_parts.append(summary.failure_text(failed, tail))
        others = [c.id for c in itertools.islice(view.failed.values(), MORE_FAILURES_LISTED + 1) if c is not failed]
        others = others[:MORE_FAILURES_LISTED]
        if others:
            more = len(view.failed) - 1 - len(others)
            listed = ", ".join(others) + (f" and {more:,} more" if more > 0 else "")
            html_parts.append(f"<div>also failed: <code>{summary.esc(listed)}</code></div>")
            text_parts.append(f"also failed: {listed}")
    elif state.error and state.done:
        message = summary.run_error_text(state)
        html_parts.append(f"<div style='color:{summary.STATE_COLOURS['failed']}'>{summary.esc(message)}</div>")
        text_parts.append(message)
    placed = [c for c in itertools.islice(view.active.values(), JOBS_LISTED) if summary.job_text(c)] if not final else []
    if placed:  # tasks running on a scheduler or on this machine's GPUs: where each one is
        html_parts.append("<div>" + "<br>".join(f"<code>{summary.esc(c.id)}</code> {summary.esc(summary.job_text(c))}" for c in placed) + "</div>")
        text_parts += [f"  {c.id}: {summary.job_text(c)}" for c in placed]
    if not final and state.tail_events:
        html_parts.append(log_tail_html(state))
    live_graph = getattr(view, "live_graph", None)
    if not final and live_graph is not None:  # the final board has it in the folded report
        html_parts.append(live_graph_html(live_graph.svg(state)))
    if final and state.done:
        html_parts.append(_folded_report(view))
    html_parts.append(f"<div style='color:#757575'>run directory: <code>{summary.esc(state.run_dir)}</code></div></div>")
    text_parts.append(f"run directory: {state.run_dir}")
    bundle: Dict[str, Any] = {"text/html": "".join(html_parts), "text/plain": "\n".join(text_parts)}
    if final:
        bundle[RUN_MIME] = run_record(view.run, state, view)
    return bundle


def _folded_report(view: ProgressView) -> str:
    """The run report, folded away under the final board; nothing if it cannot be read."""
    try:
        return folded_report_html(view.run.report())
    except Exception as exn:  # the summary must show even when the report cannot be built
        return f"<div style='color:#757575'>no run report: {summary.esc(type(exn).__name__)}: {summary.esc(exn)}</div>"


def live_graph_html(svg: str) -> str:
    """The graph at the foot of the live board, in a box of bounded height: the board is redrawn
    whole on every refresh, so a folded <details> would fold itself again under the reader's
    cursor, and at the foot it pushes no progress out of sight. Not in the plain text."""
    if not svg:
        return ""
    return ("<div class='miniwdl-live-graph'><div style='color:#757575'>workflow graph</div>"
            f"<div style='max-height:16em;overflow:auto'>{svg}</div></div>")


def log_tail_html(state: RunState) -> str:
    """What the run is doing, in words, with miniwdl's raw lines folded away underneath."""
    raw = list(state.log_tail)[-LOG_TAIL_LINES:]
    return (
        summary.log_tail_html(friendly_tail(state))
        + "<details style='font-size:85%'><summary style='cursor:pointer;color:#757575'>raw log</summary>"
        + summary.log_tail_html(raw) + "</details>"
    )


class HtmlBoard(ProgressView):
    def __init__(self, run: Any):
        super().__init__(run)
        from IPython.display import display

        self.live_graph = LiveGraph(run.run_dir)

        self._handle = display(board_bundle(run.state, self, final=False), raw=True, display_id=True)

    def _render(self, state: RunState, final: bool) -> None:
        self._handle.update(board_bundle(state, self, final), raw=True)
