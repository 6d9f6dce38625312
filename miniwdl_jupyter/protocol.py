"""The run-directory protocol: what a backend writes about a task, and all a reader may rely on.

A run directory is the only channel between the process that runs a workflow and everything that
shows it (the monitor, the views, `%wdl runs`, the WES server, the mirrors of remote runs); see
docs/design.md. Two kinds of facts cross it:

- **Events**: JSON lines in `workflow.log.json` / `task.log.json` (miniwdl's `--log-json`), each
  with `message`, `source` (the logger), `level`, `timestamp` and fields. miniwdl writes its own
  (`MINIWDL_EVENTS` below); a backend adds the `TASK_*` events through the emit helpers here, as
  miniwdl `StructuredLogMessage`s, so `miniwdl run` logs them too. Readers match the message and
  read the named fields; none parses the text of a message.
- **Files per attempt** in a call's directory: miniwdl numbers a retry's files (`work2/`,
  `stderr2.txt`...); the helpers below are the one place those names are worked out.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Dict, List, Optional

from WDL._util import StructuredLogMessage

# -- miniwdl's own events (its logger names: `wdl.w:<run>`, `wdl.w:<run>.t:<call id>`, ...) --------
WORKFLOW_START = "workflow start"  # {dir}
TASK_SETUP = "task setup"  # {dir}: the call's directory exists, the attempt is being prepared
READY, FINISH = "ready", "finish"  # {job}: a workflow dispatched / collected one of its calls
DONE, DONE_CACHED = "done", "done (cached)"
RETRIED_FAILED, RETRIED_INTERRUPTED = "failed task will be retried", "interrupted task will be retried"
RETRIED = (RETRIED_FAILED, RETRIED_INTERRUPTED)
MINIWDL_EVENTS = (WORKFLOW_START, TASK_SETUP, READY, FINISH, DONE, DONE_CACHED, *RETRIED)
# A failure is an ERROR event with fields `error` (the exception's class name), `dir`, `message`,
# and for a failed command `exit_status` and `stderr_file`. error == "Terminated": cancelled.

# -- a backend's events (every one carries `backend`, the container backend's name) ----------------
TASK_STARTED = "task started"  # the attempt was handed to its runtime: {container | pid | job_id}
TASK_RUNNING = "task running"  # the command truly runs now: {pid, container, job_id, node, log_stream}
TASK_JOB = "task job"  # a scheduler's job changed: {job_id, state, node, log_stream, queue, reason}
TASK_WAITING = "task waiting"  # still waiting for a resource (a WARNING): {job_id, what, seconds}
TASK_EXIT = "task exit"  # the command ended: {exit_code, explanation (the backend's, if it has one)}
TASK_USAGE = "task usage"  # what the attempt used: {cpu_seconds, max_rss_bytes, wall_seconds}
TASK_GPUS = "task gpus"  # the GPUs reserved for the attempt on this machine: {gpus (device ids), seconds_waited}
BACKEND_EVENTS = (TASK_STARTED, TASK_RUNNING, TASK_JOB, TASK_WAITING, TASK_EXIT, TASK_USAGE, TASK_GPUS)
# Where a scheduler runs a task: the fields of TASK_JOB (and of TASK_RUNNING/TASK_EXIT when known)
JOB_FIELDS = ("job_id", "state", "node", "log_stream", "queue", "reason")
# Run directories written before this protocol: "<backend> task running", aws_batch's `status`
_LEGACY_RUNNING = re.compile(r"^[a-z_]+ task running$")

_LEVELS = {"DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARNING": 30, "ERROR": 40}


# -- emitting (backends) ---------------------------------------------------------------------------


def _emit(logger: logging.Logger, level: int, message: str, backend: str, fields: Dict[str, Any]) -> None:
    shown = {k: v for k, v in fields.items() if v is not None}
    logger.log(level, StructuredLogMessage(message, backend=backend, **shown))


def task_started(logger: logging.Logger, backend: str, **where: Any) -> None:
    _emit(logger, _LEVELS["INFO"], TASK_STARTED, backend, where)


def task_running(logger: logging.Logger, backend: str, **where: Any) -> None:
    """Emit when the command truly starts (with miniwdl's `task_running_context`)."""
    _emit(logger, _LEVELS["NOTICE"], TASK_RUNNING, backend, where)


def job_state(
    logger: logging.Logger, backend: str, job_id: Any, state: str, *, node: Optional[str] = None,
    log_stream: Optional[str] = None, queue: Optional[str] = None, reason: Optional[str] = None, **more: Any,
) -> None:
    fields = dict(job_id=job_id, state=state, node=node, log_stream=log_stream, queue=queue, reason=reason or None, **more)
    _emit(logger, _LEVELS["NOTICE"], TASK_JOB, backend, fields)


def task_waiting(logger: logging.Logger, backend: str, what: str, seconds: float, **where: Any) -> None:
    _emit(logger, _LEVELS["WARNING"], TASK_WAITING, backend, dict(what=what, seconds=int(seconds), **where))


def task_exit(logger: logging.Logger, backend: str, exit_code: int, message: Optional[str] = None, **where: Any) -> None:
    """`message`: the backend's explanation of an ending it knows more about (a time limit, OOM)."""
    _emit(logger, _LEVELS["NOTICE"], TASK_EXIT, backend, dict(exit_code=exit_code, explanation=message, **where))


def task_usage(logger: logging.Logger, backend: str, **usage: Any) -> None:
    _emit(logger, _LEVELS["INFO"], TASK_USAGE, backend, usage)


def task_gpus(logger: logging.Logger, backend: str, gpus: List[str], seconds_waited: float) -> None:
    _emit(logger, _LEVELS["NOTICE"], TASK_GPUS, backend, dict(gpus=list(gpus), seconds_waited=round(seconds_waited, 3)))


# -- reading (the monitor, the views) --------------------------------------------------------------


def is_running(event: Dict[str, Any]) -> bool:
    message = event.get("message", "")
    return message == TASK_RUNNING or bool(_LEGACY_RUNNING.match(message))


def exit_code(event: Dict[str, Any]) -> Optional[int]:
    """The exit code a TASK_EXIT event reports (also miniwdl's and older backends' exit events)."""
    code = event.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def exit_message(event: Dict[str, Any]) -> Optional[str]:
    return event.get("explanation") if event.get("message") == TASK_EXIT else None


def job_facts(event: Dict[str, Any]) -> Dict[str, Any]:
    """Where a scheduler runs the task, from any event that names a job (empty: none)."""
    if "job_id" not in event:
        return {}
    facts = {k: event[k] for k in JOB_FIELDS if k in event}
    if "state" not in facts and "status" in event:  # aws_batch before this protocol
        facts["state"] = event["status"]
    return facts


# -- files of one attempt (a call's directory; attempt 1 is the first try) ------------------------


def _numbered(stem: str, attempt: int, suffix: str = "") -> str:
    return f"{stem}{attempt if attempt > 1 else ''}{suffix}"


def work_dir(call_dir: Path, attempt: int = 1) -> Path:
    return Path(call_dir) / _numbered("work", attempt)


def stdout_file(call_dir: Path, attempt: int = 1) -> Path:
    return Path(call_dir) / _numbered("stdout", attempt, ".txt")


def stderr_file(call_dir: Path, attempt: int = 1) -> Path:
    return Path(call_dir) / _numbered("stderr", attempt, ".txt")


def exit_status_file(call_dir: Path, attempt: int = 1) -> Path:
    """Written by a job on another machine when its command ends: the exit status as text, for when
    the scheduler cannot say it."""
    return Path(call_dir) / _numbered("exit_status", attempt, ".txt")


def usage_file(call_dir: Path, attempt: int = 1) -> Path:
    """What the attempt used, written by usage_sampler.py (JSON: peak_memory_bytes, cpu_seconds,
    wall_seconds, samples, source; a field it could not read is absent)."""
    return Path(call_dir) / _numbered("usage", attempt, ".json")


def latest_attempt(call_dir: Path) -> int:
    """The highest attempt whose work directory exists (1 when none does yet)."""
    numbers = [int(m.group(1) or 1) for p in Path(call_dir).glob("work*") if (m := re.fullmatch(r"work(\d*)", p.name))]
    return max(numbers, default=1)


def read_exit_status(path: Path) -> Optional[int]:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


# -- writing a run directory from elsewhere (the mirrors of remote runs) ---------------------------


def task_logger_name(root: str, call_path: str) -> str:
    """The logger miniwdl would give call `call_path` ("call-sub/call-greet-0") under run logger `root`."""
    parts = call_path.split("/")
    return ".".join([root] + [f"w:{p}" for p in parts[:-1]] + [f"t:{parts[-1]}"])


class LogWriter:
    """Appends events to a run's JSON log (and its plain log) in miniwdl's `--log-json` shape, for
    processes that mirror a run executed elsewhere (a WES server, an AWS head job): the monitor
    then reads the mirror as it reads a local run."""

    def __init__(self, json_log: IO[str], plain_log: Optional[IO[str]], root: str):
        self.json_log, self.plain_log, self.root = json_log, plain_log, root

    def event(self, source: str, text: str, level: str = "INFO", ts: Optional[float] = None, **fields: Any) -> None:
        """`text` is the event's `message` (a `message` among `fields` gives way to it, as in miniwdl)."""
        ts = ts or time.time()
        record = {**fields, "message": text, "source": source, "timestamp": ts, "level": level, "levelno": _LEVELS[level]}
        self.json_log.write(json.dumps(record) + "\n")
        self.json_log.flush()
        if self.plain_log is not None:
            stamp = datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
            self.plain_log.write(f"{stamp} {source} {level} {text} {json.dumps(fields) if fields else ''}\n")
            self.plain_log.flush()

    # the run's own events
    def run_started(self, run_dir: Path, **fields: Any) -> None:
        self.event(self.root, WORKFLOW_START, "NOTICE", dir=str(run_dir), **fields)

    def run_done(self) -> None:
        self.event(self.root, DONE, "NOTICE")

    def run_failed(self, error: Dict[str, Any]) -> None:
        self.event(self.root, "workflow failed", "ERROR", **error)

    # a call's events, by its path in the run directory
    def task_setup(self, call_path: str, call_dir: Path, ts: Optional[float] = None, **fields: Any) -> None:
        self.event(task_logger_name(self.root, call_path), TASK_SETUP, "INFO", ts=ts, dir=str(call_dir), **fields)

    def task_exit(self, call_path: str, backend: str, exit_code: int, ts: Optional[float] = None) -> None:
        self.event(task_logger_name(self.root, call_path), TASK_EXIT, "NOTICE", ts=ts, backend=backend, exit_code=exit_code)

    def task_done(self, call_path: str, cached: bool = False, ts: Optional[float] = None) -> None:
        self.event(task_logger_name(self.root, call_path), DONE_CACHED if cached else DONE, "NOTICE", ts=ts)

    def task_failed(self, call_path: str, name: str, error: str, call_dir: Path, ts: Optional[float] = None, **fields: Any) -> None:
        """A failure event as miniwdl writes it (`error` "Terminated" is a cancel)."""
        self.event(task_logger_name(self.root, call_path), f"task {name} failed", "ERROR", ts=ts, error=error, dir=str(call_dir), **fields)
