"""`slurm`: each task attempt is one SLURM batch job, submitted with `sbatch --parsable`.

The job script runs the command on the node inside the configured runtime (`docker`/`podman`
through docker_run's own invocation, `apptainer`/`singularity`, or `none`: straight on the node),
in the call's work directory on a filesystem shared by this host and the nodes, and records the
command's exit status next to it (`slurm_exit`, `slurm_exit2`... per attempt). No process or sbatch
waits per task: one watcher thread per miniwdl process asks `squeue` once per period about every
job of the run (see slurm_jobs.py), falling back to `sacct` (when the cluster keeps accounting) and
to the recorded exit status for jobs that left the queue.

Outcomes: NODE_FAIL/PREEMPTED/BOOT_FAIL -> miniwdl's `Interrupted` (retried under `preemptible`);
OUT_OF_MEMORY/TIMEOUT/DEADLINE -> task failures that say so; a job that leaves the queue without a
recorded status -> `Interrupted` naming the job. Cancel scancels every job of the process in one call;
the job script's TERM trap removes a docker/podman container.

Configuration: `[slurm]` in defaults.cfg (partition, account, constraint, extra_args, runtime,
poll_seconds, gpu_partition, and `calls`: per-call overrides of any of them, without editing the WDL).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shlex
import threading
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from WDL import Type, Value
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import CommandFailed, Interrupted, Terminated

from .. import config as jupyter_config
from ..errors import BackendError, ConfigError
from .docker_run import CLI_FAILURES, FALLBACK_IMAGE, DockerRunContainer, run_dir_of
from .local import BASE_ENVIRONMENT, LocalContainer
from .slurm_jobs import (
    INTERRUPTED_STATES,
    JobStatus,
    JobWatcher,
    SlurmUnavailable,
    accounting_enabled,
    cancel_jobs,
    run_slurm,
)
from .task_usage import node_sampled_command, requested

RUNTIMES = ("docker", "podman", "apptainer", "singularity", "none")
# Settings a `[slurm] calls` entry may override for one call (or task) name.
CALL_SETTINGS = ("partition", "account", "constraint", "extra_args", "runtime", "gpu_partition")
# Written into every job's comment so the runs layer can find a run's jobs (jobs_of_run()).
COMMENT_PREFIX = "miniwdl_jupyter.run_dir="
# How often a waiting task thread looks at the cancel flag and streams stderr; the job's state
# itself arrives from the watcher as soon as it has it.
_WAIT_SLICE = 0.5


class SlurmContainer(DockerRunContainer):
    """Subclasses docker_run for its container invocation (mounts, user, labels, cpu/memory flags),
    used verbatim in the job script when the node runtime is docker or podman."""

    _watcher: Optional[JobWatcher] = None
    _limits: Dict[str, int] = {}
    _active_jobs: Set[str] = set()
    _cancelled_jobs: Set[str] = set()
    _jobs_lock = threading.Lock()

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
        cls._watcher = JobWatcher(jupyter_config.option(cfg, "slurm", "poll_seconds", "float"), accounting_enabled())
        if not cfg["scheduler"].get_int("task_concurrency", 0):
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
                accounting=cls._watcher.accounting,
                poll_seconds=cls._watcher.period,
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

    @property
    def call_name(self) -> str:
        """The call's name from its run id: call-align-3-1 -> align (WDL names have no '-')."""
        return self.run_id[len("call-") :].split("-")[0] if self.run_id.startswith("call-") else self.run_id

    def settings(self) -> Dict[str, Any]:
        """[slurm] settings for this call: the section's, overridden by a `calls` entry keyed by the
        call's run id, call name or task name."""
        option = functools.partial(jupyter_config.option, self.cfg, "slurm")
        found: Dict[str, Any] = {key: option(key) for key in ("partition", "account", "constraint", "runtime", "gpu_partition")}
        found["extra_args"] = option("extra_args", "list")
        calls = option("calls", "dict")
        for key in (self.task_name, self.call_name, self.run_id):
            override = calls.get(key) if key else None
            if isinstance(override, dict):
                unknown = set(override) - set(CALL_SETTINGS)
                if unknown:
                    raise ConfigError(
                        f"[slurm] calls entry {key!r} has unknown setting(s) {', '.join(sorted(unknown))}; "
                        f"use {', '.join(CALL_SETTINGS)}"
                    )
                found.update(override)
        if hasattr(self, "runtime"):
            found["runtime"] = self.runtime
        if isinstance(found["extra_args"], str):
            found["extra_args"] = shlex.split(found["extra_args"])
        if found["runtime"] not in RUNTIMES:
            raise ConfigError(f"[slurm] runtime = {found['runtime']!r} is not one of {', '.join(RUNTIMES)}")
        return found

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
    def cli_exe(self) -> List[str]:
        runtime = self.settings()["runtime"]
        if runtime in ("podman", "apptainer", "singularity"):
            return jupyter_config.option(self.cfg, "slurm", f"{runtime}_exe", "list")
        return jupyter_config.option(self.cfg, "docker_run", "exe", "list")

    # ---- files of one attempt -----------------------------------------------------------------

    def _attempt_file(self, stem: str) -> str:
        return os.path.join(self.host_dir, f"{stem}{self.try_counter if self.try_counter > 1 else ''}")

    @property
    def exit_status_file(self) -> str:
        return self._attempt_file("slurm_exit")

    # ---- the job ------------------------------------------------------------------------------

    def sbatch_arguments(self, settings: Dict[str, Any], script: str, job_log: str) -> List[str]:
        """`sbatch` command line for this attempt: resources from the runtime section, placement
        from [slurm] settings; extra_args last so they can override anything."""
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={self.container_name}",
            f"--chdir={self.host_dir}",
            f"--output={job_log}",
            f"--comment={COMMENT_PREFIX}{run_dir_of(self.host_dir)}",
            "--ntasks=1",
            "--no-requeue",  # a lost node becomes NODE_FAIL here, and miniwdl's retry policy applies
        ]
        cpu = self.runtime_values.get("cpu", 0)
        if cpu:
            args.append(f"--cpus-per-task={cpu}")
        memory = self.runtime_values.get("memory_reservation", 0)
        if memory:
            args.append(f"--mem={max(1, math.ceil(memory / 1048576))}M")
        if "time_minutes" in self.runtime_values:
            args.append(f"--time={self.runtime_values['time_minutes']}")
        gpu = self.runtime_values.get("gpu", False)
        if gpu:
            count = self.runtime_values.get("gpuCount", 1)
            kind = self.runtime_values.get("gpuType")
            args.append(f"--gres=gpu:{kind}:{count}" if kind else f"--gres=gpu:{count}")
        partition = (settings["gpu_partition"] if gpu else "") or settings["partition"]
        if partition:
            args.append(f"--partition={partition}")
        if settings["account"]:
            args.append(f"--account={settings['account']}")
        if settings["constraint"]:
            args.append(f"--constraint={settings['constraint']}")
        return args + [str(a) for a in settings["extra_args"]] + [script]

    def job_script(self, logger: logging.Logger, cleanup: ExitStack, settings: Dict[str, Any], command: str) -> str:
        """The batch script: run the task in the background, stop it on SIGTERM (cancel, time
        limit), record its exit status atomically in the call directory, exit with it."""
        runtime = settings["runtime"]
        shell = self.cfg.get("task_runtime", "command_shell")
        q = shlex.quote
        if runtime == "none":
            LocalContainer._place_inputs(self)  # type: ignore[arg-type]  # the local backend's input staging
            command_file = self.write_command_file(command, LocalContainer._task_env(self))  # type: ignore[arg-type]
            # As the local backend: a minimal environment, as an image would give (plus the job's own
            # SLURM_* variables), not the submitting process's; `ulimit -d` under a memory_limit.
            task = LocalContainer._invocation(self, command_file)  # type: ignore[arg-type]
            invocation = " ".join(q(a) for a in node_sampled_command(self.cfg, logger, self.host_dir, self.try_counter, task, requested(self.runtime_values)))
            run = (
                "keep=()\n"
                f"for name in {' '.join(BASE_ENVIRONMENT)} $(compgen -e | grep '^SLURM_'); do\n"
                '  [ -n "${!name+x}" ] && keep+=("$name=${!name}")\n'
                "done\n"
                f'cd {q(self.host_work_dir())} && exec env -i "${{keep[@]}}" {invocation}'
                f" >> {q(self.host_stdout_txt())} 2>> {q(self.host_stderr_txt())}"
            )
            stop = ":"
        else:
            self.write_command_file(command)
            image = self.runtime_values.get("docker", FALLBACK_IMAGE)  # as docker_run: [task_runtime] defaults may lack one
            inner = ["/bin/sh", "-c", f"{shell} ../command >> ../stdout.txt 2>> ../stderr.txt"]
            exe = " ".join(q(a) for a in self.cli_exe)
            if runtime in ("docker", "podman"):
                invocation = self._run_invocation(logger, cleanup, image) + inner  # docker_run's own
                pull = f"{exe} image inspect {q(image)} >/dev/null 2>&1 || {exe} pull {q(image)} >/dev/null || exit 125"
                stop = f"{exe} rm -f {q(self.container_name)} >/dev/null 2>&1"
            else:
                invocation = self.apptainer_invocation(image) + inner
                pull = ":"
                stop = ":"
            run = f"{pull}\nexec {' '.join(q(a) for a in invocation)}"
        status = q(self.exit_status_file)
        return f"""#!/bin/bash
# One attempt of call {self.run_id}, submitted by miniwdl-jupyter's slurm backend ({runtime} on the node).
rm -f {status}
run_task() {{
{run}
}}
stop_task() {{
{stop}
}}
run_task &
task=$!
stopped=
trap 'stopped=1; stop_task; kill -TERM $task 2>/dev/null' TERM INT
wait $task
status=$?
# a trapped signal ends `wait` early: wait for the task itself
while kill -0 $task 2>/dev/null; do wait $task; status=$?; done
# A container the daemon was still creating when the signal came outlives its CLI: remove it too.
if [ -n "$stopped" ]; then sleep 1; stop_task; fi
echo $status > {status}.tmp && mv -f {status}.tmp {status}
exit $status
"""

    def apptainer_invocation(self, image: str) -> List[str]:
        """`apptainer exec` (or singularity) with miniwdl's mounts, straight from the docker image."""
        args = self.cli_exe + ["exec", "--containall", "--pwd", os.path.join(self.container_dir, "work")]
        if self.runtime_values.get("gpu", False):
            args.append("--nv")
        for container_path, host_path, writable in self.prepare_mounts():
            args += ["--bind", f"{host_path}:{container_path}" + ("" if writable else ":ro")]
        source = image if image.startswith(("/", "docker://", "library://", "oras://")) else f"docker://{image}"
        return args + jupyter_config.option(self.cfg, "slurm", "apptainer_args", "list") + [source]

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        assert self._watcher is not None
        settings = self.settings()
        with ExitStack() as cleanup:
            poll_stderr, job_log, sbatch = self.prepare_submission(logger, cleanup, settings, command)
            logger.info(_("slurm sbatch", args=" ".join(shlex.quote(a) for a in sbatch)))
            job_id = self._submit(logger, sbatch)
            logger.notice(_("slurm job submitted", job_id=job_id, runtime=settings["runtime"], log=job_log))
            status = self._watcher.watch(job_id)
            try:
                self._wait(logger, terminating, poll_stderr, status, cleanup)
            except BaseException:
                self._cancel(logger, status)
                raise
            finally:
                self._watcher.forget(job_id)
                with self._jobs_lock:
                    self._active_jobs.discard(job_id)
            return self._outcome(logger, status, settings, job_log)

    def prepare_submission(
        self, logger: logging.Logger, cleanup: ExitStack, settings: Dict[str, Any], command: str
    ) -> Tuple[Callable[[], None], str, List[str]]:
        """(stderr poller, the job's own log, the sbatch argv) for this attempt; the job script is
        written next to the call's other files."""
        poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
        job_log = self.host_cli_log_txt("slurm")
        script_path = self._attempt_file("slurm_job") + ".sh"
        with open(script_path, "w") as script:
            script.write(self.job_script(logger, cleanup, settings, command))
        return poll_stderr, job_log, self.sbatch_arguments(settings, script_path, job_log)

    def _submit(self, logger: logging.Logger, sbatch: List[str]) -> str:
        """One `sbatch --parsable`. A submission whose answer timed out may still have been
        accepted: look for the job by its (unique) name before submitting again."""
        for attempt in range(6):
            proc = run_slurm(sbatch, retries=0)
            if proc.returncode == 0:
                job_id = proc.stdout.strip().split(";")[0]
                with self._jobs_lock:
                    self._active_jobs.add(job_id)
                return job_id
            if "timed out" not in proc.stderr and "Unable to contact" not in proc.stderr:
                raise BackendError(f"sbatch refused the job of {self.run_id}: {proc.stderr.strip()}")
            time.sleep(min(2**attempt, 30))
            found = run_slurm(["squeue", "--noheader", f"--name={self.container_name}", "--format=%i"]).stdout.split()
            if found:
                with self._jobs_lock:
                    self._active_jobs.add(found[0])
                return found[0]
            logger.warning(_("slurm sbatch timed out; submitting again", stderr=proc.stderr.strip()))
        raise BackendError(f"sbatch kept timing out for {self.run_id}: slurmctld is not answering")

    def _wait(
        self,
        logger: logging.Logger,
        terminating: Callable[[], bool],
        poll_stderr: Callable[[], None],
        status: JobStatus,
        cleanup: ExitStack,
    ) -> None:
        last = None
        running = False
        while True:
            if status.changed.wait(_WAIT_SLICE):
                status.changed.clear()
            poll_stderr()
            if terminating():
                raise Terminated()  # _run's handler scancels the jobs
            seen = (status.state, status.node)
            if seen != last:
                last = seen
                logger.notice(
                    _("slurm job state", job_id=status.job_id, state=status.state, node=status.node, reason=status.reason)
                )
            if not running and status.state in ("RUNNING", "COMPLETING") or status.final:
                if not running:
                    cleanup.enter_context(self.task_running_context())
                    running = True
                    # "... task running", like the other backends: the progress view's cue
                    logger.notice(_("slurm task running", job_id=status.job_id, node=status.node))
            if status.final:
                poll_stderr()
                return
            # A job purged from the queue (MinJobAge) after it recorded its status is done.
            if status.missing_polls and os.path.exists(self.exit_status_file):
                status.gone = True
                return

    def _cancel(self, logger: logging.Logger, status: JobStatus) -> None:
        """scancel every job of this process still active (one call), then wait a while for this
        job to end, so the job script's trap can remove its container."""
        with self._jobs_lock:
            doomed = sorted(self._active_jobs - self._cancelled_jobs)
            self._cancelled_jobs.update(doomed)
        if doomed:
            cancel_jobs(doomed)
            logger.notice(_("slurm scancel", job_ids=doomed))
        assert self._watcher is not None
        self._watcher.poll_now()
        deadline = time.monotonic() + jupyter_config.option(self.cfg, "slurm", "cancel_wait_seconds", "float")
        while not status.final and time.monotonic() < deadline:
            status.changed.wait(_WAIT_SLICE)
            status.changed.clear()

    def _outcome(self, logger: logging.Logger, status: JobStatus, settings: Dict[str, Any], job_log: str) -> int:
        """The task's exit status, or the exception its job's final state calls for."""
        exit_code = self._recorded_exit_status()
        job = f"job {status.job_id}" + (f" on {status.node}" if status.node else "")
        logger.notice(_("slurm job end", job_id=status.job_id, state=status.state, node=status.node, exit_code=exit_code))
        if status.state in INTERRUPTED_STATES:
            raise Interrupted(f"slurm {job} ended in state {status.state}")
        if status.state == "OUT_OF_MEMORY" or _killed_for_memory(status, job_log):
            memory = self.runtime_values.get("memory_reservation")
            asked = (
                f"runtime.memory = {memory / 1e6:.0f} MB, --mem={math.ceil(memory / 1048576)}M"
                if memory
                else "no runtime.memory: the partition's default"
            )
            raise self._limit_failure(
                status,
                exit_code if exit_code is not None else 137,
                f"task ran out of memory: SLURM ended {job} in state {status.state} "
                f"for exceeding its memory limit ({asked}); raise runtime.memory",
            )
        if status.state in ("TIMEOUT", "DEADLINE"):
            minutes = self.runtime_values.get("time_minutes")
            limit = f"runtime.time_minutes = {minutes}" if minutes else "time limit from the partition or [slurm] extra_args"
            if status.time_limit:
                limit += f": {status.time_limit}"
            raise self._limit_failure(
                status,
                exit_code if exit_code is not None else 143,
                f"task exceeded its time limit: SLURM ended {job} in state {status.state} ({limit})",
            )
        if status.state == "CANCELLED":
            raise BackendError(f"slurm {job} was cancelled outside this run (scancel by a user or an administrator)")
        if exit_code is None:
            if status.gone:
                raise Interrupted(f"slurm {job} left the queue without recording an exit status (last state {status.state})")
            raise BackendError(
                f"slurm {job} ended in state {status.state} before running the task: {_tail(job_log)}",
                details=[f"job output: {job_log}"],
            )
        if settings["runtime"] in ("docker", "podman") and exit_code in CLI_FAILURES and _tail(job_log, ""):
            raise BackendError(
                f"`{self.cli_exe[0]} run` failed on {status.node or 'the node'}: {_tail(job_log)}",
                details=[f"job output: {job_log}"],
            )
        return exit_code

    def _limit_failure(self, status: JobStatus, exit_code: int, message: str) -> CommandFailed:
        """A task failure (retried under maxRetries) whose error.json and log line say what
        SLURM did: miniwdl writes a CommandFailed's `more_info`, not its message."""
        return CommandFailed(
            exit_code,
            self.host_stderr_txt(),
            self.host_stdout_txt(),
            message=message,
            more_info={"message": message, "slurm_job_id": status.job_id, "slurm_state": status.state},
        )

    def _recorded_exit_status(self) -> Optional[int]:
        try:
            with open(self.exit_status_file) as infile:
                return int(infile.read().strip())
        except (OSError, ValueError):
            return None


def jobs_of_run(run_dir: str) -> List[str]:
    """Ids of the queued or running task jobs the slurm backend submitted for a run directory
    (their comment names it), for cancelling a run whose miniwdl process is gone."""
    proc = run_slurm(["squeue", "--noheader", "--format=%i|%k"])
    wanted = COMMENT_PREFIX + os.path.abspath(run_dir)
    return [line.split("|", 1)[0] for line in proc.stdout.splitlines() if line.split("|", 1)[-1].strip() == wanted]


def _killed_for_memory(status: JobStatus, job_log: str) -> bool:
    """Clusters without cgroups enforce --mem through job accounting (JobAcctGatherParams=
    OverMemoryKill): the job then ends FAILED, and only slurmstepd's message in the job's output
    says why."""
    if status.state not in ("FAILED", "CANCELLED"):
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
