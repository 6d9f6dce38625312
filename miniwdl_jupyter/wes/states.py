"""WES states from the run's own state (the monitor's RunState and the runs API's error)."""

from __future__ import annotations

import time
from typing import Optional

from ..errors import BackendError, Cancelled
from ..monitor import CACHED, CANCELLED, FAILED, QUEUED, RETRYING, RUNNING, SUCCEEDED, CallState, RunState

UNKNOWN, WES_QUEUED, INITIALIZING, WES_RUNNING, PAUSED = "UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED"
COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR = "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"
CANCELED, CANCELING, PREEMPTED = "CANCELED", "CANCELING", "PREEMPTED"
ALL_STATES = (UNKNOWN, WES_QUEUED, INITIALIZING, WES_RUNNING, PAUSED, COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED, CANCELING, PREEMPTED)
TERMINAL_STATES = (COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED, PREEMPTED)


def run_state(state: RunState, error: Optional[Exception], *, cancel_requested: bool) -> str:
    """QUEUED/INITIALIZING/RUNNING/CANCELING while it goes; COMPLETE, EXECUTOR_ERROR (the workflow's
    own failure: a task's command, an expression, an output), SYSTEM_ERROR (the machinery:
    backend, process lost), PREEMPTED (capacity reclaimed) or CANCELED when it ends."""
    if state.status == SUCCEEDED:
        return COMPLETE
    if state.status == CANCELLED or isinstance(error, Cancelled):
        return CANCELED
    if state.status == FAILED:
        if _root_error(state.error) == "Interrupted":
            return PREEMPTED
        if isinstance(error, BackendError):
            return SYSTEM_ERROR
        return EXECUTOR_ERROR  # TaskFailed, and the workflow's own errors (eval, outputs, inputs)
    if cancel_requested:
        return CANCELING
    if state.status == QUEUED:
        return INITIALIZING  # the miniwdl process is starting (loading the WDL, staging inputs)
    return WES_RUNNING


def call_state(call: CallState) -> str:
    if call.state in (SUCCEEDED, CACHED):
        return COMPLETE
    if call.state == CANCELLED:
        return CANCELED
    if call.state == FAILED:
        kind = (call.error or {}).get("error")
        if kind == "Interrupted":
            return PREEMPTED
        if kind == "CommandFailed" or call.exit_code not in (None, 0):
            return EXECUTOR_ERROR
        return SYSTEM_ERROR
    if call.state in (RUNNING, RETRYING):
        return WES_RUNNING
    return WES_QUEUED


def _root_error(error: Optional[dict]) -> Optional[str]:
    node, kind = error, None
    while isinstance(node, dict):
        kind = node.get("error", kind)
        node = node.get("cause")
    return kind


def iso(ts: Optional[float]) -> Optional[str]:
    """WES times: ISO 8601 in UTC, "%Y-%m-%dT%H:%M:%SZ"."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
