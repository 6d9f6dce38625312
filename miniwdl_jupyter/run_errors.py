"""error.json (miniwdl's nested RunFailed -> cause chain) -> the exception a user sees."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Dict, List, Optional

from . import launch_record
from .errors import BackendError, Cancelled, RunFailed, TaskFailed
from .files import tail_lines
from .run_dirs import log_files

STDERR_TAIL_LINES = 20


def _evaluation_errors() -> frozenset:
    """Names of miniwdl's errors in the WDL's own evaluation (an out-of-bounds index, a failed
    read_int, a missing output...), as opposed to the machinery failing."""
    import inspect

    import WDL.Error
    import WDL.runtime.error

    names = {"OutputError", "InputError", "RunFailed"}
    for module in (WDL.Error, WDL.runtime.error):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, (WDL.Error.RuntimeError, WDL.Error.ValidationError)) and name not in ("Interrupted", "Terminated", "CommandFailed"):
                names.add(name)
    return frozenset(names)


_EVALUATION_ERRORS = _evaluation_errors()


def cause_chain(error: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """error.json's nodes from the outermost failure to the root cause."""
    chain, node = [], error
    while isinstance(node, dict):
        chain.append(node)
        node = node.get("cause")
    return chain


def backend_message(error: Optional[Dict[str, Any]]) -> Optional[str]:
    """What the backend said about a failed command (a time limit, running out of memory...).
    miniwdl writes no message for a CommandFailed, only the `more_info` a backend attached to it
    (TaskContainer.failure_info, or the CommandFailed a backend raised): a message there is the
    backend's own."""
    chain = cause_chain(error)
    root = chain[-1] if chain else {}
    message = root.get("message") if root.get("error") == "CommandFailed" else None
    return message if isinstance(message, str) and message else None


def call_backend_message(call_dir: Optional[Path]) -> Optional[str]:
    """backend_message() of a failed call, from the error.json miniwdl wrote in its directory
    (its log line drops the message: the JSON log's own `message` field takes the place)."""
    if call_dir is None:
        return None
    try:
        return backend_message(json.loads((call_dir / "error.json").read_text()))
    except (OSError, ValueError):
        return None


def is_cancellation(error: Optional[Dict[str, Any]]) -> bool:
    return any(node.get("error") in ("Terminated", "Cancelled") for node in cause_chain(error))


def error_from_json(error: Dict[str, Any], run_dir: Path, *, cancelled: bool = False) -> RunFailed:
    chain = cause_chain(error)
    root_cause = chain[-1] if chain else {}
    failed_dirs = [n.get("dir") for n in chain if n.get("dir")]
    call_dir = Path(failed_dirs[-1]) if failed_dirs else run_dir
    call = _call_label(call_dir, run_dir, chain)
    kind = root_cause.get("error", "")
    message = root_cause.get("message") or ""
    if cancelled or is_cancellation(error):
        return Cancelled(f"run {run_dir.name} was cancelled", run_dir=run_dir, error=error)
    if kind == "CommandFailed":
        stderr_file = Path(root_cause["stderr_file"]) if root_cause.get("stderr_file") else None
        return TaskFailed(
            call,
            exit_code=root_cause.get("exit_status"),
            reason=backend_message(error),
            stderr_tail=tail_lines(stderr_file, STDERR_TAIL_LINES),
            stderr_file=stderr_file,
            log_file=call_dir / "task.log",
            run_dir=run_dir,
            error=error,
        )
    if kind == "ProcessDied":
        return BackendError(process_died_message(root_cause), run_dir=run_dir, details=root_cause.get("details", []), error=error)
    details = [f"log: {log_files(call_dir)[0]}"]
    if kind in _EVALUATION_ERRORS:
        where = root_cause.get("pos") or {}
        at = f" ({_source_name(where['source'], run_dir)}:{where.get('line')})" if where.get("source") else ""
        return RunFailed(f"{call}: {kind}{at}: {message or 'failed'}", run_dir=run_dir, details=details, error=error)
    return BackendError(f"{call}: {kind}: {message}".rstrip(": "), run_dir=run_dir, details=details, error=error)


def process_died_message(error: Dict[str, Any]) -> str:
    """What happened to a miniwdl process that ended without a result, and what to do."""
    status = error.get("exit_status")
    if isinstance(status, int) and status < 0:
        try:
            how = f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            how = f"was killed by signal {-status}"
    elif isinstance(status, int):
        how = f"exited with status {status}"
    else:
        how = "is gone"
    pid = f" (pid {error['pid']})" if error.get("pid") else ""
    return (
        f"the run's miniwdl process{pid} {how} before it wrote outputs.json or error.json. "
        "Re-run it: tasks that finished come back from the call cache."
    )


def _source_name(source: str, run_dir: Path) -> str:
    """A cell's WDL is staged under a hashed name: call it `cell`, as the user knows it."""
    record = launch_record.read(run_dir) or {}
    if source == record.get("source_path"):
        return str(record.get("source") or Path(source).name)
    return Path(source).name


def _call_label(call_dir: Path, run_dir: Path, chain: List[Dict[str, Any]]) -> str:
    try:
        rel = call_dir.relative_to(run_dir)
    except ValueError:
        rel = Path(call_dir.name)
    if str(rel) not in ("", "."):
        return str(rel)
    for node in chain:
        if node.get("task"):
            return f"task {node['task']}"
        if node.get("workflow"):
            return f"workflow {node['workflow']}"
    return run_dir.name
