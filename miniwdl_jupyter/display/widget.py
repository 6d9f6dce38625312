"""--progress widget: an ipywidgets view of a run, live while the cell waits or (with `follow()`)
from one background thread after the cell returned.

Updates only set widget traits (traitlets send a comm message only when a value changes); nothing
here prints or display()s from a thread. The root widget's display bundle also carries the board as
HTML and text, for frontends that can't render widgets. When the run ends, `finish()` replaces the
widget with the final summary (the run record the JupyterLab extension renders, with HTML and text
fallbacks): one calm view per run, which a notebook saved without widget state shows as it was.

The log tail says what happens in words (calls starting, finishing, retrying, failing); miniwdl's
raw lines are in the folded "raw log" accordion, and the workflow graph, recoloured as calls move,
in the folded "workflow graph" one (live_graph.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional

import ipywidgets as widgets

from ..monitor import FAILED, CallGroup, CallState, RunState
from . import summary
from .html_board import LOG_TAIL_LINES, board_bundle
from .live_graph import LiveGraph
from .logtail import friendly_tail
from .record import RUN_MIME
from .progress import MIN_INTERVAL, ProgressView

EXPANDED_CALLS_SHOWN = 200  # an expanded 10,000-way scatter lists this many calls, failures first


class RunWidget(widgets.VBox):
    """The view's root box; its display bundle adds the board as HTML and plain text."""

    def __init__(self, fallback: Callable[[], Dict[str, str]], **kwargs: Any):
        super().__init__(**kwargs)
        self._fallback = fallback

    def _repr_mimebundle_(self, **kwargs: Any) -> Dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs)
        fallback = self._fallback()
        fallback.pop(RUN_MIME, None)  # the record is the final view's, not the live widget's
        data.update(fallback)
        return data


class GroupRow:
    """One call name: a toggle, a bar and counts; its calls are listed only while expanded."""

    def __init__(self, view: "WidgetView", name: str):
        self.view = view
        self.name = name
        self.toggle = widgets.ToggleButton(description=name, tooltip=f"show the calls of {name}", icon="caret-right",
                                           layout=widgets.Layout(width="16em"))
        self.bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="16em"))
        self.label = widgets.HTML()
        self.details = widgets.HTML(layout=widgets.Layout(display="none"))
        self.box = widgets.VBox([widgets.HBox([self.toggle, self.bar, self.label]), self.details])
        self._drawn: Optional[tuple] = None
        self.toggle.observe(self._on_toggle, names="value")

    def draw(self, group: CallGroup) -> None:
        key = (group.total, tuple(group.counts.values()))
        if key == self._drawn:
            return
        self._drawn = key
        self.bar.max = max(group.total, 1)
        self.bar.value = group.finished
        self.bar.bar_style = "danger" if group.counts[FAILED] else ("success" if group.finished == group.total else "")
        self.label.value = f"{group.finished:,}/{group.total:,} &nbsp; " + summary.counts_html(
            {s: group.counts[s] for s in ("running", "retrying", "failed", "cancelled", "cached")}
        ).replace("no calls yet", "")
        if self.toggle.value:
            self.details.value = self.view.calls_table(group)

    def _on_toggle(self, change: Dict[str, Any]) -> None:
        expanded = bool(change["new"])
        self.toggle.icon = "caret-down" if expanded else "caret-right"
        self.details.layout.display = None if expanded else "none"
        group = self.view.run.state.groups.get(self.name)
        # Built on demand, so a collapsed 10,000-call group costs nothing.
        self.details.value = self.view.calls_table(group) if expanded and group else ""


