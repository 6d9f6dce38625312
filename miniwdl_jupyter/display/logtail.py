"""The live log tail as a person reads it: calls starting, finishing, retrying, failing, and
warnings, one short line each. miniwdl's own NOTICE/INFO lines (container names, invocation
arguments, task stderr) stay available as the raw tail (`RunState.log_tail`), behind a toggle.

Works on `RunState.tail_events` (the monitor keeps the latest 200 events), so it costs
O(tail), never O(calls).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Optional

from .. import protocol
from ..monitor import RunState

FRIENDLY_LINES = 12
_WARNING = 30


def _who(source: str, root: str) -> Optional[str]:
    """'wdl.w:wf.w:call-sub.t:call-align-3' -> 'sub/align-3'; None for the run's own logger."""
    if not root or not source.startswith(root + "."):
        return None
    parts = source[len(root) + 1:].split(".")
    names = [p.split(":", 1)[-1] for p in parts if ":" in p]
    return "/".join(n[len("call-"):] if n.startswith("call-") else n for n in names) or None


def _when(event: Dict[str, Any]) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event.get("timestamp") or 0))


def friendly_lines(events: Iterable[Dict[str, Any]], root: str, limit: int = FRIENDLY_LINES) -> List[str]:
    """The events worth a line, newest last, at most `limit`."""
    lines: List[str] = []
    exits: Dict[str, int] = {}  # the latest exit code seen per call, for "failed (exit N)"
    for event in events:
        source = event.get("source", "")
        if source.endswith(".stderr"):
            continue  # the task's own stderr: in the raw tail and in the failure's details
        message = str(event.get("message", ""))
        who = _who(source, root)
        said = None
        if who is None:
            if message == protocol.WORKFLOW_START:
                said = f"workflow {event.get('name', '')} started".replace("  ", " ")
            elif message == "aborting workflow":
                said = "stopping the workflow" + (f" (signal {event['signal']})" if event.get("signal") else "")
            elif message in (protocol.DONE, protocol.DONE_CACHED) and source == root:
                said = "workflow finished" + (" (cached)" if message == protocol.DONE_CACHED else "")
            elif event.get("levelno", 0) >= _WARNING and message != "call failure propagating":
                said = f"{event.get('level', 'warning').lower()}: {message}"
        elif message == protocol.TASK_SETUP:
            said = f"{who} started"
        elif message == protocol.DONE:
            said = f"{who} finished"
        elif message == protocol.DONE_CACHED:
            said = f"{who} reused a cached result"
        elif protocol.exit_code(event) is not None:
            exits[who] = event["exit_code"]
        elif message in protocol.RETRIED:
            code = exits.get(who)
            why = "was interrupted" if message == protocol.RETRIED_INTERRUPTED else (
                f"failed (exit {code})" if code is not None else "failed")
            said = f"{who} {why}, retrying"
        elif event.get("level") == "ERROR" and "error" in event and event.get("dir"):
            if event.get("error") == "Terminated":
                said = f"{who} cancelled"
            else:
                code = event.get("exit_status")
                said = f"{who} failed: {event['error']}" + (f" (exit {code})" if isinstance(code, int) else "")
        elif event.get("levelno", 0) >= _WARNING:
            said = f"{who}: {message}"
        if said:
            lines.append(f"{_when(event)}  {said}")
    return lines[-limit:]


def friendly_tail(state: RunState, limit: int = FRIENDLY_LINES) -> List[str]:
    return friendly_lines(list(state.tail_events), state._root_logger, limit)
