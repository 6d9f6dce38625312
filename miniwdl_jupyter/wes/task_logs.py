"""WES TaskLogs from a run directory's calls: state, exit code, command, stdout/stderr files, and
what the backend said about a failure. A call-cache hit did not run: its log, exit code and
stdout/stderr are those of the call it came from, found through the cache entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from ..call_cache import cache_origin
from ..monitor import FAILED, FINISHED_CALL_STATES, CallState
from ..run_dirs import log_files
from ..run_errors import call_backend_message
from . import states


def task_id_of(call: CallState) -> str:
    """A call id ("call-sub/call-greet-0") as a URL path segment: "/" -> "." (never in call ids)."""
    return call.id.replace("/", ".")


def task_log(run_url: str, call: CallState, cache_dir: Optional[str]) -> Dict[str, Any]:
    task_id = task_id_of(call)
    url = run_url + f"/tasks/{task_id}"
    name = call.name + (f"[{call.scatter_index}]" if call.scatter_index else "")
    log: Dict[str, Any] = {"id": task_id, "name": name, "stdout": url + "/stdout", "stderr": url + "/stderr"}
    if call.start_time:
        log["start_time"] = states.iso(call.start_time)
    if call.end_time and call.state in FINISHED_CALL_STATES:
        log["end_time"] = states.iso(call.end_time)
    origin = _origin(call, cache_dir)
    exit_code = call.exit_code if call.exit_code is not None or origin is None else _logged_exit_code(origin)
    if exit_code is not None:
        log["exit_code"] = exit_code
    command = (origin or call.dir) / "command" if call.dir else None
    if command is not None and command.is_file():
        log["cmd"] = [command.read_text(errors="replace")[:65536]]
    system_logs = [f"state={states.call_state(call)}", f"attempt={call.attempt}"]
    if call.cached:
        system_logs.append("cached=true")
        system_logs.append(
            f"cached_from={origin}: exit code, command, stdout and stderr are that call's"
            if origin
            else "cached_from=unknown: the call-cache entry it came from is gone, so its logs cannot be shown"
        )
    if call.error:
        system_logs.append("error=" + json.dumps({k: v for k, v in call.error.items() if k in ("error", "message", "exit_status")}))
    reason = call_backend_message(call.dir) if call.state == FAILED else None
    if reason:
        system_logs.append(f"reason={reason}")  # the backend's own explanation: a time limit, out of memory...
    log["system_logs"] = system_logs
    return log


def task_stream(call: CallState, stream: str, cache_dir: Optional[str]) -> Optional[Path]:
    """stdout.txt / stderr.txt of the latest attempt (miniwdl numbers retries' files 2, 3...); of
    the original call for a cache hit."""
    origin = _origin(call, cache_dir)
    folder = origin or call.dir
    if folder is None:
        return None
    best, attempt = folder / f"{stream}.txt", 2
    while (folder / f"{stream}{attempt}.txt").exists():
        best, attempt = folder / f"{stream}{attempt}.txt", attempt + 1
    return best


def _origin(call: CallState, cache_dir: Optional[str]) -> Optional[Path]:
    if not (call.cached and call.dir and cache_dir):
        return None
    return cache_origin(call.dir, cache_dir)


def _logged_exit_code(call_dir: Path) -> Optional[int]:
    """The last exit code a call's backend logged (`... task exit` {exit_code})."""
    found = None
    try:
        with open(log_files(call_dir)[1]) as log:
            for line in log:
                if '"exit_code"' in line:
                    code = json.loads(line).get("exit_code")
                    found = code if isinstance(code, int) else found
    except (OSError, ValueError):
        return None
    return found
