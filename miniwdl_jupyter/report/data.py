"""What a run used and when, read from its run directory alone (so it works after a kernel restart,
for submitted and WES-mirrored runs, and for runs of other processes).

Call states, attempts and times come from the monitor (the one reader of the JSON log). Two facts
the monitor does not keep are picked from the same log in one light pass that parses only the
lines it needs: when each call became ready (its wait starts there) and its effective runtime
(the cpu and memory it asked for). Each attempt's usage is its usage file (protocol.usage_file).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import protocol
from ..monitor import CACHED, RunMonitor, RunState
from ..run_dirs import log_files

# The events this pass reads, as the bytes their JSON lines start with (miniwdl writes "message" first).
_READY = b'{"message": "ready"'
_RUNTIME = b'{"message": "effective runtime"'
# Their fields this pass keeps: "key": <a JSON string or number>
_READY_FIELDS = re.compile(rb'"(job|source|timestamp)": ("(?:[^"\\]|\\.)*"|[-0-9.eE+]+)')
_RUNTIME_FIELDS = re.compile(rb'"(cpu|memory_reservation|memory_limit|source)": ("(?:[^"\\]|\\.)*"|[-0-9.eE+]+)')


@dataclass
class Attempt:
    number: int
    start: Optional[float] = None  # when its command started (the sampler's clock), if known
    end: Optional[float] = None
    usage: Dict[str, Any] = field(default_factory=dict)  # the usage file; {} when there is none


@dataclass
class CallReport:
    id: str
    name: str
    state: str
    cached: bool
    ready: Optional[float]  # waiting starts: dispatched by the workflow
    start: Optional[float]  # the task's thread set it up
    end: Optional[float]
    attempts: List[Attempt]
    cpu_requested: Optional[float] = None
    memory_requested: Optional[int] = None  # bytes (miniwdl's memory_reservation)

    @property
    def running(self) -> Optional[float]:
        """When its first command started; its setup time when no attempt says."""
        starts = [a.start for a in self.attempts if a.start is not None]
        return min(starts) if starts else self.start

    @property
    def has_usage(self) -> bool:
        return any("cpu_seconds" in a.usage or "peak_memory_bytes" in a.usage for a in self.attempts)


def read_calls(run_dir: Path, state: Optional[RunState] = None) -> tuple[RunState, List[CallReport]]:
    """The run's state (read now unless given: a Run handle has it already) and one CallReport
    per task call, in the order they became ready."""
    state = state or RunMonitor(run_dir).poll()
    ready, runtime = _ready_and_runtime(Path(run_dir), state._root_logger)
    calls = []
    for call in state.calls.values():
        if call.kind != "task":
            continue
        attempts = [] if call.cached else _attempts(call.dir, call.attempt, call.start_time, call.end_time)
        asked = runtime.get(call.id) or _asked_in_usage(attempts)
        memory = asked.get("memory_reservation") or asked.get("memory_limit")
        calls.append(
            CallReport(
                id=call.id,
                name=call.name,
                state=call.state,
                cached=call.cached or call.state == CACHED,
                ready=ready.get(call.id, call.start_time),
                start=call.start_time,
                end=call.end_time,
                attempts=attempts,
                cpu_requested=asked.get("cpu"),
                memory_requested=int(memory) if memory else None,
            )
        )
    calls.sort(key=lambda c: (c.ready or c.start or 0, c.id))
    return state, calls


def _attempts(call_dir: Optional[Path], count: int, start: Optional[float], end: Optional[float]) -> List[Attempt]:
    attempts = []
    folder = str(call_dir) if call_dir else None
    for number in range(1, max(1, count) + 1):
        usage = _read_usage(os.path.join(folder, _usage_name(number))) if folder else {}
        attempt = Attempt(number, usage=usage)
        if isinstance(usage.get("started_at"), (int, float)):
            attempt.start = usage["started_at"]
            if isinstance(usage.get("wall_seconds"), (int, float)):
                attempt.end = attempt.start + usage["wall_seconds"]
        attempts.append(attempt)
    if count <= 1 and attempts[0].start is None:  # one attempt, its own times unknown: the call's
        attempts[0].start, attempts[0].end = start, end
    return attempts


@functools.lru_cache(maxsize=None)
def _usage_name(attempt: int) -> str:
    return protocol.usage_file(Path(), attempt).name  # the name, worked out once per attempt number


def _asked_in_usage(attempts: List[Attempt]) -> Dict[str, Any]:
    """What the call asked for, as its backend recorded it in the usage file (the log says it only
    under --verbose), in the effective runtime's words."""
    for attempt in reversed(attempts):
        if "requested_cpu" in attempt.usage or "requested_memory_bytes" in attempt.usage:
            return {"cpu": attempt.usage.get("requested_cpu"), "memory_reservation": attempt.usage.get("requested_memory_bytes")}
    return {}


def _read_usage(path: str) -> Dict[str, Any]:
    # os.open/os.read: a 10,000-call report reads 10,000 of these small files, and a file object
    # per file would cost twice the system calls' time.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}  # no sampler, or it could not write: the field is absent, not zero
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        usage = json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    return usage if isinstance(usage, dict) else {}


def _ready_and_runtime(run_dir: Path, root_logger: str) -> tuple[Dict[str, float], Dict[str, Dict[str, Any]]]:
    json_log = log_files(run_dir)[1] if root_logger else None
    ready: Dict[str, float] = {}
    runtime: Dict[str, Dict[str, Any]] = {}
    if json_log is None or not json_log.exists():
        return ready, runtime
    with open(json_log, "rb") as lines:
        for line in lines:
            if line.startswith(_READY):
                event = _fields(line, _READY_FIELDS)
                parent = _call_id(event.get("source", ""), root_logger)
                if "job" in event and parent is not None:
                    ready.setdefault(f"{parent}/{event['job']}" if parent else event["job"], event.get("timestamp"))
            elif line.startswith(_RUNTIME):
                event = _fields(line, _RUNTIME_FIELDS)
                call_id = _call_id(event.get("source", ""), root_logger)
                if call_id:
                    runtime[call_id] = event
    return ready, runtime


def _fields(line: bytes, wanted: "re.Pattern[bytes]") -> Dict[str, Any]:
    """The wanted top-level fields of a JSON log line: several times faster than parsing the
    whole line, which matters over the 10,000s of lines of a big run."""
    found: Dict[str, Any] = {}
    for key, raw in wanted.findall(line):
        try:
            if raw[:1] != b'"':
                found[key.decode()] = float(raw) if b"." in raw or b"e" in raw.lower() else int(raw)
            elif b"\\" in raw:
                found[key.decode()] = json.loads(raw)  # escapes: let JSON undo them
            else:
                found[key.decode()] = raw[1:-1].decode()
        except ValueError:
            continue
    return found


def _call_id(source: str, root_logger: str) -> Optional[str]:
    """Logger name -> call id path ("" for the run's own logger), as the monitor names calls."""
    if root_logger.startswith("wdl.t:"):  # a single-task run is its own one call
        return root_logger.split(":", 1)[1] if source == root_logger else None
    if source == root_logger:
        return ""
    if not source.startswith(root_logger + "."):
        return None
    return "/".join(part.split(":", 1)[-1] for part in source[len(root_logger) + 1:].split("."))


