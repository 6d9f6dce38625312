"""Incremental reader of a miniwdl run directory -> RunState.

The run directory is the single source of truth (DESIGN.md). `RunMonitor.poll()` reads only the JSON
log lines appended since the previous poll, so its cost follows what happened since then, not the
run's size. Whether the run is still going comes from the exclusive flock miniwdl holds on
`workflow.log` (or `task.log`) for the whole run, and from outputs.json / error.json: a run whose
process died is reported failed, never running forever.
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Set

from WDL.runtime.config import Loader

from . import config, launch_record
from .errors import ConfigError
from .files import tail_lines
from .launchers import get_launcher
from .run_dirs import is_locked, log_files
from .run_errors import is_cancellation, process_died_message

# Run statuses and call states (the words users see).
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
RETRYING, CACHED = "retrying", "cached"
CALL_STATES = (QUEUED, RUNNING, RETRYING, SUCCEEDED, CACHED, FAILED, CANCELLED)
FINISHED_CALL_STATES = (SUCCEEDED, CACHED, FAILED, CANCELLED)
# A run whose process is gone but whose log was written this recently may still be writing its
# outputs.json/error.json (they land just after the log lock is released).
_GRACE_SECONDS = 5.0
# A launch record without the launcher's handle (pid, job id) yet: the launching process is
# between writing the record and starting the process. Past this, it died doing so.
_STARTING_SECONDS = 120.0
LOG_TAIL_LINES = 200
_VALUE_EVENTS = ("visit", "input", "output", "eval")
_VALUE_EVENT_PREFIXES = tuple(f'{{"message": "{m}"'.encode() for m in _VALUE_EVENTS)
# Backend event fields that say where a task runs on a scheduler (slurm, aws_batch).
_JOB_FIELDS = ("job_id", "state", "status", "node", "log_stream", "queue")
_NOT_SHOWN = ("message", "source", "timestamp", "level", "levelno", "thread", "traceback")


@dataclass
class CallState:
    id: str  # path of the call's directory relative to the run dir, e.g. "call-sub/call-greet-0-a"
    name: str  # the call's name path without scatter indices, e.g. "sub.greet"
    scatter_index: Optional[str] = None  # e.g. "0-a" (index and tag as in the directory name)
    kind: str = "task"  # "task" or "workflow" (a sub-workflow call)
    state: str = QUEUED
    dir: Optional[Path] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    exit_code: Optional[int] = None
    attempt: int = 1
    # Where a scheduler runs it (from backend events that carry a job_id): job id, state or
    # status, node, log stream... the latest value of each.
    job: Dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    error: Optional[Dict[str, Any]] = None  # the failure's fields from the log
    # Why it ran instead of coming from the call cache, one line per difference ([] when cached);
    # filled by Run.calls once the run has ended (cache_why.py).
    not_cached: Optional[List[str]] = None

    @property
    def duration(self) -> Optional[float]:
        if self.start_time is None:
            return None
        return (self.end_time or time.time()) - self.start_time


@dataclass
class CallGroup:
    """All calls of one call name (a scatter is one group), with counts kept incrementally."""

    name: str
    counts: Dict[str, int] = field(default_factory=lambda: {s: 0 for s in CALL_STATES})
    call_ids: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.call_ids)

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINISHED_CALL_STATES)


@dataclass
class RunState:
    run_dir: Path
    name: str = ""
    status: str = QUEUED
    backend: Optional[str] = None
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    calls: Dict[str, CallState] = field(default_factory=dict)
    groups: Dict[str, CallGroup] = field(default_factory=dict)  # task calls only, by call name
    counts: Dict[str, int] = field(default_factory=lambda: {s: 0 for s in CALL_STATES})
    outputs: Optional[Dict[str, Any]] = None  # outputs.json as written (namespaced keys)
    error: Optional[Dict[str, Any]] = None  # error.json as written, or a synthesized one
    tail_events: Deque[Dict[str, Any]] = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL_LINES))
    changed: Set[str] = field(default_factory=set)  # call ids changed by the latest poll
    version: int = 0  # bumps whenever anything changed

    @property
    def log_tail(self) -> List[str]:
        """The latest notices, warnings, errors and task stderr lines, formatted (only when read:
        a long run's log has far more lines than anyone reads)."""
        return [_format_event(e, self._root_logger) for e in self.tail_events]

    _root_logger: str = ""

    @property
    def done(self) -> bool:
        return self.status in (SUCCEEDED, FAILED, CANCELLED)

    @property
    def task_calls(self) -> int:
        return sum(g.total for g in self.groups.values())

    @property
    def finished_calls(self) -> int:
        return sum(self.counts[s] for s in FINISHED_CALL_STATES)

    @property
    def duration(self) -> Optional[float]:
        if self.start_time is None:
            return None
        return (self.end_time or time.time()) - self.start_time


def _call_name_and_index(call_id: str) -> tuple[str, Optional[str]]:
    # "call-greet-0-a" -> ("greet", "0-a"); WDL identifiers never contain "-".
    body = call_id[len("call-"):] if call_id.startswith("call-") else call_id
    name, _, index = body.partition("-")
    return name, (index or None)


class RunMonitor:
    """Reads a run directory incrementally. Not thread-safe: one poller per monitor."""

    def __init__(self, run_dir: os.PathLike | str, cfg: Optional[Loader] = None):
        self.run_dir = Path(run_dir).absolute()
        self.cfg = cfg  # for launchers that ask a scheduler whether the run is alive
        self.state = RunState(run_dir=self.run_dir)
        self._offset = 0
        self._partial = b""
        self._root_logger: Optional[str] = None
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
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        for line in lines:
            # INFO events that carry values (visit/input/output/eval) are most of a verbose log
            # and change no state: skip them before paying for json.loads.
            if not line.strip() or line.startswith(_VALUE_EVENT_PREFIXES):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self._apply(event)

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
            self._finish(CANCELLED if is_cancellation(state.error) else FAILED)
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
        if self.cfg is None:
            self.cfg = config.load()
        try:
            answer = get_launcher(record.get("launcher")).alive(record, self.cfg)
        except ConfigError:
            return None  # its launcher is not installed here
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
        details = [f"last log line: {_format_event(state.tail_events[-1], self._root_logger or '')}"] if state.tail_events else []
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
        state = self.state
        source = event.get("source", "")
        message = event.get("message", "")
        ts = event.get("timestamp")
        if self._root_logger is None and source.startswith("wdl."):
            self._root_logger = source.split(".")[0] + "." + source.split(".")[1]
            state._root_logger = self._root_logger
            state.name = state.name or source.split(":", 1)[-1].split(".")[0]
        if source == self._root_logger and message in ("workflow start", "task setup"):
            state.start_time = state.start_time or ts
            if state.status == QUEUED:
                self._set_status(RUNNING)
        self._tail(event)
        call_path = self._call_path(source)
        if call_path is None:  # the run's own logger
            if message == "ready" and "job" in event and source == self._root_logger:
                self._call(event["job"])
            elif message == "finish" and "job" in event and source == self._root_logger:
                self._finish_call(self._call(event["job"]), ts)
            return
        prefix, is_task, leaf = call_path
        if message == "ready" and "job" in event and not is_task:
            self._call(f"{leaf}/{event['job']}")
            return
        if message == "finish" and "job" in event and not is_task:
            self._finish_call(self._call(f"{leaf}/{event['job']}"), ts)
            return
        if source.endswith(".stderr"):
            return
        call = self._call(leaf, kind="task" if is_task else "workflow")
        if "job_id" in event:
            fields = {k: v for k, v in event.items() if k in _JOB_FIELDS}
            if fields != {k: call.job.get(k) for k in fields}:
                call.job.update(fields)
                state.changed.add(call.id)
                state.version += 1
        if message in ("task setup", "workflow start"):
            call.dir = Path(event["dir"]) if "dir" in event else self.run_dir / call.id
            call.start_time = call.start_time or ts
            if call.state == QUEUED:
                self._set_call_state(call, RUNNING)
        elif message == "done (cached)":
            call.cached = True
            call.end_time = ts
            self._set_call_state(call, CACHED)
        elif message == "done" and is_task:
            call.end_time = ts
            self._set_call_state(call, SUCCEEDED)
        elif message in ("failed task will be retried", "interrupted task will be retried"):
            call.attempt += 1
            call.exit_code = None
            self._set_call_state(call, RETRYING)
        elif "exit_code" in event and isinstance(event["exit_code"], int):
            call.exit_code = event["exit_code"]
            if call.state == RETRYING:
                self._set_call_state(call, RUNNING)
        elif event.get("level") == "ERROR" and "error" in event and event.get("dir"):
            call.error = {k: v for k, v in event.items() if k not in ("source", "timestamp", "levelno", "level")}
            if isinstance(event.get("exit_status"), int):
                call.exit_code = event["exit_status"]
            call.end_time = ts
            self._set_call_state(call, CANCELLED if event.get("error") == "Terminated" else FAILED)
        elif call.state == RETRYING and message.endswith("running"):
            self._set_call_state(call, RUNNING)

    def _call_path(self, source: str) -> Optional[tuple[str, bool, str]]:
        """Logger name -> (parent path, is_task, call id path), or None for the run's own logger.
        A single-task run (`--task`) is its own one call, named after the task."""
        if self._root_logger and self._root_logger.startswith("wdl.t:"):
            if source == self._root_logger or source == self._root_logger + ".stderr":
                return "", True, self._root_logger.split(":", 1)[1]
        if not self._root_logger or not source.startswith(self._root_logger + "."):
            return None
        rest = source[len(self._root_logger) + 1:]
        if rest.endswith(".stderr"):
            rest = rest[: -len(".stderr")]
        segments = rest.split(".")
        ids = [s.split(":", 1)[-1] for s in segments]
        return "/".join(ids[:-1]), segments[-1].startswith("t:"), "/".join(ids)

    def _call(self, call_id: str, kind: Optional[str] = None) -> CallState:
        # A "ready" job is taken for a task until its own logger says "workflow start".
        call = self.state.calls.get(call_id)
        if call is None:
            parts = [_call_name_and_index(p) for p in call_id.split("/")]
            call = CallState(
                id=call_id,
                name=".".join(n for n, _ in parts),
                scatter_index=parts[-1][1],
                kind=kind or "task",
                dir=None,
            )
            self.state.calls[call_id] = call
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

    def _tail(self, event: Dict[str, Any]) -> None:
        if event.get("levelno", 0) >= 15 and event.get("message") not in _VALUE_EVENTS:
            self.state.tail_events.append(event)


def _format_event(event: Dict[str, Any], root_logger: str) -> str:
    source = event.get("source", "")
    who = source[len(root_logger) + 1 :] if root_logger and source.startswith(root_logger + ".") else ""
    ts = time.strftime("%H:%M:%S", time.localtime(event.get("timestamp") or 0))
    text = event.get("message", "")
    extra = {k: v for k, v in event.items() if k not in _NOT_SHOWN}
    if extra and not source.endswith(".stderr"):
        text += " " + " ".join(f"{k}={_short(v)}" for k, v in extra.items())
    return f"{ts} {event.get('level', '')[:7]:7} {who or '-'} {text}"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
