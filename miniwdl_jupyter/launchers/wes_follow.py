"""Follow a run on a WES server and mirror it into its local run directory, in miniwdl's shape.

    python -m miniwdl_jupyter.launchers.wes_follow RUN_DIR

Started by the `wes` launcher in its own session. Like a miniwdl process it holds an exclusive
flock on `workflow.log` while the remote run goes (that is how the monitor knows it is running),
appends JSON log events to `workflow.log.json` as the server's task logs change (a task's start,
exit code and end, in the events the monitor reads), and ends with `outputs.json` (the server's
outputs) or `error.json` (a failed task with its exit code and the stderr fetched from the
server's URL, a system error, a cancel). What it has already written is kept in
`.miniwdl_jupyter/wes_follow.json`, so a restarted follower carries on without repeating events.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from .. import config, launch_record, protocol
from ..errors import MiniwdlJupyterError
from ..wes.client import Unreachable, WESClient

_logger = logging.getLogger("miniwdl_jupyter.wes.follow")
TERMINAL = ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED")
FAILED_STATES = ("EXECUTOR_ERROR", "SYSTEM_ERROR", "PREEMPTED")
_OUR_TASK_ID = re.compile(r"^call-[A-Za-z0-9_]+(-[A-Za-z0-9_-]+)?(\.call-[A-Za-z0-9_]+(-[A-Za-z0-9_-]+)?)*$")


class Follower:
    def __init__(self, run_dir: Path, plain_log: Any, client: WESClient, run_id: str, name: str, poll_seconds: float, give_up_seconds: float):
        self.run_dir = run_dir
        self.client = client
        self.run_id = run_id
        self.poll_seconds = poll_seconds
        self.give_up_seconds = give_up_seconds
        self.state_file = launch_record.meta_dir(run_dir) / "wes_follow.json"
        try:
            self.saved: Dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            self.saved = {"state": None, "tasks": {}, "started": False}
        # the locked workflow.log is the plain log: main() releases it once the run has ended
        self.log = protocol.LogWriter(open(run_dir / "workflow.log.json", "a"), plain_log, f"wdl.w:{name}")

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        if not self.saved["started"]:
            self.log.run_started(self.run_dir, wes_run_id=self.run_id, wes_url=self.client.base)
            self.saved["started"] = True
            self._save()
        failing_since: Optional[float] = None
        interval = min(0.25, self.poll_seconds)
        while True:
            try:
                state = self.client.status(self.run_id)
                self._sync_tasks(state)
                failing_since = None
            except Unreachable as exn:
                failing_since = failing_since or time.time()
                if time.time() - failing_since > self.give_up_seconds:
                    self._end_with_error({"error": "WESUnreachable", "message": str(exn)})
                    return 1
                _logger.warning("%s (retrying)", exn)
                time.sleep(min(30.0, max(interval, 2.0)))
                continue
            if state != self.saved["state"]:
                self.log.event(self.log.root, f"WES state {state}", "NOTICE", state=state)
                self.saved["state"] = state
                self._save()
            if state in TERMINAL:
                self._finish(state)
                return 0
            time.sleep(interval)
            interval = min(interval * 1.5, self.poll_seconds)

    def _sync_tasks(self, run_state: str) -> None:
        for task in self.client.tasks(self.run_id):
            task_id = str(task.get("id") or task.get("name") or "")
            if not task_id:
                continue
            seen = self.saved["tasks"].setdefault(task_id, {"phase": "new"})
            state = _task_state(task)
            call_path = _call_path(task_id, str(task.get("name") or task_id))
            call_dir = self.run_dir / call_path
            start, end = _epoch(task.get("start_time")), _epoch(task.get("end_time"))
            if seen["phase"] == "new" and (start or state != "QUEUED"):
                self.log.task_setup(call_path, call_dir, ts=start, wes_task_id=task_id)
                seen["phase"] = "running"
            if seen["phase"] == "running" and state in TERMINAL:
                exit_code = task.get("exit_code")
                if isinstance(exit_code, int):
                    self.log.task_exit(call_path, "wes", exit_code, ts=end)
                if state == "COMPLETE":
                    self.log.task_done(call_path, cached="cached=true" in (task.get("system_logs") or []), ts=end)
                elif state == "CANCELED":
                    self.log.task_failed(call_path, str(task.get("name", task_id)), "Terminated", call_dir, ts=end)
                else:
                    stderr_file = self._fetch(task.get("stderr"), protocol.stderr_file(call_dir))
                    error = {"EXECUTOR_ERROR": "CommandFailed", "PREEMPTED": "Interrupted"}.get(state, "WESSystemError")
                    fields: Dict[str, Any] = {"message": _task_message(task, state)}
                    if error == "CommandFailed":  # as miniwdl writes one: a message only from the backend
                        fields.pop("message")
                        fields.update(_backend_reason(task))
                    if isinstance(exit_code, int):
                        fields["exit_status"] = exit_code
                    if stderr_file:
                        fields["stderr_file"] = str(stderr_file)
                    self.log.task_failed(call_path, str(task.get("name", task_id)), error, call_dir, ts=end, **fields)
                    seen["failure"] = {"error": error, "dir": str(call_dir), **fields}
                seen["phase"] = "done"
        self._save()

    def _finish(self, state: str) -> None:
        log = self.client.run_log(self.run_id)
        _write_json(launch_record.meta_dir(self.run_dir) / "wes_run_log.json", log)
        self._sync_tasks(state)  # the last task ends may have come with the final state
        stdout = self.client.text((log.get("run_log") or {}).get("stdout") or "")
        if stdout:
            (self.run_dir / "wes_stdout.txt").write_text(stdout)
        if state == "COMPLETE":
            self.log.run_done()
            _write_json(self.run_dir / "outputs.json", log.get("outputs") or {})
            return
        system_logs = (log.get("run_log") or {}).get("system_logs") or []
        message = "; ".join(str(s) for s in system_logs[:3]) or f"the WES run ended {state}"
        if state == "CANCELED":
            error = {"error": "Terminated", "message": "the run was cancelled on the WES server"}
        elif state == "EXECUTOR_ERROR":
            failures = [t["failure"] for t in self.saved["tasks"].values() if t.get("failure", {}).get("error") == "CommandFailed"]
            cause = failures[0] if failures else {"error": "WorkflowFailed", "message": message}
            error = {"error": "RunFailed", "message": message, "cause": cause}
        elif state == "PREEMPTED":
            error = {"error": "Interrupted", "message": message}
        else:
            error = {"error": "WESSystemError", "message": message}
        self._end_with_error(error)

    def _end_with_error(self, error: Dict[str, Any]) -> None:
        self.log.run_failed(error)
        _write_json(self.run_dir / "error.json", error)

    # -- writing -----------------------------------------------------------------------------------
    def _fetch(self, url: Optional[str], target: Path) -> Optional[Path]:
        if not url:
            return None
        text = self.client.text(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def _save(self) -> None:
        _write_json(self.state_file, self.saved)

def _task_state(task: Dict[str, Any]) -> str:
    """Our server says the state in system_logs (`state=...`); others are judged by times and exit code."""
    for line in task.get("system_logs") or []:
        if isinstance(line, str) and line.startswith("state="):
            return line[len("state="):]
    exit_code = task.get("exit_code")
    if task.get("end_time") or exit_code is not None:
        return "COMPLETE" if exit_code in (0, None) else "EXECUTOR_ERROR"
    return "RUNNING" if task.get("start_time") else "QUEUED"


def _task_message(task: Dict[str, Any], state: str) -> str:
    for line in task.get("system_logs") or []:
        if isinstance(line, str) and line.startswith("error="):
            try:
                return str(json.loads(line[len("error="):]).get("message") or state)
            except ValueError:
                break
    return f"task {task.get('name', task.get('id'))} ended {state} on the WES server"


def _backend_reason(task: Dict[str, Any]) -> Dict[str, str]:
    """{"message": the backend's explanation of a failed command} from our server's `reason=`."""
    for line in task.get("system_logs") or []:
        if isinstance(line, str) and line.startswith("reason="):
            return {"message": line[len("reason="):]}
    return {}


def _call_path(task_id: str, name: str) -> str:
    """Our server's task ids are call paths ("call-sub.call-greet-0"); other servers' ids become
    `call-<name>-<id>` so the monitor groups them by name."""
    if _OUR_TASK_ID.match(task_id):
        return task_id.replace(".", "/")
    base = re.sub(r"\[.*\]$", "", name)
    clean_name = re.sub(r"[^A-Za-z0-9_]", "_", base) or "task"
    clean_id = re.sub(r"[^A-Za-z0-9_-]", "_", task_id)
    return f"call-{clean_name}-{clean_id}"


def _epoch(text: Optional[str]) -> Optional[float]:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def main(argv: Optional[list] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    run_dir = Path((argv or sys.argv[1:])[0]).absolute()
    record = launch_record.read(run_dir)
    if not record or record.get("launcher") != "wes":
        _logger.error("%s has no WES launch record", run_dir)
        return 2
    plain = open(run_dir / "workflow.log", "a")
    try:
        fcntl.flock(plain.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        _logger.info("another follower holds %s; leaving it to that one", run_dir / "workflow.log")
        return 0
    cfg = config.load()  # this follower's own process: its entry point
    token = os.environ.get("MINIWDL__WES__TOKEN") or config.option(cfg, "wes", "token")
    poll = config.option(cfg, "wes", "poll_seconds", "float")
    give_up = config.option(cfg, "wes", "give_up_seconds", "float")
    with WESClient(record["wes_url"], token or None) as client:
        follower = Follower(run_dir, plain, client, record["wes_run_id"], record.get("name") or "wes_run", poll, give_up)
        try:
            return follower.run()
        except MiniwdlJupyterError as exn:  # refused (token revoked, run gone): say so and end the run
            follower._end_with_error({"error": "WESError", "message": str(exn)})
            return 1
        finally:
            plain.close()


if __name__ == "__main__":
    sys.exit(main())