class WidgetView(ProgressView):
    def __init__(self, run: Any):
        super().__init__(run)
        from IPython.display import display

        self.header = widgets.HTML()
        self.bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="30em"))
        self.counts = widgets.HTML()
        self.groups_box = widgets.VBox()
        self.rows: Dict[str, GroupRow] = {}
        # The workflow graph, folded under the progress (one line until opened; the frontend
        # keeps it open across refreshes). Hidden until the graph is laid out, or if there is none.
        self.live_graph = LiveGraph(run.run_dir)
        self.graph = widgets.HTML()
        self.graph_box = widgets.Accordion(children=[self.graph], selected_index=None, layout=widgets.Layout(display="none"))
        self.graph_box.set_title(0, "workflow graph")
        self.graph_box.add_class("miniwdl-live-graph")
        self.failure = widgets.HTML()
        self.log = widgets.HTML()
        # Opening the accordion is the frontend's own business: it works while the cell blocks
        # (the kernel handles widget messages only between cells), so the raw lines are kept current.
        self.raw_log = widgets.HTML()
        self.raw_box = widgets.Accordion(children=[self.raw_log], selected_index=None)
        self.raw_box.set_title(0, "raw log")
        self.message = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="danger",
                                            tooltip="cancel the run (its containers stop)")
        self.cancel_button.on_click(self._on_cancel)
        # The kernel handles this click only once the cell stops blocking; the JupyterLab extension
        # sees the class and cancels through the server at once, naming the run by the root's
        # data-run-dir (set in the header).
        self.cancel_button.add_class("miniwdl-cancel-button")
        self.root = RunWidget(
            lambda: board_bundle(self.run.state, self, final=self.run.state.done),
            children=[
                self.header,
                widgets.HBox([self.bar, self.counts]),
                self.groups_box,
                self.graph_box,
                self.failure,
                self.log,
                self.raw_box,
                widgets.HBox([self.cancel_button, self.message]),
            ],
        )
        self.root.add_class("miniwdl-run-widget")
        self._thread: Optional[threading.Thread] = None
        self._render(run.state, final=False)
        self._handle = display(self.root, display_id=True)

    # -- drawing (traits only) -------------------------------------------------------------------
    def _render(self, state: RunState, final: bool) -> None:
        self.header.value = f"<span data-run-dir='{summary.esc(state.run_dir)}'></span>" + summary.header_html(state)
        self.bar.max = max(state.task_calls, 1)
        self.bar.value = state.finished_calls
        self.bar.bar_style = "danger" if state.counts[FAILED] or state.status == "failed" else (
            "success" if state.status == "succeeded" else "")
        self.counts.value = f"{state.finished_calls:,}/{state.task_calls:,} calls &middot; {summary.counts_html(state.counts)}"
        self._draw_groups(state)
        self._draw_graph(state)
        self._draw_failure(state)
        self._draw_log(state)
        if state.done:
            self.cancel_button.disabled = True
            self.cancel_button.layout.display = "none"
            self.root.add_class(f"miniwdl-run-{state.status}")

    def _draw_log(self, state: RunState) -> None:
        friendly = friendly_tail(state)
        self.log.value = summary.log_tail_html(friendly) if friendly else ""
        self.raw_log.value = summary.log_tail_html(list(state.log_tail)[-LOG_TAIL_LINES:]) if state.tail_events else ""

    def _draw_groups(self, state: RunState) -> None:
        groups = list(state.groups.values())[: summary.MAX_GROUP_ROWS]
        for group in groups:
            row = self.rows.get(group.name)
            if row is None:
                row = self.rows[group.name] = GroupRow(self, group.name)
                self.groups_box.children = tuple(self.groups_box.children) + (row.box,)
            row.draw(group)

    def _draw_graph(self, state: RunState) -> None:
        svg = self.live_graph.svg(state)
        if svg:  # traitlets send only what changed: an unchanged graph costs no message
            self.graph.value = svg
            self.graph_box.set_title(0, self.live_graph.title)
            self.graph_box.layout.display = None

    def _draw_failure(self, state: RunState) -> None:
        failed = self.first_failure()
        if failed is not None:
            more = len(self.failed) - 1
            self.failure.value = summary.failure_html(failed, self.stderr_tail(failed)) + (
                f"<div>and {more:,} more failed calls</div>" if more > 0 else "")
        elif state.done and state.error:
            self.failure.value = f"<div style='color:{summary.STATE_COLOURS['failed']}'>{summary.esc(summary.run_error_text(state))}</div>"

    def calls_table(self, group: CallGroup) -> str:
        """The group's calls, failed and running ones first, at most EXPANDED_CALLS_SHOWN."""
        calls = self.run.state.calls
        picked: Dict[str, CallState] = {}
        for table in (self.failed, self.active):
            for call in list(table.values()):
                if call.name == group.name and len(picked) < EXPANDED_CALLS_SHOWN:
                    picked[call.id] = call
        for call_id in group.call_ids:
            if len(picked) >= EXPANDED_CALLS_SHOWN:
                break
            if call_id not in picked and call_id in calls:
                picked[call_id] = calls[call_id]
        rows = "".join(_call_row(c) for c in picked.values())
        more = group.total - len(picked)
        tail = f"<tr><td colspan='6'>... and {more:,} more (run.calls has them all)</td></tr>" if more > 0 else ""
        return ("<table style='font-size:85%'><tr><th>call</th><th>state</th><th>exit</th><th>attempt</th>"
                f"<th>time</th><th>where</th></tr>{rows}{tail}</table>")

    # -- the API ---------------------------------------------------------------------------------
    def _final_output(self, state: RunState) -> None:
        # One view per run: the widget gives way to the final summary, in the same output.
        self._handle.update(board_bundle(state, self, final=True), raw=True)
        self._close()

    def _close(self) -> None:
        """Close the widgets' comms: the output no longer shows them."""
        _close_tree(self.root)

    def follow(self) -> None:
        """Update from one background thread, at most 5 times a second, until the run ends."""
        if self._thread is None and not self.run.state.done:
            self._thread = threading.Thread(target=self._follow, name=f"miniwdl-view-{self.run.run_dir.name}", daemon=True)
            self._thread.start()

    def _follow(self) -> None:
        while True:
            try:
                state = self.run.poll()
            except Exception as exn:  # a vanished run directory must not kill the thread noisily
                self.message.value = summary.esc(f"stopped following the run: {type(exn).__name__}: {exn}")
                return
            if state.done:
                with self._lock:
                    self._absorb(state)
                    self._render(state, final=True)
                return
            self.update(state)
            time.sleep(MIN_INTERVAL)

    def _on_cancel(self, _button: widgets.Button) -> None:
        # run.cancel() waits for miniwdl to stop (seconds): not on the kernel's message thread.
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling..."

        def cancel() -> None:
            try:
                self.run.cancel()
            except Exception as exn:
                self.message.value = summary.esc(f"cancel failed: {type(exn).__name__}: {exn}")
                self.cancel_button.disabled = False
                self.cancel_button.description = "Cancel"

        threading.Thread(target=cancel, name="miniwdl-cancel", daemon=True).start()


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _call_row(call: CallState) -> str:
    duration = f"{call.duration:.0f}s" if call.duration is not None else "-"
    colour = summary.STATE_COLOURS.get(call.state, "#555")
    return (
        f"<tr><td><code>{summary.esc(call.id)}</code></td><td style='color:{colour}'>{summary.esc(call.state)}</td>"
        f"<td>{summary.esc(call.exit_code if call.exit_code is not None else '')}</td><td>{call.attempt}</td>"
        f"<td>{duration}</td><td>{summary.esc(summary.job_text(call))}</td></tr>"
    )

