"""--progress text (and plain Python scripts): one line per step of progress, never one per tick.

Lines go out when the run's status changes or another tenth of the known calls finishes, so a log
or a saved notebook holds at most ~12 lines however long the run takes. Outside a kernel they go to
stderr, so a script's own stdout stays clean.
"""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

from ..monitor import RunState
from . import summary
from .modes import ipython_kernel
from .progress import ProgressView


class TextLine(ProgressView):
    def __init__(self, run: Any, stream: Optional[TextIO] = None):
        super().__init__(run)
        self.stream = stream or (sys.stdout if ipython_kernel() is not None else sys.stderr)
        self._said: Optional[tuple] = None

    def _render(self, state: RunState, final: bool) -> None:
        tenth = int(10 * state.finished_calls / state.task_calls) if state.task_calls else 0
        step = (state.status, tenth)
        if step == self._said and not final:
            return
        if final and self._said in (("final",), step):
            self._said = ("final",)  # the ended state was the last line already: not twice
            return
        self._said = ("final",) if final else step
        print(summary.summary_text(state), file=self.stream, flush=True)

    def follow(self) -> None:
        """--no-wait (and attach to a running run): show the state once, now, from the cell's own
        thread, as the html board does when it is created. A thread must not print (its lines would
        land in whatever cell runs then): `%wdl wait RUN` shows the rest."""
        with self._lock:
            self._render(self.run.state, final=False)

    def _final_output(self, state: RunState) -> None:
        failed = self.first_failure()
        if failed is not None:
            print(summary.failure_text(failed, self.stderr_tail(failed)), file=self.stream, flush=True)
