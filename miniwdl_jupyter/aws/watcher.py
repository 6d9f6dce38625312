"""The aws_batch backend's job watcher: the cluster template's one thread per process
(backends/cluster.py), whose query is one DescribeJobs per 100 jobs (the API's limit), so following
N tasks costs about N/100 requests per `[aws] describe_period`, not N. Nothing is written to the
shared filesystem per status change (miniwdl-aws writes a JSON file per change, which breaks EFS
at hundreds of tasks). When the process exits, any job it still follows is terminated."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Dict, List, Tuple

from WDL.runtime import config

from .. import config as jupyter_config
from ..backends.cluster import JobWatcher, Query, Sighting
from . import api
from .jobs import TERMINAL, log_stream

_logger = logging.getLogger("miniwdl_jupyter.aws_batch")
DESCRIBE_LIMIT = 100
# A job DescribeJobs does not find this many times in a row is lost (e.g. deleted by someone else).
LOST_AFTER_POLLS = 10


def describe_jobs(cfg: config.Loader) -> Query:
    """The watcher's query: what DescribeJobs says of each job it finds."""

    def query(job_ids: List[str]) -> Dict[str, Sighting]:
        seen = {}
        for job in api.call(cfg, "describe_jobs", jobs=job_ids)["jobs"]:
            facts = {"log_stream": log_stream(job), "reason": job.get("statusReason")}
            status = str(job.get("status", "SUBMITTED"))
            seen[job["jobId"]] = Sighting(status, status in TERMINAL, {k: v for k, v in facts.items() if v}, job)
        return seen

    return query


# One per region and endpoint, with the configuration its calls use.
_watchers: Dict[tuple, Tuple[JobWatcher, config.Loader]] = {}
_watchers_lock = threading.Lock()


def watcher(cfg: config.Loader) -> JobWatcher:
    """The process's watcher of Batch jobs."""
    settings = api.aws_settings(cfg)
    key = (settings["region"], settings["endpoint_url"])
    with _watchers_lock:
        if key not in _watchers:
            period = jupyter_config.option(cfg, "aws", "describe_period", "float")
            made = JobWatcher("aws_batch", period, describe_jobs(cfg), chunk=DESCRIBE_LIMIT, lost_after=LOST_AFTER_POLLS)
            _watchers[key] = (made, cfg)
        return _watchers[key][0]


def terminate_all(reason: str = "miniwdl run ended") -> List[str]:
    """TerminateJob for every job this process still follows and nobody cancelled yet (at exit:
    nothing is left RUNNABLE or RUNNING behind a miniwdl process that is gone)."""
    terminated = []
    for follower, cfg in list(_watchers.values()):
        for job_id in follower.claim_for_cancel(follower.active()):
            try:
                api.call(cfg, "terminate_job", jobId=job_id, reason=reason)
                terminated.append(job_id)
            except Exception as exn:
                _logger.warning("aws_batch could not terminate job %s: %s", job_id, exn)
    return terminated


atexit.register(terminate_all)
