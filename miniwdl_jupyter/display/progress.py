"""Progress of a run, drawn from its RunState: an HTML board updated in place (display_id), or a
text line. The final summary is ordinary output, so a saved notebook shows how the run ended."""

from __future__ import annotations

import html
import sys
import threading
import time
from typing import Any, Optional

from ..monitor import CALL_STATES, RunState

_MIN_INTERVAL = 0.2  # at most 5 refreshes a second


def _summary_text(state: RunState) -> str:
    counts = ", ".join(f"{state.counts[s]} {s}" for s in CALL_STATES if state.counts[s])
    elapsed = f"{state.duration:.1f}s" if state.duration is not None else "-"
    return f"{state.name or state.run_dir.name} [{state.backend or '-'}] {state.status} {elapsed}: {state.finished_calls}/{state.task_calls} calls ({counts or 'none yet'})"


def _board_html(state: RunState) -> str:
    total = max(state.task_calls, 1)
    pct = int(100 * state.finished_calls / total)
    rows = "".join(
        f"<tr><td>{html.escape(g.name)}</td><td>{g.finished}/{g.total}</td>"
        f"<td>{html.escape(', '.join(f'{n} {s}' for s, n in g.counts.items() if n))}</td></tr>"
        for g in list(state.groups.values())[:50]
    )
    return (
        f"<div class='miniwdl-run'><b>{html.escape(state.name or state.run_dir.name)}</b> "
        f"<code>{html.escape(state.backend or '-')}</code> <b>{html.escape(state.status)}</b> "
        f"<progress max='100' value='{pct}'></progress> {state.finished_calls}/{state.task_calls}"
        f"<table>{rows}</table><div><code>{html.escape(str(state.run_dir))}</code></div></div>"
    )


class _Bundle:
    def __init__(self, state: RunState):
        self.state = state

    def _repr_html_(self) -> str:
        return _board_html(self.state)

    def __repr__(self) -> str:
        return _summary_text(self.state)


class ProgressView:
    def __init__(self, run: Any, mode: str):
        self.run = run
        self.mode = mode
        self._handle = None
        self._last = 0.0
        self._version = -1
        self._thread: Optional[threading.Thread] = None
        if mode in ("html", "auto", "widget"):
            from IPython.display import display

            self._handle = display(_Bundle(run.state), display_id=True)

    def update(self, state: RunState) -> None:
        now = time.monotonic()
        if state.version == self._version or now - self._last < _MIN_INTERVAL:
            return
        self._last, self._version = now, state.version
        if self._handle is not None:
            self._handle.update(_Bundle(state))
        elif self.mode == "text":
            sys.stdout.write("\r" + _summary_text(state)[:160])
            sys.stdout.flush()

    def finish(self, state: RunState) -> None:
        if self._handle is not None:
            self._handle.update(_Bundle(state))
        elif self.mode == "text":
            sys.stdout.write("\r" + _summary_text(state) + "\n")

    def follow(self) -> None:
        def loop() -> None:
            while True:
                state = self.run.poll()
                if self._handle is not None:
                    self._handle.update(_Bundle(state))
                if state.done:
                    return
                time.sleep(_MIN_INTERVAL)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()


def progress_view(run: Any, mode: str = "auto") -> ProgressView:
    return ProgressView(run, mode)
