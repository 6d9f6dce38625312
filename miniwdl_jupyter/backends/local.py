"""`local`: run task commands directly on this machine, with no container.

For machines without Docker (Binder, SageMaker Studio without Docker, laptops). Like the
shared-filesystem backends (miniwdl-aws), the "container" paths are host paths: `container_dir` is
the call directory, and each input is symlinked where miniwdl says the command will find it. cpu and
memory are scheduled across concurrent tasks with miniwdl's own subprocess scheduler; cancelling
kills the task's whole process group. The `docker` runtime image is ignored, with one notice a run.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import threading
from contextlib import ExitStack
from typing import Callable, Dict, List

from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating


class LocalContainer(ScheduledSubprocessBase):
    _image_notice_given = False  # once per process, i.e. once per run
    _image_notice_lock = threading.Lock()  # tasks start on concurrent threads

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        jupyter_config.apply_defaults(cfg)
        logger.notice(_("local backend initialized: task commands run on this machine, without containers"))

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.container_dir = self.host_dir  # commands see host paths

    @property
    def cli_name(self) -> str:
        return "local"

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        raise NotImplementedError("the local backend starts no container")  # _run replaces its use

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        self._notice_ignored_image(logger)
        with self.reserved_resources(logger), self.poll_stderr_context(logger) as poll_stderr:
            self._link_inputs()
            command_file = self.write_command_file(command, self._task_env())
            shell = self.cfg.get("task_runtime", "command_shell")
            with open(self.host_stdout_txt(), "ab") as stdout, open(self.host_stderr_txt(), "ab") as stderr:
                proc = subprocess.Popen(
                    [shell, command_file],
                    cwd=self.host_work_dir(),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    env=self._environment(),
                    start_new_session=True,  # its own process group: cancel kills all of it
                )
            try:
                logger.notice(_("local task running", pid=proc.pid))
                with self.task_running_context():
                    exit_code = wait_unless_terminating(proc, terminating, poll_stderr)
            except BaseException:
                self._kill_group(proc)
                raise
            if exit_code is None:
                self._kill_group(proc)
                raise Terminated()
            # Background children the command left behind would outlive the task (a container's
            # would not): end them too.
            _signal_group(proc.pid, signal.SIGKILL)
        logger.notice(_("local task exit", exit_code=exit_code))
        return exit_code

    def _kill_group(self, proc: subprocess.Popen) -> None:
        """SIGTERM the task's process group, then SIGKILL whatever is left after the grace period."""
        grace = self.cfg.get_float("local", "kill_grace_seconds")
        if _signal_group(proc.pid, signal.SIGTERM):
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(proc.pid, signal.SIGKILL)  # the shell may be gone while its children linger
        proc.wait()

    def _link_inputs(self) -> None:
        """Put each input where the command will look for it. The command names "container" paths,
        which for this backend are host paths under the first attempt's work/ (miniwdl maps them
        once per task), while a retry works in work2/...: so an input goes both there and under
        the current attempt's directory, and is put back if [file_io] delete_work removed it.
        Inputs are symlinks, or copies when copy_input_files is on (the command may change them)."""
        copy = not self._bind_input_files  # miniwdl's copy_input_files already ran this attempt
        for host_path, container_path in self.input_path_map.items():
            source = host_path.rstrip("/")
            for target in {self.host_work_path(container_path.rstrip("/")), container_path.rstrip("/")}:
                if os.path.lexists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if not copy:
                    os.symlink(source, target)
                elif os.path.isdir(source):
                    shutil.copytree(source, target, symlinks=False)
                else:
                    shutil.copy(source, target)

    def _task_env(self) -> Dict[str, str]:
        """The runtime's env, with TMPDIR (set by [file_io] mount_tmpdir to a path in the first
        attempt's work/) moved to the current attempt's work dir, where miniwdl created it."""
        env = dict(self.runtime_values.get("env", {}))
        first_work_dir = os.path.join(self.container_dir, "work")
        tmpdir = env.get("TMPDIR")
        if tmpdir and os.path.commonpath([tmpdir, first_work_dir]) == first_work_dir:
            env["TMPDIR"] = self.host_work_path(tmpdir)
        return env

    def _environment(self) -> Dict[str, str]:
        """The command's process environment: miniwdl's own, with HOME and TMPDIR always set."""
        env = dict(os.environ)
        env["HOME"] = env.get("HOME", self.host_work_dir())
        env["TMPDIR"] = env.get("TMPDIR", "/tmp")
        return env

    def _notice_ignored_image(self, logger: logging.Logger) -> None:
        cls = type(self)
        with cls._image_notice_lock:
            if cls._image_notice_given or "docker" not in self.runtime_values:
                return
            cls._image_notice_given = True
        logger.notice(
            _(
                "local backend ignores runtime.docker: commands run on this machine with its own tools",
                image=self.runtime_values["docker"],
            )
        )


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
