"""Incremental reader of a miniwdl run directory -> RunState.

The run directory is the single source of truth (docs/design.md), read by the run-directory
protocol (protocol.py). `RunMonitor.poll()` reads only the JSON log lines appended since the
previous poll, so its cost follows what happened since then, not the run's size. Whether the run
is still going comes from the exclusive flock miniwdl holds on `workflow.log` (or `task.log`) for
the whole run, from outputs.json / error.json, and, when neither says, from the run's launcher
(asked through the callback the runs layer passes): a run whose process died is reported failed,
never running forever.
"""

from __future__ import annotations

import gc
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from . import launch_record, protocol
from .files import tail_lines
from .json_log import VALUE_EVENTS
from .json_log import events as json_log_events
from .run_dirs import is_locked, log_files
from .run_errors import is_cancellation, process_died_message
from .run_state import (  # noqa: F401 - the run-state names are read from here too
    CACHED,
    CALL_STATES,
    CANCELLED,
    FAILED,
    FINISHED_CALL_STATES,
    LOG_TAIL_LINES,
    QUEUED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    CallGroup,
    CallState,
    RunState,
    format_event,
)

# Asks a run's launcher whether its process is still queued or running (None: cannot tell).
AliveCheck = Callable[[Dict[str, Any]], Optional[bool]]

# A run whose process is gone but whose log was written this recently may still be writing its
# outputs.json/error.json (they land just after the log lock is released).
_GRACE_SECONDS = 5.0
# A launch record without the launcher's handle (pid, job id) yet: the launching process is
# between writing the record and starting the process. Past this, it died doing so.
_STARTING_SECONDS = 120.0
_RUN_STARTS = (protocol.TASK_SETUP, protocol.WORKFLOW_START)
_READY, _FINISH, _DONE, _DONE_CACHED, _RETRIED = protocol.READY, protocol.FINISH, protocol.DONE, protocol.DONE_CACHED, protocol.RETRIED
_UNSEEN = object()
_GC_PAUSE_BYTES = 1 << 20


def _call_name_and_index(call_id: str) -> tuple[str, Optional[str]]:
    # "call-greet-0-a" -> ("greet", "0-a"); WDL identifiers never contain "-".
    body = call_id[len("call-"):] if call_id.startswith("call-") else call_id
    name, _, index = body.partition("-")
    return name, (index or None)


