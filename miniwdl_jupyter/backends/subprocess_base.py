"""What our two backends share, on top of miniwdl's `SubprocessBase` (the base of its podman backend).

- A thread-safe resource detection: miniwdl memoizes the host's cpu/memory in
  `detect_resource_limits` *before* it initializes the scheduler those limits feed, so tasks
  starting together can reach the scheduler uninitialized (AttributeError '_cv'). A lock around
  the first detection closes that window.
- cpu/memory reservation through miniwdl's own `_SubprocessScheduler` (one per process, i.e. per
  run), the env-exporting command file, and a wait loop that returns the moment the task process
  exits (no fixed polling period on the critical path) while still noticing cancellation.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import threading
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Optional

from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.backend.cli_subprocess import SubprocessBase, _SubprocessScheduler

from .task_dir import write_command_file

_detect_lock = threading.Lock()
# How often a waiting task looks at the cancel flag and streams stderr. The task's exit itself is
# seen at once: Popen.wait() returns as soon as the process ends.
CANCEL_CHECK_SECONDS = 0.5


class ScheduledSubprocessBase(SubprocessBase):
    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> Dict[str, int]:
        with _detect_lock:
            return super().detect_resource_limits(cfg, logger)

    @contextmanager
    def reserved_resources(self, logger: logging.Logger) -> Iterator[None]:
        """Hold this task's cpu and memory reservation, waiting until the host has room for it."""
        cpu = self.runtime_values.get("cpu", 0)
        memory = self.runtime_values.get("memory_reservation", 0)
        scheduler = _SubprocessScheduler(cpu, memory)
        with scheduler:
            logger.info(_("provisioned", seconds_waited=scheduler.delay, cpu=cpu, mem_bytes=memory))
            yield

    def write_command_file(self, command: str, env: Optional[Dict[str, str]] = None) -> str:
        """task_dir.write_command_file for this attempt; `env` by default the runtime's (WDL 1.2
        `env` declarations and `[task_runtime] env`)."""
        return write_command_file(self.host_dir, command, self.runtime_values.get("env", {}) if env is None else env)


def wait_unless_terminating(
    proc: subprocess.Popen, terminating: Callable[[], bool], poll: Callable[[], None]
) -> Optional[int]:
    """The exit status of `proc`, or None if the run is being cancelled first. Calls `poll` (e.g.
    stderr streaming) while waiting and once more at the end."""
    with _ProcessExit(proc) as process_exit:
        while not process_exit.wait(CANCEL_CHECK_SECONDS):
            poll()
            if terminating():
                return None
    exit_code = proc.wait()
    poll()
    return exit_code


class _ProcessExit:
    """Sees a process's exit the moment it happens, through a Linux pidfd. (Popen.wait with a
    timeout sleeps up to 50 ms between checks: over a 100-way scatter of short tasks that adds
    up to seconds.) Falls back to Popen.wait where there is no pidfd."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        try:
            self.pidfd: Optional[int] = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # not Linux >= 5.3, or the process is already reaped
            self.pidfd = None

    def __enter__(self) -> "_ProcessExit":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)

    def wait(self, timeout: float) -> bool:
        """True once the process has exited, False after `timeout` seconds if it has not."""
        if self.pidfd is not None:
            return bool(select.select([self.pidfd], [], [], timeout)[0])
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
