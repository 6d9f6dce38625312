"""The project's exceptions, in one place.

Two families matter to users: the task's own command failed (`TaskFailed`) versus the machinery
failed (`BackendError`). Each exception renders as a few lines in a notebook through
``_render_traceback_`` (IPython calls it instead of printing a traceback), and every one of them is
raised, never swallowed, so a headless papermill run fails too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

_RED = "\x1b[31m"
_RESET = "\x1b[0m"


class MiniwdlJupyterError(Exception):
    """Base class: a short message, plus optional detail lines shown under it."""

    title = "Error"

    def __init__(self, message: str, *, details: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.details = list(details)

    def __str__(self) -> str:
        return "\n".join([self.message, *self.details])

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback; papermill copies them into the
        # saved notebook's error output, so keep them short and readable as plain text.
        return [f"{_RED}{self.title}{_RESET}: {self.message}", *self.details]


class WDLSourceError(MiniwdlJupyterError):
    """The WDL did not parse or typecheck."""

    title = "WDL error"

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        line: int = 0,
        column: int = 0,
        source_line: str = "",
    ):
        where = f"{source}:{line}:{column}" if line else source
        details = []
        if source_line:
            details = [f"  {source_line.rstrip()}", "  " + " " * max(column - 1, 0) + "^"]
        super().__init__(f"{where}: {message}" if where else message, details=details)
        self.source, self.line, self.column = source, line, column


class InputError(MiniwdlJupyterError, ValueError):
    """An input binding is missing, unknown, or of the wrong type."""

    title = "Input error"


class ConfigError(MiniwdlJupyterError, ValueError):
    """A configuration value or a named backend is not usable."""

    title = "Configuration error"


class RunNotFound(MiniwdlJupyterError, LookupError):
    title = "Run not found"


class RunFailed(MiniwdlJupyterError):
    """The workflow failed for a reason other than a task command's exit status."""

    title = "Run failed"

    def __init__(self, message: str, *, run_dir: Optional[Path] = None, details: Sequence[str] = (), error: Any = None):
        super().__init__(message, details=details)
        self.run_dir = run_dir
        self.error = error


class TaskFailed(RunFailed):
    """A task's own command failed: exit code, what the backend knows of why (a time limit,
    out of memory), the tail of its stderr, where its logs are."""

    title = "Task failed"

    def __init__(
        self,
        call: str,
        *,
        exit_code: Optional[int],
        reason: Optional[str] = None,
        stderr_tail: Sequence[str] = (),
        stderr_file: Optional[Path] = None,
        log_file: Optional[Path] = None,
        run_dir: Optional[Path] = None,
        error: Any = None,
    ):
        details = []
        if stderr_tail:
            details.append("--- last lines of stderr ---")
            details.extend(stderr_tail)
            details.append("---")
        if stderr_file:
            details.append(f"stderr: {stderr_file}")
        if log_file:
            details.append(f"log:    {log_file}")
        message = f"{call} exited with status {exit_code}" + (f": {reason}" if reason else "")
        super().__init__(message, run_dir=run_dir, details=details, error=error)
        self.call = call
        self.exit_code = exit_code
        self.reason = reason
        self.stderr_tail = list(stderr_tail)
        self.stderr_file = stderr_file
        self.log_file = log_file


class BackendError(RunFailed):
    """The machinery failed: daemon down, image missing, job lost, credentials. Says what to do."""

    title = "Backend error"


class Cancelled(RunFailed):
    """The run was cancelled (kernel interrupt, cancel(), SIGTERM)."""

    title = "Cancelled"


class NotebookFailed(TaskFailed):
    """A notebook step's notebook raised: names the cell and its exception, and says where the
    executed notebook and its HTML rendering were kept."""

    title = "Notebook failed"

    def __init__(self, task_failed: TaskFailed, summary: Dict[str, Any], executed_notebook: Optional[Path], html: Optional[Path]):
        super().__init__(
            task_failed.call,
            exit_code=task_failed.exit_code,
            reason=task_failed.reason,
            stderr_file=task_failed.stderr_file,
            log_file=task_failed.log_file,
            run_dir=task_failed.run_dir,
            error=task_failed.error,
        )
        self.stderr_tail = task_failed.stderr_tail
        self.message = summary.get("message") or self.message
        self.args = (self.message,)
        self.cell_index: Optional[int] = summary.get("cell_index")
        self.execution_count: Optional[int] = summary.get("execution_count")
        self.ename: str = summary.get("ename", "")
        self.evalue: str = summary.get("evalue", "")
        self.executed_notebook, self.html = executed_notebook, html
        source = (summary.get("source") or "").splitlines()
        self.details = (
            ([f"  {line}" for line in source[:6]] + (["  ..."] if len(source) > 6 else []))
            + [f"executed notebook: {executed_notebook}" if executed_notebook else "no executed notebook was written"]
            + ([f"html: {html}"] if html else [])
            + self.details
        )
