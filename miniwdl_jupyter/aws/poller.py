"""One DescribeJobs poller per process for every running Batch job of the aws_batch backend.

Each task thread registers its job and waits on its slot; the poller describes up to 100 jobs per
request (the API's limit) every `[aws] describe_period` seconds, so the cost of following N tasks
is about N/100 requests per period, not N. Nothing is written to the shared filesystem per status
change (miniwdl-aws writes a JSON file per change, which breaks EFS at hundreds of tasks).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from WDL.runtime import config

from ..config import option
from . import api

_logger = logging.getLogger("miniwdl_jupyter.aws_batch")
DESCRIBE_LIMIT = 100


class JobSlot:
    """The latest description of one job, and a way to wait for it to change."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.description: Dict[str, Any] = {}
        self.changed = threading.Event()
        self.missing_polls = 0  # polls in a row that did not find the job

    @property
    def status(self) -> str:
        return str(self.description.get("status", "SUBMITTED"))


class JobPoller:
    def __init__(self, cfg: config.Loader):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.slots: Dict[str, JobSlot] = {}
        self.wake = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.requests = 0  # DescribeJobs requests made (the benchmark reads this)
        self.period = option(cfg, "aws", "describe_period", "float")

    def watch(self, job_id: str) -> JobSlot:
        with self.lock:
            slot = self.slots.setdefault(job_id, JobSlot(job_id))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="aws_batch-poller", daemon=True)
                self.thread.start()
        return slot

    def forget(self, job_id: str) -> None:
        with self.lock:
            self.slots.pop(job_id, None)

    def watched(self) -> List[str]:
        with self.lock:
            return list(self.slots)

    def _loop(self) -> None:
        while True:
            started = time.monotonic()
            with self.lock:
                ids = list(self.slots)
                if not ids:
                    self.thread = None
                    return
            for i in range(0, len(ids), DESCRIBE_LIMIT):
                chunk = ids[i : i + DESCRIBE_LIMIT]
                try:
                    self.requests += 1
                    jobs = api.call(self.cfg, "describe_jobs", jobs=chunk)["jobs"]
                except Exception as exn:  # keep polling: a task thread decides when to give up
                    _logger.warning("aws_batch DescribeJobs failed: %s", exn)
                    continue
                found = {job["jobId"]: job for job in jobs}
                with self.lock:
                    for job_id in chunk:
                        slot = self.slots.get(job_id)
                        if slot is None:
                            continue
                        if job_id in found:
                            slot.missing_polls = 0
                            slot.description = found[job_id]
                        else:
                            slot.missing_polls += 1
                        slot.changed.set()
            self.wake.wait(max(0.0, self.period - (time.monotonic() - started)))
            self.wake.clear()

    def wait(self, slot: JobSlot, timeout: float) -> None:
        """Until the poller has news of `slot` or `timeout` seconds pass."""
        slot.changed.wait(timeout)
        slot.changed.clear()


_pollers: Dict[tuple, JobPoller] = {}
_pollers_lock = threading.Lock()


def poller(cfg: config.Loader) -> JobPoller:
    """The process's poller (one per region/endpoint)."""
    settings = api.aws_settings(cfg)
    key = (settings["region"], settings["endpoint_url"])
    with _pollers_lock:
        if key not in _pollers:
            _pollers[key] = JobPoller(cfg)
        return _pollers[key]


def terminate_all(reason: str = "miniwdl run ended") -> List[str]:
    """TerminateJob for every job this process still follows (at exit: nothing is left RUNNABLE
    or RUNNING behind a miniwdl process that is gone)."""
    terminated = []
    for p in list(_pollers.values()):
        for job_id in p.watched():
            try:
                api.call(p.cfg, "terminate_job", jobId=job_id, reason=reason)
                terminated.append(job_id)
            except Exception as exn:
                _logger.warning("aws_batch could not terminate job %s: %s", job_id, exn)
    return terminated


atexit.register(terminate_all)


def on_status_change(slot: JobSlot, last: Optional[str], notify: Callable[[str, Dict[str, Any]], None]) -> Optional[str]:
    """Call `notify(status, description)` when the slot's status differs from `last`; returns the
    status now seen."""
    status = slot.status if slot.description else None
    if status and status != last:
        notify(status, slot.description)
        return status
    return last