class RunMonitor:
    """Reads a run directory incrementally. Not thread-safe: one poller per monitor."""

    def __init__(self, run_dir: os.PathLike | str, alive: Optional[AliveCheck] = None):
        """`alive(launch_record)`: the runs layer's question to the run's launcher. Without it, a
        launched run whose log is unlocked and has no result is judged by its launch time alone."""
        self.run_dir = Path(run_dir).absolute()
        self._ask_launcher = alive
        self.state = RunState(run_dir=self.run_dir)
        self._offset = 0
        self._partial = b""
        self._root_logger: Optional[str] = None
        self._paths: Dict[str, Optional[tuple[bool, str, bool]]] = {}  # logger name -> _call_path()
        self._launch = launch_record.read(self.run_dir)
        if self._launch:
            self.state.name = str(self._launch.get("name") or "")
            self.state.backend = self._launch.get("backend")
            started = self._launch.get("start_time")
            self.state.start_time = started if isinstance(started, (int, float)) else None

    # -- reading -------------------------------------------------------------------------------
    def poll(self) -> RunState:
        state = self.state
        if state.done:
            return state  # final: nothing more to read, and `changed` stays for its reader
        state.changed = set()
        plain_log, json_log = log_files(self.run_dir)
        # Decide "finished" from the lock *before* reading, so we read every line it wrote.
        running = is_locked(plain_log)
        self._read_new_lines(json_log)
        if not running:
            self._settle(plain_log)
        elif state.status == QUEUED:
            self._set_status(RUNNING)
        return state

    def _read_new_lines(self, json_log: Path) -> None:
        try:
            with open(json_log, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        self._offset += len(chunk)
        data = self._partial + chunk if self._partial else chunk  # (a big first read: no copy)
        complete = data.rfind(b"\n") + 1
        self._partial = data[complete:]  # an incomplete last line waits for the next poll
        # A big first read makes a few objects per call that all live on: the cyclic collector
        # would walk them over and over while they are made (a sixth of the read) and free none.
        pause_gc = complete > _GC_PAUSE_BYTES and gc.isenabled()
        if pause_gc:
            gc.disable()
        try:
            apply = self._apply
            for event in json_log_events(memoryview(data)[:complete]):
                apply(event)
        finally:
            if pause_gc:
                gc.enable()

    def _settle(self, plain_log: Path) -> None:
        """The log is not locked here: the run ended, has not started, runs on another host, or its
        process died. The launcher, not the lock, says which (a lock held on another host is
        invisible over NFS)."""
        state = self.state
        outputs, error = self.run_dir / "outputs.json", self.run_dir / "error.json"
        if outputs.exists():
            state.outputs = _read_json(outputs)
            self._finish(SUCCEEDED)
            return
        if error.exists():
            state.error = _read_json(error)
            # A failure written after a cancel was asked for is the cancel's doing (e.g. a cluster
            # task job the cancel stopped, seen by miniwdl before its own SIGTERM): cancelled.
            asked = launch_record.cancel_requested_at(self.run_dir)
            by_cancel = asked is not None and asked <= (_mtime(error) or 0)
            self._finish(CANCELLED if is_cancellation(state.error) or by_cancel else FAILED)
            return
        if self._launch is not None or launch_record.path(self.run_dir).exists():
            # Re-read: the launcher adds its pid or job id after the record is first written.
            self._launch = launch_record.read(self.run_dir) or self._launch
        alive = self._alive(plain_log)
        if alive:
            if plain_log.exists() and state.status == QUEUED:
                self._set_status(RUNNING)
        elif alive is False:
            self._died()

    def _alive(self, plain_log: Path) -> Optional[bool]:
        """True: still starting or running; False: gone without a result; None: can't tell."""
        record = self._launch
        if record is None:  # a run started outside miniwdl-jupyter (`miniwdl run`)
            if plain_log.exists():  # it may be writing its result right now
                return time.time() - plain_log.stat().st_mtime < _GRACE_SECONDS
            return None
        answer = self._ask_launcher(record) if self._ask_launcher else None
        if answer is None and not _launched(record):
            return time.time() - float(record.get("launch_time") or 0) < _STARTING_SECONDS
        return answer

    def _died(self) -> None:
        state, record = self.state, self._launch or {}
        if launch_record.cancel_requested(self.run_dir):
            state.error = {"error": "Cancelled", "message": "the run was cancelled"}
            self._finish(CANCELLED)
            return
        died = {"error": "ProcessDied", "pid": record.get("pid"), "exit_status": record.get("exit_status")}
        died["message"] = process_died_message(died)
        details = [f"last log line: {format_event(state.tail_events[-1], self._root_logger or '')}"] if state.tail_events else []
        details += _plain_lines(launch_record.stderr_path(self.run_dir))
        details.append(f"miniwdl's own output: {launch_record.stderr_path(self.run_dir)}")
        died["details"] = details
        state.error = died
        self._finish(FAILED)

    def _finish(self, status: str) -> None:
        state = self.state
        state.end_time = state.end_time or _mtime(self.run_dir / ("outputs.json" if status == SUCCEEDED else "error.json"))
        # Calls that never reported an end can't still be running once the run is over: miniwdl
        # stopped them (a failing neighbour, a cancel) or the process died.
        for call in state.calls.values():
            if call.state in (QUEUED, RUNNING, RETRYING):
                self._set_call_state(call, CANCELLED)
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        if self.state.status != status:
            self.state.status = status
            self.state.version += 1

    # -- events --------------------------------------------------------------------------------
    def _apply(self, event: Dict[str, Any]) -> None:
        # Runs once per log line (half a million for a 100,000-call run): the common events take
        # the shortest path, and fields most events lack are looked up only when present.
        state = self.state
        source = event.get("source", "")
        message = event.get("message", "")
        ts = event.get("timestamp")
        call_path = self._paths.get(source, _UNSEEN)
        if call_path is _UNSEEN:
            call_path = self._first_seen(source)
        if message in _RUN_STARTS and source == self._root_logger:
            state.start_time = state.start_time or ts
            if state.status == QUEUED:
                self._set_status(RUNNING)
        if event.get("levelno", 0) >= 15 and message not in VALUE_EVENTS:
            state.tail_events.append(event)
        if call_path is None:  # the run's own logger
            if message == _READY and "job" in event and source == self._root_logger:
                self._call(event["job"])
            elif message == _FINISH and "job" in event and source == self._root_logger:
                self._finish_call(self._call(event["job"]), ts)
            return
        is_task, leaf, is_stderr = call_path
        if message == _READY and "job" in event and not is_task:
            self._call(f"{leaf}/{event['job']}")
            return
        if message == _FINISH and "job" in event and not is_task:
            self._finish_call(self._call(f"{leaf}/{event['job']}"), ts)
            return
        if is_stderr:
            return
        kind = "task" if is_task else "workflow"
        call = state.calls.get(leaf)
        if call is None or call.kind != kind:
            call = self._call(leaf, kind=kind)
        if "job_id" in event:
            fields = protocol.job_facts(event)
            if fields != {k: call.job.get(k) for k in fields}:
                call.job.update(fields)
                state.changed.add(call.id)
                state.version += 1
        exit_code = protocol.exit_code(event) if "exit_code" in event else None
        if message in _RUN_STARTS:
            call.dir = event["dir"] if "dir" in event else self.run_dir / call.id  # text: a Path when read
            call.start_time = call.start_time or ts
            if call.state == QUEUED:
                self._set_call_state(call, RUNNING)
        elif message == _DONE_CACHED:
            call.cached = True
            call.end_time = ts
            self._set_call_state(call, CACHED)
        elif message == _DONE and is_task:
            call.end_time = ts
            self._set_call_state(call, SUCCEEDED)
        elif message in _RETRIED:
            call.attempt += 1
            call.exit_code = None
            self._set_call_state(call, RETRYING)
        elif message in (protocol.TASK_WAITING, protocol.TASK_GPUS):
            call.waiting_for = event.get("what") if message == protocol.TASK_WAITING else None
            call.gpus = [str(g) for g in event.get("gpus", [])] if message == protocol.TASK_GPUS else call.gpus
            state.changed.add(call.id)
            state.version += 1
        elif exit_code is not None:
            call.exit_code = exit_code
            if call.state == RETRYING:
                self._set_call_state(call, RUNNING)
        elif "error" in event and event.get("level") == "ERROR" and event.get("dir"):
            call.error = {k: v for k, v in event.items() if k not in ("source", "timestamp", "levelno", "level")}
            if isinstance(event.get("exit_status"), int):
                call.exit_code = event["exit_status"]
            call.end_time = ts
            self._set_call_state(call, CANCELLED if event.get("error") == "Terminated" else FAILED)
        elif call.state == RETRYING and protocol.is_running(event):
            self._set_call_state(call, RUNNING)

    def _first_seen(self, source: str) -> Optional[tuple[bool, str, bool]]:
        """A logger not seen before: the run's own logger if none is known yet, and its call path
        (remembered: it never changes once the root logger is known, from the first "wdl." line)."""
        state = self.state
        if self._root_logger is None and source.startswith("wdl."):
            self._root_logger = source.split(".")[0] + "." + source.split(".")[1]
            state._root_logger = self._root_logger
            state.name = state.name or source.split(":", 1)[-1].split(".")[0]
        call_path = self._paths[source] = self._call_path(source)
        return call_path

    def _call_path(self, source: str) -> Optional[tuple[bool, str, bool]]:
        """Logger name -> (is_task, call id path, is its stderr), or None for the run's own logger.
        A single-task run (`--task`) is its own one call, named after the task."""
        if self._root_logger and self._root_logger.startswith("wdl.t:"):
            if source == self._root_logger or source == self._root_logger + ".stderr":
                return True, self._root_logger.split(":", 1)[1], source.endswith(".stderr")
        if not self._root_logger or not source.startswith(self._root_logger + "."):
            return None
        rest = source[len(self._root_logger) + 1:]
        if rest.endswith(".stderr"):
            rest = rest[: -len(".stderr")]
        segments = rest.split(".")
        ids = [s.split(":", 1)[-1] for s in segments]
        return segments[-1].startswith("t:"), "/".join(ids), source.endswith(".stderr")

    def _call(self, call_id: str, kind: Optional[str] = None) -> CallState:
        # A "ready" job is taken for a task until its own logger says "workflow start".
        call = self.state.calls.get(call_id)
        if call is None:
            if "/" in call_id:  # in a sub-workflow: "call-sub/call-greet-0" -> "sub.greet"
                parts = [_call_name_and_index(p) for p in call_id.split("/")]
                name, index = ".".join([n for n, _ in parts]), parts[-1][1]
            else:
                name, index = _call_name_and_index(call_id)
            call = self.state.calls[call_id] = CallState(call_id, name, index, kind or "task")
            if call.kind == "task":
                self._count(call, +1)
            self.state.changed.add(call_id)
            self.state.version += 1
        elif kind and kind != call.kind:
            if call.kind == "task":
                self._count(call, -1)
            call.kind = kind
            if kind == "task":
                self._count(call, +1)
        return call

    def _finish_call(self, call: CallState, ts: Optional[float]) -> None:
        call.end_time = call.end_time or ts
        if call.kind == "workflow" and call.state not in FINISHED_CALL_STATES:
            self._set_call_state(call, SUCCEEDED)

    def _count(self, call: CallState, delta: int) -> None:
        group = self.state.groups.get(call.name)
        if group is None:
            group = self.state.groups[call.name] = CallGroup(call.name)
        if delta > 0:
            group.call_ids.append(call.id)
        else:
            group.call_ids.remove(call.id)
        if call.state in group.counts:
            group.counts[call.state] += delta
            self.state.counts[call.state] += delta
        if not group.call_ids:  # a "ready" job that turned out to be a sub-workflow
            del self.state.groups[call.name]

    def _set_call_state(self, call: CallState, new_state: str) -> None:
        if call.state == new_state:
            return
        if call.kind == "task":
            group = self.state.groups[call.name]
            for counts in (group.counts, self.state.counts):
                if call.state in counts:
                    counts[call.state] -= 1
                if new_state in counts:
                    counts[new_state] += 1
        call.state = new_state
        self.state.changed.add(call.id)
        self.state.version += 1


def _launched(record: Dict[str, Any]) -> bool:
    """Has the launcher recorded its handle on the process (a pid, a job id)?"""
    return any(key in record for key in ("pid", "job_id", "exit_status"))


def _plain_lines(stderr: Path, n: int = 3) -> List[str]:
    """The last lines miniwdl printed that are not JSON log lines (a Python traceback's end)."""
    return [line for line in tail_lines(stderr, 200) if line.strip() and not line.startswith("{")][-n:]


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
