"""What our two backends share, on top of miniwdl's `SubprocessBase` (the base of its podman backend).

- A thread-safe resource detection: miniwdl memoizes the host's cpu/memory in
  `detect_resource_limits` *before* it initializes the scheduler those limits feed, so tasks
  starting together can reach the scheduler uninitialized (AttributeError '_cv'). A lock around
  the first detection closes that window.
- GPU reservation across every miniwdl process on the machine (gpus.py, gpu_reservation.py),
  taken before cpu/memory so a task waiting for a GPU blocks no cpu-only task;
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
from typing import Callable, Dict, Iterator, List, Optional

from WDL import Value
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.backend.cli_subprocess import SubprocessBase, _SubprocessScheduler

from .. import config as jupyter_config
from .. import gpus
from ..gpu_reservation import reserved_gpus
from .task_dir import write_command_file

_detect_lock = threading.Lock()
# How often a waiting task looks at the cancel flag and streams stderr. The task's exit itself is
# seen at once: Popen.wait() returns as soon as the process ends.
CANCEL_CHECK_SECONDS = 0.5


class ScheduledSubprocessBase(SubprocessBase):
    backend_name = ""  # as registered with miniwdl ("local", "docker_run"): named in our events
    gpu_ids: List[str] = []  # the devices reserved for the running attempt (none: no GPU scheduled)
    gpu_lock_fds: List[int] = []  # descriptors holding them, to hand to the task's process

    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> Dict[str, int]:
        with _detect_lock:
            return super().detect_resource_limits(cfg, logger)

    def process_runtime(self, logger: logging.Logger, runtime_eval: Dict[str, Value.Base]) -> None:
        super().process_runtime(logger, runtime_eval)
        gpus.read_request(self.runtime_values, runtime_eval)

    @contextmanager
    def reserved_resources(self, logger: logging.Logger, terminating: Callable[[], bool]) -> Iterator[None]:
        """Hold this task's GPUs, cpu and memory, waiting until the host has room for them."""
        with self._reserved_gpus(logger, terminating), self._reserved_cpu_memory(logger):
            yield

    @contextmanager
    def _reserved_gpus(self, logger: logging.Logger, terminating: Callable[[], bool]) -> Iterator[None]:
        found = gpus.machine_gpus(self.cfg)
        gpus.check_fits(self.runtime_values, found)
        wanted = self.runtime_values.get("gpu_count", 0)
        if not (wanted and found):
            yield
            return
        lock_dir = os.path.expanduser(jupyter_config.option(self.cfg, "jupyter", "gpu_lock_dir"))
        with reserved_gpus(logger, self.backend_name, lock_dir, [g.id for g in found], wanted, terminating) as held:
            self.gpu_ids, self.gpu_lock_fds = held.device_ids, held.fds
            try:
                yield
            finally:
                self.gpu_ids, self.gpu_lock_fds = [], []

    @contextmanager
    def _reserved_cpu_memory(self, logger: logging.Logger) -> Iterator[None]:
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
