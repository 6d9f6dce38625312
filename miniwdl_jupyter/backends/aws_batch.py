"""`aws_batch`: each task attempt is one AWS Batch job on a filesystem shared with this process.

The run directory sits on a filesystem that this process and every job mount at the same path
(`[aws] mount`): EFS through an access point (`[aws] fs`, `[aws] fsap`), or any other shared
mount given as a host path (`[aws] host_path`). So a task's container sees its call directory at
the path miniwdl uses here (`container_dir = host_dir`): inputs already on that filesystem are
linked in place, inputs elsewhere are copied onto it, and stdout/stderr/outputs land there.

What it does differently from miniwdl-aws (see docs/aws.md):
- job definitions are reused, one per distinct shape (batch_jobdefs), not one per attempt;
- submissions are paced and backed off on throttling, status comes from one shared DescribeJobs
  poller per process (batch_api, batch_poller), and nothing is written to EFS per status change;
- a spot reclaim / host termination is miniwdl's `Interrupted` (retried under `preemptible`,
  on `[aws] task_queue_fallback` if set); a job stuck RUNNABLE is reported with the compute
  environments' state; API errors are BackendErrors naming the queue/role/definition.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import threading
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional

from WDL import Value
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Interrupted, Terminated
from WDL.runtime.task_container import TaskContainer

from ..errors import BackendError
from . import batch_api, batch_jobdefs, batch_poller
from .batch_jobs import classify_stopped, log_stream, queue_report, read_exit_code, run_tag
from .batch_settings import BatchSettings
from .task_usage import requested, sampled_job_command

# How long a task thread waits for the poller before re-checking the cancel flag.
_CANCEL_CHECK_SECONDS = 0.5
# A job the poller cannot find this many times in a row is lost (e.g. deleted by someone else).
_MISSING_POLLS_LIMIT = 10
_MIB = 1024 * 1024


class BatchContainer(TaskContainer):
    _resource_limits: Dict[str, int] = {}
    _init_lock = threading.Lock()

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        settings = BatchSettings(cfg)
        settings.check()
        queues = [q for q in (settings.task_queue, settings.task_queue_fallback) if q]
        found = batch_api.call(cfg, "describe_job_queues", what=f"job queue {settings.task_queue}", jobQueues=queues)
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

    def host_exit_code_txt(self) -> str:
        """Written by the job itself (see job_command): the exit status even where DescribeJobs
        does not report one."""
        return os.path.join(self.host_dir, f"exit_code{self.try_counter if self.try_counter > 1 else ''}.txt")

    # ---- one attempt ------------------------------------------------------------------------

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        self.settings.check_on_mount(self.host_dir)
        overrides = self.settings.call_overrides(self.run_id)
        self._prepare_dir(command)
        jobdef = batch_jobdefs.ensure(self.cfg, self.container_properties(overrides))
        queue = self._queue(overrides)
        with ExitStack() as cleanup:
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            job_id = self._submit(logger, terminating, queue, jobdef, overrides)
            poller = batch_poller.poller(self.cfg)
            slot = poller.watch(job_id)
            cleanup.callback(poller.forget, job_id)
            try:
                description = self._await(logger, terminating, slot, queue, poll_stderr, cleanup)
            except BaseException:
                self._terminate(logger, job_id, "miniwdl task cancelled")
                raise
            poll_stderr()
        return self._exit_code(logger, description, queue)

    def _prepare_dir(self, command: str) -> None:
        os.makedirs(self.host_work_dir(), exist_ok=True)
        with open(os.path.join(self.host_dir, "command"), "w") as outfile:
            for key, value in self.runtime_values.get("env", {}).items():
                outfile.write(f"export {key}={shlex.quote(value)}\n")
            outfile.write(command)
        for path in (self.host_stdout_txt(), self.host_stderr_txt()):
            open(path, "w").close()
        if os.path.exists(self.host_exit_code_txt()):
            os.unlink(self.host_exit_code_txt())
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
            if self.settings.on_mount(host_path) and not self.cfg.get_bool("file_io", "copy_input_files", False):
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
        resources = [{"type": "VCPU", "value": str(cpu)}, {"type": "MEMORY", "value": str(memory_mib)}]
        if self.runtime_values.get("gpu", False):
            resources.append({"type": "GPU", "value": str(self.runtime_values.get("gpu_count", 1))})
        image = self.runtime_values.get("docker") or self.cfg.get_dict("task_runtime", "defaults", {}).get("docker", "ubuntu:22.04")
        props: Dict[str, Any] = {
            "image": image,
            "resourceRequirements": resources,
            "volumes": [self.settings.volume()],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": self.settings.mount, "readOnly": False}],
        }
        if self.settings.job_role_arn:
            props["jobRoleArn"] = self.settings.job_role_arn
        if self.settings.execution_role_arn:
            props["executionRoleArn"] = self.settings.execution_role_arn
        if self.runtime_values.get("privileged", False):  # only with [task_runtime] allow_privileged
            props["privileged"] = True
        props.update(self.settings.container_properties)
        props.update(overrides.get("container", {}))
        return props

    def job_command(self) -> List[str]:
        shell = self.cfg.get("task_runtime", "command_shell", "/bin/bash")
        q = shlex.quote
        task = f"{shell} ../command >> {q(self.host_stdout_txt())} 2>> {q(self.host_stderr_txt())}"
        task = " ".join(q(a) for a in sampled_job_command(self.cfg, self.host_dir, self.try_counter, task, requested(self.runtime_values)))
        script = f"cd {q(self.host_work_dir())} && {task}; rc=$?; echo $rc > {q(self.host_exit_code_txt())}; exit $rc"
        return ["/bin/sh", "-c", script]

    def _queue(self, overrides: Dict[str, Any]) -> str:
        if self.interruptions and self.settings.task_queue_fallback:
            return self.settings.task_queue_fallback
        return overrides.get("queue") or self.settings.task_queue

    def job_name(self) -> str:
        """Batch job names: up to 128 letters, digits, '-' and '_'. The prefix is the run's, so a
        launcher can find every job of a run by name (ListJobs JOB_NAME filter)."""
        stem = f"{run_tag(self.host_dir)}-{self.run_id}-{self.try_counter}"
        name = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)
        return name[:128]

    def _submit(
        self, logger: logging.Logger, terminating: Callable[[], bool], queue: str, jobdef: str, overrides: Dict[str, Any]
    ) -> str:
        if not batch_api.submit_limiter.wait(self.settings.submit_rate, terminating):
            raise Terminated(quiet=True)
        params: Dict[str, Any] = dict(
            jobName=self.job_name(),
            jobQueue=queue,
            jobDefinition=jobdef,
            containerOverrides={"command": self.job_command()},
            tags={"miniwdl-jupyter-call": self.run_id[:256]},
        )
        timeout = int(overrides.get("timeout", self.settings.timeout) or 0)
        if timeout >= 60:  # Batch's minimum
            params["timeout"] = {"attemptDurationSeconds": timeout}
        answer = batch_api.call(self.cfg, "submit_job", what=f"queue {queue}, job definition {jobdef}", terminating=terminating, **params)
        self.job_id = answer["jobId"]
        self.failure_info = {"aws_batch_job_id": self.job_id, "aws_batch_queue": queue}
        logger.notice(_("aws_batch job submitted", job_id=self.job_id, job_name=params["jobName"], queue=queue, job_definition=jobdef))
        return self.job_id

    def _await(
        self,
        logger: logging.Logger,
        terminating: Callable[[], bool],
        slot: batch_poller.JobSlot,
        queue: str,
        poll_stderr: Callable[[], None],
        cleanup: ExitStack,
    ) -> Dict[str, Any]:
        last: Optional[str] = None
        runnable_since: Optional[float] = None
        warned_at = 0.0
        running = False
        stderr_polled = 0.0
        poller = batch_poller.poller(self.cfg)
        while True:
            if terminating():
                raise Terminated()
            poller.wait(slot, _CANCEL_CHECK_SECONDS)
            if time.monotonic() - stderr_polled >= poller.period:
                # read stderr.txt at the poller's pace, not the cancel check's: it is on EFS
                stderr_polled = time.monotonic()
                poll_stderr()
            if slot.missing_polls >= _MISSING_POLLS_LIMIT:
                raise BackendError(f"AWS Batch job {slot.job_id} on queue {queue} disappeared (DescribeJobs no longer finds it)")
            status = slot.status if slot.description else None
            if status and status != last:
                last = status
                stream = log_stream(slot.description)
                logger.notice(_("aws_batch job status", job_id=slot.job_id, status=status, log_stream=stream or ""))
                if status == "RUNNABLE":
                    runnable_since = time.monotonic()
                elif status in ("STARTING", "RUNNING") or status in batch_poller.TERMINAL:
                    runnable_since = None
                    if status == "RUNNING" and not running:
                        running = True  # miniwdl's running-task counters and timers
                        cleanup.enter_context(self.task_running_context())
                        logger.notice(_("aws_batch task running", job_id=slot.job_id, log_stream=stream or ""))
            if status in batch_poller.TERMINAL:
                return slot.description
            if runnable_since is not None and self.settings.runnable_timeout > 0:
                waited = time.monotonic() - runnable_since
                if waited >= self.settings.runnable_timeout and time.monotonic() - warned_at >= self.settings.runnable_timeout:
                    warned_at = time.monotonic()
                    report = queue_report(self.cfg, queue)
                    logger.warning(_("aws_batch job still RUNNABLE", job_id=slot.job_id, seconds=int(waited), queue=queue, compute_environments=report))
                    if self.settings.runnable_fail:
                        raise BackendError(
                            f"AWS Batch job {slot.job_id} has waited RUNNABLE on queue {queue} for {int(waited)} s. "
                            f"Compute environments: {report}. Fix: check their state and maxvCpus against the task's "
                            "cpu/memory/gpu, or raise [aws] runnable_timeout"
                        )

    def _exit_code(self, logger: logging.Logger, description: Dict[str, Any], queue: str) -> int:
        outcome, exit_code, reason = classify_stopped(description)
        if exit_code is None:
            exit_code = read_exit_code(self.host_exit_code_txt())
            if outcome == "failed" and exit_code is not None:
                outcome = "exit"
        if reason:
            self.failure_info = {**(self.failure_info or {}), "aws_batch_status_reason": reason}
        if outcome == "interrupted":
            self.interruptions += 1
            raise Interrupted(f"AWS Batch job {self.job_id} was interrupted: {reason}")
        if outcome == "succeeded":
            exit_code = 0 if exit_code is None else exit_code
        if exit_code is None:
            raise BackendError(
                f"AWS Batch job {self.job_id} on queue {queue} FAILED without running the task: {reason or 'no reason given'}. "
                "Fix: check the image exists and is pullable by the compute environment, and the job role; "
                f"the job's log stream: {log_stream(description) or 'none'}"
            )
        logger.notice(_("aws_batch task exit", job_id=self.job_id, exit_code=exit_code, log_stream=log_stream(description) or ""))
        return exit_code

    def _terminate(self, logger: logging.Logger, job_id: str, reason: str) -> None:
        try:
            batch_api.call(self.cfg, "terminate_job", what=f"job {job_id}", jobId=job_id, reason=reason)
            logger.notice(_("aws_batch job terminated", job_id=job_id))
        except BackendError as exn:
            logger.error(_("aws_batch could not terminate job", job_id=job_id, error=str(exn)))
