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
- cpu/memory reservations are scheduled across concurrent tasks with miniwdl's own subprocess
  scheduler; cancelling kills the task's whole process group;
- `runtime.docker`, `docker_network` and `inlineDockerfile` mean nothing here: one notice each a run.

Settings are read with `config.option` (falling back to defaults.cfg), so the backend works with
any miniwdl Loader, including those miniwdl makes without our defaults.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import threading
from contextlib import ExitStack
from typing import Callable, Dict, List, Optional, Set, Tuple

from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating
from .task_usage import requested, sampled_local_command

# Runtime keys that only a container can act on, and what the notice about each says.
IGNORED_RUNTIME = {
    "docker": "local backend ignores runtime.docker: commands run on this machine with its own tools",
    "docker_network": "local backend ignores runtime.docker_network: there is no container network; "
    "commands use this machine's",
    "inlineDockerfile": "local backend ignores runtime.inlineDockerfile: no image is built; commands run "
    "on this machine with its own tools",
}
# The process environment every task command starts from (besides the task's own env): what a
# shell needs to find programs and speak UTF-8, taken from miniwdl's environment.
BASE_ENVIRONMENT = ("PATH", "HOME", "LANG")
# A link to a file in an input is the original: (mtime, size) to notice a command writing into it.
_Fingerprint = Tuple[int, int]


class LocalContainer(ScheduledSubprocessBase):
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

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        raise NotImplementedError("the local backend starts no container")  # _run replaces its use

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        self._notice_ignored_runtime(logger)
        with self.reserved_resources(logger), self.poll_stderr_context(logger) as poll_stderr:
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
            self._warn_of_changed_inputs(logger, linked)
        logger.notice(_("local task exit", exit_code=exit_code))
        return exit_code

    def _invocation(self, command_file: str) -> List[str]:
        """`command_shell command_file`, under `ulimit -d` when miniwdl set a memory_limit: the
        limit is set in the process that then becomes the shell, so every process of the command
        inherits it (setting it from Python after the start would race the command)."""
        shell = self.cfg.get("task_runtime", "command_shell")
        memory_limit = self.runtime_values.get("memory_limit", 0)
        if memory_limit <= 0:
            return [shell, command_file]
        kib = max(1, memory_limit // 1024)
        return ["/bin/sh", "-c", 'ulimit -d "$1" && exec "$2" "$3"', "sh", str(kib), shell, command_file]

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

    def _place_inputs(self) -> Dict[str, _Fingerprint]:
        """Put each input where the command will look for it. The command names "container" paths,
        which for this backend are host paths under the first attempt's work/ (miniwdl maps them
        once per task), while a retry works in work2/...: so an input goes both there and under
        the current attempt's directory, and is put back if [file_io] delete_work removed it.
        Files are hard links (copies across filesystems, or where linking is not allowed);
        directories are real directories of such links. With copy_input_files, all are copies.
        Returns {original: fingerprint} of the files that were linked."""
        copy = not self._bind_input_files  # miniwdl's copy_input_files already ran this attempt
        linked: Dict[str, _Fingerprint] = {}

        def link_or_copy(source: str, target: str) -> str:
            if not copy:
                try:
                    # the file itself: os.link does not follow a symlink on Linux (and miniwdl's
                    # outputs, passed on as inputs, are relative symlinks)
                    os.link(os.path.realpath(source), target)
                    linked[source] = _fingerprint(source)
                    return target
                except OSError as exn:
                    # another filesystem; fs.protected_hardlinks (a file you don't own); too many links
                    if exn.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                        raise
            return shutil.copy2(source, target)

        for host_path, container_path in self.input_path_map.items():
            source = host_path.rstrip("/")
            for target in {self.host_work_path(container_path.rstrip("/")), container_path.rstrip("/")}:
                if os.path.lexists(target):
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if os.path.isdir(source):
                    # symlinks inside stay symlinks, as a bind mount would show them
                    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
                else:
                    link_or_copy(source, target)
        return linked

    def _warn_of_changed_inputs(self, logger: logging.Logger, linked: Dict[str, _Fingerprint]) -> None:
        """A container mounts inputs read-only; a hard link cannot be: say so when a command wrote
        into one (the user's original file changed with it)."""
        changed = sorted(original for original, before in linked.items() if _fingerprint(original) != before)
        if changed:
            logger.warning(
                _(
                    "the command wrote into input files, which the local backend links to the originals: "
                    "those changed too. Give such tasks copies with [file_io] copy_input_files_for",
                    files=changed[:10],
                    count=len(changed),
                )
            )

    def _task_env(self) -> Dict[str, str]:
        """The runtime's env ([task_runtime] env, pass-through variables, WDL 1.2 env inputs), with
        TMPDIR (set by [file_io] mount_tmpdir to a path in the first attempt's work/) moved to the
        current attempt's work dir, where miniwdl created it."""
        env = dict(self.runtime_values.get("env", {}))
        first_work_dir = os.path.join(self.container_dir, "work")
        tmpdir = env.get("TMPDIR")
        if tmpdir and os.path.commonpath([tmpdir, first_work_dir]) == first_work_dir:
            env["TMPDIR"] = self.host_work_path(tmpdir)
        return env

    def _environment(self) -> Dict[str, str]:
        """The command's process environment before the task's own exports: a minimal base, as a
        container's image would give, not everything the notebook happens to have set. TMPDIR is
        absent unless [file_io] mount_tmpdir sets it (in the exports), as in a container."""
        env = {key: os.environ[key] for key in BASE_ENVIRONMENT if key in os.environ}
        env.setdefault("PATH", os.defpath)
        env.setdefault("HOME", self.host_work_dir())
        env.setdefault("LANG", "C.UTF-8")
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


def _fingerprint(path: str) -> Optional[_Fingerprint]:
    """(mtime, size) of a file; None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
