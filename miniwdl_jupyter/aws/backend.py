"""`aws_batch`: each task attempt is one AWS Batch job on a filesystem shared with this process.

The run directory sits on a filesystem that this process and every job mount at the same path
(`[aws] mount`): EFS through an access point (`[aws] fs`, `[aws] fsap`), or any other shared
mount given as a host path (`[aws] host_path`). So a task's container sees its call directory at
the path miniwdl uses here (`container_dir = host_dir`): inputs already on that filesystem are
linked in place, inputs elsewhere are copied onto it, and stdout/stderr/outputs land there.

The life of an attempt is the cluster template's (backends/cluster.py): submit -> watch ->
outcome, the job terminated on any exception; this module supplies the Batch calls.

What it does differently from miniwdl-aws (see docs/aws.md):
- job definitions are reused, one per distinct shape (jobdefs), not one per attempt;
- submissions are paced and backed off on throttling, status comes from the template's one
  watcher thread per process, whose query is a DescribeJobs of up to 100 jobs (watcher.py), and
  nothing is written to EFS per status change;
- a spot reclaim / host termination is miniwdl's `Interrupted` (retried under `preemptible`,
  on `[aws] task_queue_fallback` if set); a job stuck RUNNABLE is reported with the compute
  environments' state; API errors are BackendErrors naming the queue/role/definition.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional

from WDL import Value
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Interrupted, Terminated

from .. import protocol
from ..backends.cluster import ClusterJobContainer, Job, JobWatcher
from ..backends.task_dir import task_image, write_command_file
from ..backends.task_usage import requested, sampled_job_command
from ..errors import BackendError
from . import api, discovery, jobdefs, watcher
from .jobs import classify_stopped, job_name, queue_report, run_tag
from .settings import BatchSettings

_MIB = 1024 * 1024


class BatchContainer(ClusterJobContainer):
    backend = "aws_batch"

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        # In SageMaker Studio, what is not configured (EFS, access point, queue) is found first;
        # the tasks of this process share `cfg`, so they see it too.
        settings = BatchSettings(discovery.apply_defaults(cfg))
        settings.check()
        queues = settings.task_queues()
        found = api.call(cfg, "describe_job_queues", what=f"job queue {settings.task_queue}", jobQueues=queues)
        known = {q["jobQueueName"]: q for q in found.get("jobQueues", [])}
        known.update({q["jobQueueArn"]: q for q in found.get("jobQueues", [])})
        for queue in queues:
            if queue not in known:
                raise BackendError(
                    f"AWS Batch job queue {queue!r} not found in this region. Fix: set [aws] task_queue "
                    "(MINIWDL__AWS__TASK_QUEUE) to an existing queue; see docs/aws.md"
                )
            if known[queue].get("state") != "ENABLED":
                raise BackendError(f"AWS Batch job queue {queue!r} is {known[queue].get('state')}. Fix: enable it or choose another [aws] task_queue")
        logger.notice(
            _("aws_batch initialized", task_queue=settings.task_queue, mount=settings.mount, filesystem=settings.fs or settings.host_path)
        )

    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> Dict[str, int]:
        # Batch provisions per job: no host limits to clamp cpu/memory to.
        return {"cpu": 4096, "mem_bytes": 1 << 50}

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        # Every job mounts the shared filesystem where we do: paths need no translation.
        self.container_dir = self.host_dir
        self.settings = BatchSettings(cfg)
        self.interruptions = 0
        self.job_id: Optional[str] = None
        self.queue = ""
        self.runnable_since: Optional[float] = None  # when this attempt's job was last seen RUNNABLE
        self.reported_at = 0.0

    # One work directory for every attempt (the container sees host paths as they are, so the
    # work2/ of a retry would need a different command); reset() empties it between attempts.
    def host_work_dir(self) -> str:
        return os.path.join(self.host_dir, "work")

    def reset(self, logger: logging.Logger) -> None:
        shutil.rmtree(self.host_work_dir(), ignore_errors=True)
        super().reset(logger)

    def process_runtime(self, logger: logging.Logger, runtime_eval: Dict[str, Value.Base]) -> None:
        super().process_runtime(logger, runtime_eval)
        for key in ("gpuCount", "acceleratorCount"):
            value = runtime_eval.get(key)
            if isinstance(value, Value.Int) and value.value > 0:
                self.runtime_values["gpu"] = True
                self.runtime_values["gpu_count"] = value.value

    # ---- the template's hooks -------------------------------------------------------------------

    def job_watcher(self) -> JobWatcher:
        return watcher.watcher(self.cfg)

    def submit(self, logger: logging.Logger, terminating: Callable[[], bool], cleanup: ExitStack, command: str) -> str:
        self.settings.check_on_mount(self.host_dir)
        overrides = self.settings.call_overrides(self.run_id)
        self._prepare_dir(command)
        jobdef = jobdefs.ensure(self.cfg, self.container_properties(overrides))
        self.queue = self._queue(overrides)
        self.runnable_since = None
        if not api.submit_limiter.wait(self.settings.submit_rate, terminating):
            raise Terminated(quiet=True)
        params: Dict[str, Any] = dict(
            jobName=self.job_name(),
            jobQueue=self.queue,
            jobDefinition=jobdef,
            containerOverrides={"command": self.job_command()},
            tags={"miniwdl-jupyter-call": self.run_id[:256]},
        )
        timeout = int(overrides.get("timeout", self.settings.timeout) or 0)
        if timeout >= 60:  # Batch's minimum
            params["timeout"] = {"attemptDurationSeconds": timeout}
        answer = api.call(self.cfg, "submit_job", what=f"queue {self.queue}, job definition {jobdef}", terminating=terminating, **params)
        self.job_id = answer["jobId"]
        self.failure_info = {"aws_batch_job_id": self.job_id, "aws_batch_queue": self.queue}
        logger.info(_("aws_batch job submitted", job_id=self.job_id, job_name=params["jobName"], queue=self.queue, job_definition=jobdef))
        return self.job_id

    def cancel_jobs(self, logger: logging.Logger, job_ids: List[str]) -> None:
        for job_id in job_ids:  # Batch has no TerminateJobs: one call each
            try:
                api.call(self.cfg, "terminate_job", what=f"job {job_id}", jobId=job_id, reason="miniwdl task cancelled")
                logger.info(_("aws_batch job terminated", job_id=job_id))
            except BackendError as exn:
                logger.error(_("aws_batch could not terminate job", job_id=job_id, error=str(exn)))

    def check_waiting(self, logger: logging.Logger, job: Job) -> None:
        """A job RUNNABLE longer than [aws] runnable_timeout: reported with the compute
        environments behind its queue, again every such period (or failed, with runnable_fail)."""
        if job.state != "RUNNABLE" or self.settings.runnable_timeout <= 0:
            self.runnable_since = None
            return
        now = time.monotonic()
        self.runnable_since = self.runnable_since or now
        waited = now - self.runnable_since
        if waited < self.settings.runnable_timeout or now - self.reported_at < self.settings.runnable_timeout:
            return
        self.reported_at = now
        report = queue_report(self.cfg, self.queue)
        protocol.task_waiting(logger, self.backend, f"RUNNABLE on queue {self.queue}", waited, job_id=job.job_id,
                              compute_environments=report, check="miniwdl-jupyter aws doctor (%wdl doctor aws)")
        if self.settings.runnable_fail:
            raise BackendError(
                f"AWS Batch job {job.job_id} has waited RUNNABLE on queue {self.queue} for {int(waited)} s. "
                f"Compute environments: {report}. Fix: run `miniwdl-jupyter aws doctor` (`%wdl doctor aws`); check "
                "their state and maxvCpus against the task's cpu/memory/gpu, or raise [aws] runnable_timeout"
            )

    def outcome(self, logger: logging.Logger, job: Job) -> int:
        if not job.final:  # lost: DescribeJobs no longer finds it
            exit_code = self.recorded_exit_status()
            if exit_code is None:
                raise BackendError(f"AWS Batch job {job.job_id} on queue {self.queue} disappeared (DescribeJobs no longer finds it)")
            return exit_code
        outcome, exit_code, reason = classify_stopped(job.detail)
        if exit_code is None:
            exit_code = self.recorded_exit_status()  # the job's own record, where Batch gives none
            if outcome == "failed" and exit_code is not None:
                outcome = "exit"
        if reason:
            self.failure_info = {**(self.failure_info or {}), "aws_batch_status_reason": reason}
        if outcome == "interrupted":
            self.interruptions += 1
            raise Interrupted(f"AWS Batch job {job.job_id} was interrupted: {reason}")
        if outcome == "succeeded":
            exit_code = 0 if exit_code is None else exit_code
        if exit_code is None:
            raise BackendError(
                f"AWS Batch job {job.job_id} on queue {self.queue} FAILED without running the task: {reason or 'no reason given'}. "
                "Fix: check the image exists and is pullable by the compute environment, and the job role; "
                f"the job's log stream: {job.facts.get('log_stream') or 'none'}"
            )
        return exit_code

    # ---- the job's content ------------------------------------------------------------------------

    def _prepare_dir(self, command: str) -> None:
        os.makedirs(self.host_work_dir(), exist_ok=True)
        write_command_file(self.host_dir, command, self.runtime_values.get("env", {}))
        for path in (self.host_stdout_txt(), self.host_stderr_txt()):
            open(path, "w").close()
        self._link_inputs()

    def _link_inputs(self) -> None:
        """Make each input appear at its in-container path: a symlink when the input is already on
        the shared filesystem, a copy onto it otherwise (the job cannot see this host's disk)."""
        for host_path, container_path in self.input_path_map.items():
            is_dir = host_path.endswith("/")
            host_path, container_path = host_path.rstrip("/"), container_path.rstrip("/")
            if os.path.lexists(container_path):
                continue
            os.makedirs(os.path.dirname(container_path), exist_ok=True)
            if self.settings.on_mount(host_path) and not self.cfg["file_io"].get_bool("copy_input_files"):
                os.symlink(host_path, container_path, target_is_directory=is_dir)
            elif is_dir:
                shutil.copytree(host_path, container_path, symlinks=False)
            else:
                shutil.copy2(host_path, container_path)

    def container_properties(self, overrides: Dict[str, Any]) -> Dict[str, Any]:
        """The job definition's content: everything but the command (given at submission)."""
        cpu = max(1, int(self.runtime_values.get("cpu", 1) or 1))
        memory = self.runtime_values.get("memory_reservation", 0) or self.runtime_values.get("memory_limit", 0)
        memory_mib = max(4, (memory + _MIB - 1) // _MIB) if memory else self.settings.default_memory_mb
        gpus = self.runtime_values.get("gpu_count", 1) if self.runtime_values.get("gpu", False) else 0
        props = self.settings.job_properties(task_image(self.runtime_values), cpu, memory_mib, self.settings.job_role_arn, gpus)
        if self.runtime_values.get("privileged", False):  # only with [task_runtime] allow_privileged
            props["privileged"] = True
        props.update(self.settings.container_properties)
        props.update(overrides.get("container", {}))
        return props

    def job_command(self) -> List[str]:
        shell = self.cfg["task_runtime"]["command_shell"]
        q = shlex.quote
        task = f"{shell} ../command >> {q(self.host_stdout_txt())} 2>> {q(self.host_stderr_txt())}"
        # usage sampled beside the command, inside the job (task_usage.py)
        task = " ".join(q(a) for a in sampled_job_command(self.cfg, self.host_dir, self.try_counter, task, requested(self.runtime_values)))
        script = f"cd {q(self.host_work_dir())} && {task}; rc=$?; {self.record_exit_status('rc')}; exit $rc"
        return ["/bin/sh", "-c", script]

    def _queue(self, overrides: Dict[str, Any]) -> str:
        if self.interruptions and self.settings.task_queue_fallback:
            return self.settings.task_queue_fallback
        return overrides.get("queue") or self.settings.task_queue

    def job_name(self) -> str:
        """Batch job names: up to 128 letters, digits, '-' and '_'. The prefix is the run's, so a
        launcher can find every job of a run by name (ListJobs JOB_NAME filter)."""
        return job_name(run_tag(self.host_dir), self.run_id, str(self.try_counter))
