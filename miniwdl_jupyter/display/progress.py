"""The progress view's common part: absorbing RunStates at a bounded rate, and the factory.

A view is fed RunStates (by `Run.wait(on_poll=view.update)` on the cell's thread, or by its own
`follow()` thread) and keeps, from each poll's `state.changed`, the few calls it shows one by one:
failed calls and running ones. So a refresh costs O(call groups + changed calls), never O(calls).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

from ..monitor import FAILED, RETRYING, RUNNING, CallState, RunState
from . import summary

MIN_INTERVAL = 0.2  # seconds between refreshes: at most 5 a second
_SHOWN_ONE_BY_ONE = (FAILED, RUNNING, RETRYING)


class ProgressView:
    """Base of the views. Subclasses draw in `_render(state, final)`."""

    def __init__(self, run: Any):
        self.run = run
        self.failed: Dict[str, CallState] = {}  # insertion order = order they failed in
        self.active: Dict[str, CallState] = {}  # running or retrying
        self._stderr_tails: Dict[str, List[str]] = {}
        self._last_render = 0.0
        self._rendered_version = -1
        self._lock = threading.Lock()  # update() may come from the cell and from follow()'s thread
        self._absorb(run.state)

    # -- the API the magic uses ------------------------------------------------------------------
    def update(self, state: RunState) -> None:
        """Absorb one poll's changes; redraw if the last redraw is older than MIN_INTERVAL."""
        with self._lock:
            self._absorb(state)
            now = time.monotonic()
            if now - self._last_render < MIN_INTERVAL:
                return
            if state.version == self._rendered_version and state.done:
                return  # while running, redraw anyway: the elapsed time moves
            self._last_render, self._rendered_version = now, state.version
            self._render(state, final=False)

    def finish(self, state: RunState) -> None:
        """Draw the final state; views add an ordinary (non-widget) summary output."""
        with self._lock:
            self._absorb(state)
            self._render(state, final=True)
            self._final_output(state)

    def follow(self) -> None:
        """Keep updating after the cell returns (--no-wait). Only the widget can: other views would
        have to display() from a thread, which lands in whatever cell runs then."""

    # -- for subclasses --------------------------------------------------------------------------
    def _render(self, state: RunState, final: bool) -> None:
        raise NotImplementedError

    def _final_output(self, state: RunState) -> None:
        """Ordinary output after the run ends (the in-place views already are ordinary output)."""

    def first_failure(self) -> Optional[CallState]:
        """The call that failed first by its own error (the monitor also marks calls still running
        when the run failed as failed, without an error of their own)."""
        for call in self.failed.values():
            if call.error:
                return call
        return next(iter(self.failed.values()), None)

    def stderr_tail(self, call: CallState) -> List[str]:
        """The failed call's stderr tail, read once per call (not on every refresh)."""
        if call.id not in self._stderr_tails:
            self._stderr_tails[call.id] = summary.stderr_tail(call)
        return self._stderr_tails[call.id]

    # -- bookkeeping -----------------------------------------------------------------------------
    def _absorb(self, state: RunState) -> None:
        changed = [state.calls[c] for c in list(state.changed) if c in state.calls]
        self._track_in_time_order(changed)
        # A poll made elsewhere (run.status, another view) consumes `changed`: rescan, rarely.
        if state.counts[FAILED] != len(self.failed) or state.counts[RUNNING] + state.counts[RETRYING] != len(self.active):
            self.failed.clear()
            self.active.clear()
            self._track_in_time_order(list(state.calls.values()))

    def _track_in_time_order(self, calls: List[CallState]) -> None:
        # Only calls that are or were shown one by one change the tables: the first poll of a
        # 100,000-call run changes every call, and sorting them all would cost a third of a second.
        failed, active = self.failed, self.active
        calls = [c for c in calls if c.state in _SHOWN_ONE_BY_ONE or c.id in failed or c.id in active]
        # `changed` is a set: order it, so the "first failure" is the one that failed first.
        for call in sorted(calls, key=lambda c: c.end_time or c.start_time or 0.0):
            self._track(call)

    def _track(self, call: CallState) -> None:
        if call.kind != "task":
            return
        for table, states in ((self.failed, (FAILED,)), (self.active, (RUNNING, RETRYING))):
            if call.state in states:
                table[call.id] = call
            else:
                table.pop(call.id, None)


class NoView(ProgressView):
    """--progress none: nothing at all (a failed run still raises in the magic)."""

    def _render(self, state: RunState, final: bool) -> None:
        pass
