"""What a run is doing, as the monitor reads it from its run directory: the run's status, each
call's state, per-name groups with incremental counts, and the latest log events (formatted only
when read)."""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Set, Union

# Run statuses and call states (the words users see).
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
RETRYING, CACHED = "retrying", "cached"
CALL_STATES = (QUEUED, RUNNING, RETRYING, SUCCEEDED, CACHED, FAILED, CANCELLED)
FINISHED_CALL_STATES = (SUCCEEDED, CACHED, FAILED, CANCELLED)
LOG_TAIL_LINES = 200
_NOT_SHOWN = ("message", "source", "timestamp", "level", "levelno", "thread", "traceback")


@dataclass
class CallState:
    id: str  # path of the call's directory relative to the run dir, e.g. "call-sub/call-greet-0-a"
    name: str  # the call's name path without scatter indices, e.g. "sub.greet"
    scatter_index: Optional[str] = None  # e.g. "0-a" (index and tag as in the directory name)
    kind: str = "task"  # "task" or "workflow" (a sub-workflow call)
    state: str = QUEUED
    dir: Optional[Path] = None  # a Path when read (see the property after the class)
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    exit_code: Optional[int] = None
    attempt: int = 1
    # Where a scheduler runs it (from backend events that carry a job_id): job id, state or
    # status, node, log stream... the latest value of each.
    job: Dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    error: Optional[Dict[str, Any]] = None  # the failure's fields from the log
    gpus: List[str] = field(default_factory=list)  # the devices reserved for it on this machine
    waiting_for: Optional[str] = None  # what it waits for before it can start ("a GPU")
    # Why it ran instead of coming from the call cache, one line per difference ([] when cached);
    # filled by Run.calls once the run has ended (cache_why.py).
    not_cached: Optional[List[str]] = None

    @property
    def duration(self) -> Optional[float]:
        if self.start_time is None:
            return None
        return (self.end_time or time.time()) - self.start_time


def _get_call_dir(call: CallState) -> Optional[Path]:
    folder = call._dir
    if folder is not None and not isinstance(folder, Path):
        folder = call._dir = Path(folder)
    return folder


def _set_call_dir(call: CallState, folder: Union[Path, str, None]) -> None:
    call._dir = folder


# `CallState.dir` may be given as text and becomes a Path when first read: the monitor's first read
# of a 100,000-call run would otherwise spend a third of a second making Paths nobody reads. (Set
# after the dataclass is made, so that its __init__, repr and == go through the property.)
CallState.dir = property(_get_call_dir, _set_call_dir)  # type: ignore[assignment]


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
        return [format_event(e, self._root_logger) for e in self.tail_events]

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


def format_event(event: Dict[str, Any], root_logger: str) -> str:
    """One log event as a line: time, level, which call, message and its fields."""
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
