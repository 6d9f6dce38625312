"""`slurm`: each task attempt is one SLURM batch job, submitted with `sbatch --parsable`.

Sibling attempts that ask for the same and become ready together (a scatter's calls) are submitted
as one job array (arrays.py). The job script (script.py) runs the command on the node inside the configured runtime (`docker`/
`podman`, `apptainer`/`singularity`, or `none`: straight on the node), in the call's work directory
on a filesystem shared by this host and the nodes, and records the command's exit status next to
it. The life of an attempt is the cluster template's (backends/cluster.py): no process or sbatch
waits per task; one watcher thread per miniwdl process asks `squeue` once per period about every
job of the run, falling back to `sacct` (when the cluster keeps accounting) and to the recorded
exit status for jobs that left the queue.

Outcomes: NODE_FAIL/PREEMPTED/BOOT_FAIL -> miniwdl's `Interrupted` (retried under `preemptible`);
OUT_OF_MEMORY/TIMEOUT/DEADLINE -> task failures that say so; a job that leaves the queue without a
recorded status -> `Interrupted` naming the job. Cancel scancels every job of the process in one call;
the job script's TERM trap removes a docker/podman container.

Configuration: `[slurm]` in defaults.cfg (partition, account, constraint, extra_args, runtime,
poll_seconds, gpu_partition, and `calls`: per-call overrides of any of them, without editing the WDL).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional

from WDL import Type, Value
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.backend.cli_subprocess import SubprocessBase
from WDL.runtime.error import CommandFailed, Interrupted

from .. import config as jupyter_config
from ..backends import container_cli
from ..backends.cluster import ClusterJobContainer, Job, JobWatcher
from ..errors import BackendError, ConfigError
from ..backends.task_dir import run_dir_of
from ..backends.task_usage import drop_if_empty, host_usage_path, requested
from . import accounting, script
from .arrays import ArraySubmitter, Attempt
from .jobs import (
    INTERRUPTED_STATES,
    JobQuery,
    SlurmUnavailable,
    accounting_enabled,
    cancel_jobs,
    run_slurm,
    submit_job,
)
from .settings import RUNTIMES, call_settings

# A job missing from squeue (and sacct) this many polls in a row has left without a trace.
_LOST_AFTER_POLLS = 5


class SlurmContainer(ClusterJobContainer, SubprocessBase):
    """The cluster template for SLURM jobs; miniwdl's SubprocessBase gives the mounts (inputs
    read-only, work dir read-write) that a docker/podman/apptainer node runtime binds, and its
    `copy_input_files` handling."""

    backend = "slurm"
    _watcher: Optional[JobWatcher] = None
    _arrays: Optional[ArraySubmitter] = None  # None: one sbatch per attempt ([slurm] array_window_seconds = 0)
    _limits: Dict[str, int] = {}
    _accounting = False  # the cluster keeps accounting: sacct adds to each attempt's usage file

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        runtime = jupyter_config.option(cfg, "slurm", "runtime")
        if runtime not in RUNTIMES:
            raise ConfigError(f"[slurm] runtime = {runtime!r} is not one of {', '.join(RUNTIMES)}")
        try:
            proc = run_slurm(["sinfo", "--noheader", "--format=%c %m"], retries=2)
        except SlurmUnavailable as exn:
            raise BackendError(f"{exn}, or use another backend") from None
        if proc.returncode != 0:
            raise BackendError(
                f"SLURM is not answering `sinfo`: {proc.stderr.strip() or 'no output'}. "
                "Check that slurmctld runs and this host can reach it (`scontrol ping`), or use another backend"
            )
        cpus, mem_mb = 1, 1024
        for line in proc.stdout.split("\n"):
            fields = line.replace("+", "").split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                cpus, mem_mb = max(cpus, int(fields[0])), max(mem_mb, int(fields[1]))
        # A task may ask for up to the largest node, not for this (submit) host's resources.
        cls._limits = {"cpu": cpus, "mem_bytes": mem_mb * 1024 * 1024}
        accounting = cls._accounting = accounting_enabled()
        period = jupyter_config.option(cfg, "slurm", "poll_seconds", "float")
        cls._watcher = JobWatcher("slurm", period, JobQuery(accounting), lost_after=_LOST_AFTER_POLLS)
        window = jupyter_config.option(cfg, "slurm", "array_window_seconds", "float")
        cls._arrays = ArraySubmitter(window) if window > 0 else None
        if not jupyter_config.option(cfg, "scheduler", "task_concurrency", "int"):
            # miniwdl sized its task thread pool before loading any backend: say so, once.
            logger.warning(
                _(
                    "[scheduler] task_concurrency is not set: miniwdl keeps at most this host's cpu count "
                    "of task jobs in SLURM's queue at once; set it (e.g. MINIWDL__SCHEDULER__TASK_CONCURRENCY=200)",
                    host_cpus=os.cpu_count(),
                )
            )
        logger.notice(
            _(
                "slurm backend initialized",
                runtime=runtime,
                largest_node_cpu=cpus,
                largest_node_mem_mb=mem_mb,
                accounting=accounting,
                poll_seconds=period,
                array_window_seconds=window,
            )
        )

    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> Dict[str, int]:
        return cls._limits or {"cpu": os.cpu_count() or 1, "mem_bytes": 1 << 40}

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.task_name = ""
        # Fixed now: it decides where inputs are mounted, which miniwdl maps before the task's name
        # is known (so a `calls` entry keyed by task name cannot change it).
        self.runtime: str = self.settings()["runtime"]
        if self.runtime == "none":
            self.container_dir = self.host_dir  # commands see host paths, as with the local backend

    # ---- configuration ------------------------------------------------------------------------

    def settings(self) -> Dict[str, Any]:
        """[slurm] settings for this call (see settings.call_settings)."""
        return call_settings(self.cfg, self.run_id, self.task_name, getattr(self, "runtime", None))

    def build_task_runtime_info_struct(self, logger: logging.Logger, run_id: str, task: Any) -> None:
        self.task_name = getattr(task, "name", "") or ""  # for `calls` entries keyed by task name
        super().build_task_runtime_info_struct(logger, run_id, task)

    def process_runtime(self, logger: logging.Logger, runtime_eval: Dict[str, Value.Base]) -> None:
        super().process_runtime(logger, runtime_eval)
        if "time_minutes" in runtime_eval:
            self.runtime_values["time_minutes"] = max(1, runtime_eval["time_minutes"].coerce(Type.Int()).value)
        if "gpuCount" in runtime_eval:
            self.runtime_values["gpuCount"] = max(1, runtime_eval["gpuCount"].coerce(Type.Int()).value)
            self.runtime_values.setdefault("gpu", True)
        if "gpuType" in runtime_eval:
            self.runtime_values["gpuType"] = runtime_eval["gpuType"].coerce(Type.String()).value

    @property
    def cli_name(self) -> str:
        return self.runtime

    @property
    def cli_exe(self) -> List[str]:
        if self.runtime in ("podman", "apptainer", "singularity"):
            return jupyter_config.option(self.cfg, "slurm", f"{self.runtime}_exe", "list")
        return jupyter_config.option(self.cfg, "docker_run", "exe", "list")

    @property
    def container_name(self) -> str:
        return container_cli.container_name(self)

    @property
    def job_log(self) -> str:
        """The job's own output (sbatch --output): the node runtime's complaints, slurmstepd's."""
        return self.host_cli_log_txt("slurm")

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        """miniwdl's SubprocessBase interface: the node runtime's command line for `image` (the
        template's _run puts it into the job script)."""
        return script.container_invocation(self, logger, self.runtime, image)

    # ---- the cluster template's hooks ---------------------------------------------------------

    def job_watcher(self) -> JobWatcher:
        assert self._watcher is not None, "slurm backend used before global_init"
        return self._watcher

    def submit(self, logger: logging.Logger, terminating: Callable[[], bool], cleanup: ExitStack, command: str) -> str:
        settings = self.settings()
        sbatch = self.prepare_submission(logger, settings, command)
        # a container that never ran its command leaves its mounted usage file empty: no usage, no file
        cleanup.callback(drop_if_empty, host_usage_path(self.host_dir, self.try_counter))
        logger.info(_("slurm sbatch", args=" ".join(shlex.quote(a) for a in sbatch)))
        if self._arrays is None:
            return submit_job(sbatch, self.container_name, logger)
        attempt = Attempt(sbatch, self.container_name, sbatch[-1], self.host_dir, self.job_log)
        shape = tuple(script.shape_arguments(self, settings))
        return self._arrays.submit(shape, attempt, os.path.join(run_dir_of(self.host_dir), "slurm_arrays"), logger)

    def prepare_submission(self, logger: logging.Logger, settings: Dict[str, Any], command: str) -> List[str]:
        """Write this attempt's job script next to the call's other files; returns the sbatch argv."""
        script_path = os.path.join(self.host_dir, f"slurm_job{self.try_counter if self.try_counter > 1 else ''}.sh")
        with open(script_path, "w") as out:
            out.write(script.job_script(self, logger, settings, command))
        return script.sbatch_arguments(self, settings, script_path, self.job_log)

    def cancel_jobs(self, logger: logging.Logger, job_ids: List[str]) -> None:
        cancel_jobs(job_ids)
        logger.notice(_("slurm scancel", job_ids=job_ids))

    def cancel_wait_seconds(self) -> float:
        return jupyter_config.option(self.cfg, "slurm", "cancel_wait_seconds", "float")

    def job_running(self, job: Job) -> bool:
        return job.state in ("RUNNING", "COMPLETING")

    def outcome(self, logger: logging.Logger, job: Job) -> int:
        """The task's exit status, or the exception its job's final state calls for."""
        self._add_accounting(logger, job)
        exit_code = self.recorded_exit_status()
        node = job.facts.get("node", "")
        where = f"job {job.job_id}" + (f" on {node}" if node else "")
        if job.state in INTERRUPTED_STATES:
            raise Interrupted(f"slurm {where} ended in state {job.state}")
        if job.state == "OUT_OF_MEMORY" or _killed_for_memory(job, self.job_log):
            memory = self.runtime_values.get("memory_reservation")
            asked = (
                f"runtime.memory = {memory / 1e6:.0f} MB, --mem={math.ceil(memory / 1048576)}M"
                if memory
                else "no runtime.memory: the partition's default"
            )
            raise self._limit_failure(
                job,
                exit_code if exit_code is not None else 137,
                f"task ran out of memory: SLURM ended {where} in state {job.state} "
                f"for exceeding its memory limit ({asked}); raise runtime.memory",
            )
        if job.state in ("TIMEOUT", "DEADLINE"):
            minutes = self.runtime_values.get("time_minutes")
            limit = f"runtime.time_minutes = {minutes}" if minutes else "time limit from the partition or [slurm] extra_args"
            if job.facts.get("time_limit"):
                limit += f": {job.facts['time_limit']}"
            raise self._limit_failure(
                job,
                exit_code if exit_code is not None else 143,
                f"task exceeded its time limit: SLURM ended {where} in state {job.state} ({limit})",
            )
        if job.state == "CANCELLED":
            raise BackendError(f"slurm {where} was cancelled outside this run (scancel by a user or an administrator)")
        if exit_code is None:
            if job.lost:
                raise Interrupted(f"slurm {where} left the queue without recording an exit status (last state {job.state})")
            raise BackendError(
                f"slurm {where} ended in state {job.state} before running the task: {_tail(self.job_log)}",
                details=[f"job output: {self.job_log}"],
            )
        if self.runtime in ("docker", "podman") and exit_code in container_cli.CLI_FAILURES and _tail(self.job_log, ""):
            raise BackendError(
                f"`{self.cli_exe[0]} run` failed on {node or 'the node'}: {_tail(self.job_log)}",
                details=[f"job output: {self.job_log}"],
            )
        return exit_code

    def _add_accounting(self, logger: logging.Logger, job: Job) -> None:
        """SLURM's figures for the job into the attempt's usage file (accounting.py), where they
        describe the task: not for docker/podman, whose containers run outside the job."""
        if not (self._accounting and self.runtime not in ("docker", "podman")
                and jupyter_config.option(self.cfg, "usage", "sample", "bool")):
            return
        try:
            figures = accounting.job_figures(job.job_id)
            accounting.add_to_usage_file(host_usage_path(self.host_dir, self.try_counter), figures, requested(self.runtime_values))
        except Exception as exn:  # usage is lost, the task's outcome is not
            logger.warning(_("slurm accounting not added to the usage file", job_id=job.job_id, error=str(exn)))

    def _limit_failure(self, job: Job, exit_code: int, message: str) -> CommandFailed:
        """A task failure (retried under maxRetries) whose error.json and log line say what
        SLURM did: miniwdl writes a CommandFailed's `more_info`, not its message."""
        return CommandFailed(
            exit_code,
            self.host_stderr_txt(),
            self.host_stdout_txt(),
            message=message,
            more_info={"message": message, "slurm_job_id": job.job_id, "slurm_state": job.state},
        )


def _killed_for_memory(job: Job, job_log: str) -> bool:
    """Clusters without cgroups enforce --mem through job accounting (JobAcctGatherParams=
    OverMemoryKill): the job then ends FAILED, and only slurmstepd's message in the job's output
    says why."""
    if job.state not in ("FAILED", "CANCELLED"):
        return False
    try:
        with open(job_log, errors="replace") as infile:
            text = infile.read()[-20000:]
    except OSError:
        return False
    return "exceeded memory limit" in text or "Exceeded job memory limit" in text or "oom-kill" in text


def _tail(path: str, default: str = "no output") -> str:
    try:
        with open(path) as infile:
            lines = [line.strip() for line in infile if line.strip()]
    except OSError:
        return default
    return lines[-1] if lines else default
