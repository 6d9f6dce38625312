"""`local`: run task commands directly on this machine, with no container.

For machines without Docker (Binder, SageMaker Studio without Docker, laptops). Like the
shared-filesystem backends (miniwdl-aws), the "container" paths are host paths: `container_dir` is
the call directory. What a container would give, and how this backend stands in for it:
- inputs: each File input is a hard link where miniwdl says the command will find it (a copy when
  the input is on another filesystem or may not be linked), and each Directory input a real
  directory tree of such links: `find -type f`, `stat` and `ls -l` see real files with their own
  modes, and removing or renaming them does not touch the user's originals. A link *is* the
  original file, so a command writing into an input changes it: that is noticed and warned about
  after the task ([file_io] copy_input_files gives such tasks copies, as with any backend);
- environment: `[task_runtime] env` and miniwdl's pass-through variables over a minimal base
  (PATH, HOME, LANG; TMPDIR only under [file_io] mount_tmpdir), not the notebook's whole
  environment, so a task's result does not depend on what happens to be set there;
- memory: miniwdl's memory_limit (from [task_runtime] memory_limit_multiplier) as RLIMIT_DATA on
  the command's processes (a cgroup would need privileges these machines rarely grant);
- GPUs: each GPU task reserves its devices (across runs on the machine) and sees only those
  (CUDA_VISIBLE_DEVICES), a task asking for none sees none (see gpus.py);
- cpu/memory reservations are scheduled across concurrent tasks with miniwdl's own subprocess
  scheduler; cancelling kills the task's whole process group;
- `runtime.docker`, `docker_network` and `inlineDockerfile` mean nothing here: one notice each a run.

Settings are read with `config.option` (falling back to defaults.cfg), so the backend works with
any miniwdl Loader, including those miniwdl makes without our defaults.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from contextlib import ExitStack
from typing import Callable, Dict, List, Set

from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .. import gpus, protocol
from . import host_task
from .host_task import BASE_ENVIRONMENT
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating
from .task_reaper import TaskReaper
from .task_usage import requested, sampled_local_command

# Runtime keys that only a container can act on, and what the notice about each says.
IGNORED_RUNTIME = {
    "docker": "local backend ignores runtime.docker: commands run on this machine with its own tools",
    "docker_network": "local backend ignores runtime.docker_network: there is no container network; "
    "commands use this machine's",
    "inlineDockerfile": "local backend ignores runtime.inlineDockerfile: no image is built; commands run "
    "on this machine with its own tools",
}


class LocalContainer(ScheduledSubprocessBase):
    backend_name = "local"
    _notices_given: Set[str] = set()  # per process, i.e. per run
    _notice_lock = threading.Lock()  # tasks start on concurrent threads

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        logger.notice(_("local backend initialized: task commands run on this machine, without containers"))

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.container_dir = self.host_dir  # commands see host paths

    @property
    def cli_name(self) -> str:
        return "local"

    # Host execution (input staging, the task's env, ulimit) is the host_task module's, which
    # slurm's `none` runtime composes too: its functions, called as this container's steps.
    _place_inputs = host_task.place_inputs
    _warn_of_changed_inputs = staticmethod(host_task.warn_of_changed_inputs)
    _task_env = host_task.task_env
    _invocation = host_task.invocation

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        raise NotImplementedError("the local backend starts no container")  # _run replaces its use

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        self._notice_ignored_runtime(logger)
        with self.reserved_resources(logger, terminating), self.poll_stderr_context(logger) as poll_stderr:
            linked = self._place_inputs()
            command_file = self.write_command_file(command, self._task_env())
            with open(self.host_stdout_txt(), "ab") as stdout, open(self.host_stderr_txt(), "ab") as stderr:
                invocation = sampled_local_command(
                    self.cfg, logger, self.host_dir, self.try_counter, self._invocation(command_file), requested(self.runtime_values)
                )
                proc = subprocess.Popen(
                    invocation,
                    cwd=self.host_work_dir(),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    env=self._environment(),
                    start_new_session=True,  # its own process group: cancel kills all of it
                    pass_fds=self.gpu_lock_fds,  # its GPUs stay reserved while it runs, whatever happens to us
                )
            # ...and so does the reaper, should this process die without doing it
            TaskReaper.watch(proc.pid, jupyter_config.option(self.cfg, "local", "kill_grace_seconds", "float"))
            try:
                protocol.task_running(logger, "local", pid=proc.pid)
                with self.task_running_context():
                    exit_code = wait_unless_terminating(proc, terminating, poll_stderr)
            except BaseException:
                self._kill_group(proc)
                TaskReaper.forget(proc.pid)
                raise
            if exit_code is None:
                self._kill_group(proc)
                TaskReaper.forget(proc.pid)
                raise Terminated()
            # Background children the command left behind would outlive the task (a container's
            # would not): end them too.
            _signal_group(proc.pid, signal.SIGKILL)
            TaskReaper.forget(proc.pid)
            self._warn_of_changed_inputs(logger, linked)
        protocol.task_exit(logger, "local", exit_code)
        return exit_code

    def _kill_group(self, proc: subprocess.Popen) -> None:
        """SIGTERM the task's process group, then SIGKILL whatever is left after the grace period."""
        grace = jupyter_config.option(self.cfg, "local", "kill_grace_seconds", "float")
        if _signal_group(proc.pid, signal.SIGTERM):
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(proc.pid, signal.SIGKILL)  # the shell may be gone while its children linger
        proc.wait()

    def _environment(self) -> Dict[str, str]:
        """The command's process environment before the task's own exports: a minimal base, as a
        container's image would give, not everything the notebook happens to have set. TMPDIR is
        absent unless [file_io] mount_tmpdir sets it (in the exports), as in a container."""
        env = {key: os.environ[key] for key in BASE_ENVIRONMENT if key in os.environ}
        env.setdefault("PATH", os.defpath)
        env.setdefault("HOME", self.host_work_dir())
        env.setdefault("LANG", "C.UTF-8")
        wants_gpu = bool(self.runtime_values.get("gpu", False))
        env.update(gpus.local_environment(self.gpu_ids, wants_gpu, gpus.share_with_all(self.cfg)))
        return env

    def _notice_ignored_runtime(self, logger: logging.Logger) -> None:
        """One notice per ignored runtime key per run, however many tasks set it."""
        cls = type(self)
        with cls._notice_lock:
            due = [key for key in IGNORED_RUNTIME if key in self.runtime_values and key not in cls._notices_given]
            cls._notices_given.update(due)
        for key in due:
            shown = {"image": self.runtime_values[key]} if key == "docker" else {}
            if key == "docker_network":
                shown = {"docker_network": self.runtime_values[key]}
            logger.notice(_(IGNORED_RUNTIME[key], **shown))


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
