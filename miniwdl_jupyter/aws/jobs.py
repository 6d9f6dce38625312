"""AWS Batch jobs: reading their descriptions (pure functions over DescribeJobs' JSON), naming them
so that a run's jobs can be found by name, explaining a queue that does not run its jobs, and
stopping a run's jobs: what the aws_batch backend, the aws launcher and leftover cleanup share."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Optional, Tuple

from WDL.runtime import config

from ..backends.task_dir import run_dir_of
from ..errors import BackendError
from . import api
from .settings import BatchSettings

TERMINAL = ("SUCCEEDED", "FAILED")
_HOST_TERMINATED = ("Host EC2", "terminated")


def classify_stopped(job: Dict[str, Any]) -> Tuple[str, Optional[int], str]:
    """(outcome, exit code, reason) of a stopped job: outcome is "succeeded", "exit" (the task
    ran and exited non-zero), "interrupted" (the host went away: spot reclaim, scale-in), or
    "failed" (the job never ran the task, e.g. the image could not be pulled)."""
    attempts = job.get("attempts") or []
    last = attempts[-1] if attempts else {}
    container = job.get("container") or {}
    exit_code = container.get("exitCode", (last.get("container") or {}).get("exitCode"))
    reasons = [
        job.get("statusReason") or "",
        last.get("statusReason") or "",
        container.get("reason") or "",
        (last.get("container") or {}).get("reason") or "",
    ]
    reason = "; ".join(dict.fromkeys(r for r in reasons if r))
    if any(all(word in r for word in _HOST_TERMINATED) for r in reasons):
        return "interrupted", None, reason
    if job.get("status") == "SUCCEEDED":
        return "succeeded", exit_code, reason
    if exit_code is not None:
        return "exit", int(exit_code), reason
    return "failed", None, reason


def log_stream(job: Dict[str, Any]) -> Optional[str]:
    """The job's CloudWatch log stream (in log group /aws/batch/job), once it has one."""
    stream = (job.get("container") or {}).get("logStreamName")
    if not stream and job.get("attempts"):
        stream = (job["attempts"][-1].get("container") or {}).get("logStreamName")
    return stream


def queue_report(cfg: config.Loader, queue: str) -> List[Dict[str, Any]]:
    """The state of the compute environments behind a queue, to explain a job stuck RUNNABLE."""
    try:
        queues = api.call(cfg, "describe_job_queues", jobQueues=[queue]).get("jobQueues", [])
        names = [entry["computeEnvironment"] for q in queues for entry in q.get("computeEnvironmentOrder", [])]
        envs = api.call(cfg, "describe_compute_environments", computeEnvironments=names).get("computeEnvironments", []) if names else []
    except BackendError as exn:
        return [{"error": str(exn)}]
    report = []
    for env in envs:
        resources = env.get("computeResources") or {}
        report.append(
            {
                "name": env.get("computeEnvironmentName"),
                "state": env.get("state"),
                "status": env.get("status"),
                "statusReason": env.get("statusReason", ""),
                "desiredvCpus": resources.get("desiredvCpus"),
                "maxvCpus": resources.get("maxvCpus"),
                "instanceTypes": resources.get("instanceTypes"),
            }
        )
    return report


def run_prefix(run_dir: str) -> str:
    """A short name prefix shared by every Batch job of one run (ListJobs' JOB_NAME filter finds
    them by it)."""
    return "mj" + hashlib.sha1(os.path.abspath(run_dir).encode()).hexdigest()[:10]


def run_tag(host_dir: str) -> str:
    """The prefix of the run that a task's call directory `host_dir` belongs to."""
    return run_prefix(run_dir_of(host_dir))


def job_name(*parts: str) -> str:
    """A Batch job name from `parts`: up to 128 letters, digits, '-' and '_'."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in "-".join(parts))[:128]


def is_head_job(name: str) -> bool:
    """Is this job name a `--submit aws` head job's (`<run prefix>-head-<run name>`)?"""
    return name.split("-")[1:2] == ["head"]


def describe_run_jobs(
    cfg: config.Loader, run_dir: str, queues: List[str], settings: Optional[Dict[str, str]] = None
) -> List[Dict[str, Any]]:
    """Jobs of a run (by name prefix) on `queues` that are not finished: for cancel and cleanup."""
    prefix = run_prefix(run_dir)
    jobs: List[Dict[str, Any]] = []
    for queue in queues:
        token = None
        while True:
            params: Dict[str, Any] = dict(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [prefix + "*"]}])
            if token:
                params["nextToken"] = token
            page = api.call(cfg, "list_jobs", what=f"queue {queue}", settings=settings, **params)
            jobs += [j for j in page.get("jobSummaryList", []) if j.get("status") not in TERMINAL]
            token = page.get("nextToken")
            if not token:
                break
    return jobs


def stop_run_jobs(
    cfg: config.Loader, run_dir: str, queues: Optional[List[str]] = None, settings: Optional[Dict[str, str]] = None
) -> List[str]:
    """TerminateJob for every unfinished task job of `run_dir` (found by name prefix) on `queues`
    (default: the configured task queues). For the runs layer, once the run's miniwdl process is
    gone or told to stop; returns the job ids terminated."""
    if queues is None:
        queues = BatchSettings(cfg).task_queues()
    stopped = []
    for job in describe_run_jobs(cfg, run_dir, queues, settings=settings):
        if is_head_job(job.get("jobName", "")):
            continue  # a --submit aws head job is its launcher's to stop
        api.call(cfg, "terminate_job", settings=settings, jobId=job["jobId"], reason="run cancelled")
        stopped.append(job["jobId"])
    return stopped
