"""A Batch job's CloudWatch log, read onwards from where the last read stopped: for following a
head job from a terminal (`miniwdl-jupyter submit --follow`) and for the mirror of a run whose
directory this machine cannot see."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from WDL.runtime.config import Loader

from ..errors import BackendError
from . import api
from .jobs import TERMINAL, log_stream

LOG_GROUP = "/aws/batch/job"  # where Batch sends a job's output by default


def read_new(
    cfg: Loader, stream: str, token: Optional[str], settings: Optional[Dict[str, str]] = None
) -> Tuple[List[str], Optional[str]]:
    """The messages of log stream `stream` after `token` (None: from its start), and the token to
    read on from next time."""
    messages: List[str] = []
    while True:
        params: Dict[str, Any] = dict(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
        if token:
            params["nextToken"] = token
        try:
            page = api.call(cfg, "get_log_events", service="logs", settings=settings, **params)
        except BackendError:  # the stream appears a little after the job starts
            return messages, token
        messages += [event.get("message", "") for event in page.get("events", [])]
        if page.get("nextForwardToken") in (None, token):
            return messages, token
        token = page["nextForwardToken"]


def follow(record: Dict[str, Any], cfg: Loader, write: Callable[[str], Any], poll: float = 2.0) -> str:
    """Copy the head job's log (miniwdl's stderr) to `write` until the job ends; returns its final
    status. For following a run from a machine that does not see its run directory."""
    settings = api.settings_of(record)
    token: Optional[str] = None
    stream = ""
    while True:
        jobs = api.call(cfg, "describe_jobs", settings=settings, jobs=[record["job_id"]]).get("jobs", [])
        job = jobs[0] if jobs else {"status": "FAILED"}
        stream = log_stream(job) or stream
        if stream:
            messages, token = read_new(cfg, stream, token, settings)
            for message in messages:
                write(message + "\n")
        if job.get("status") in TERMINAL:
            return str(job.get("status"))
        time.sleep(poll)
