"""Ends the `local` backend's task processes when their miniwdl process dies without ending them.

Each task runs in its own session (so cancel can kill its whole process group), which also means
nothing ends it when miniwdl is SIGKILLed, killed by the OOM killer or crashes: the task would run
on until someone cancels the run. PR_SET_PDEATHSIG does not help: it fires when the *thread* that
started the child exits, and miniwdl starts tasks from worker threads.

So the first task of a miniwdl process starts one reaper process (this file, run as a script with
the standard library only: it must not import the package) in its own session. miniwdl keeps the
write end of a pipe whose read end is the reaper's stdin, and writes `+PGID` when a task starts
and `-PGID` when it is over. The kernel closes the write end when miniwdl's process ends, however
it ends: the reaper reads end-of-file at once (no polling, no pid reuse to guard against),
SIGTERMs the groups still listed, and SIGKILLs what is left after the grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional, Set


class TaskReaper:
    """The miniwdl side: one reaper per process, told about each task's process group."""

    _lock = threading.Lock()
    _pipe: Optional[int] = None
    _pid: Optional[int] = None  # the process that started the reaper (a fork does not share it)

    @classmethod
    def watch(cls, pgid: int, grace_seconds: float) -> None:
        cls._send(f"+{pgid}\n", grace_seconds)

    @classmethod
    def forget(cls, pgid: int) -> None:
        if cls._pipe is not None and cls._pid == os.getpid():
            cls._send(f"-{pgid}\n", 0.0)

    @classmethod
    def _send(cls, line: str, grace_seconds: float) -> None:
        with cls._lock:
            if cls._pipe is None or cls._pid != os.getpid():
                cls._start(grace_seconds)
            assert cls._pipe is not None
            try:
                os.write(cls._pipe, line.encode())  # under PIPE_BUF: one atomic write
            except BrokenPipeError:  # the reaper died (killed by hand): start another
                os.close(cls._pipe)
                cls._start(grace_seconds)
                os.write(cls._pipe, line.encode())

    @classmethod
    def _start(cls, grace_seconds: float) -> None:
        read_end, write_end = os.pipe()  # not inherited by other children (PEP 446)
        try:
            subprocess.Popen(
                [sys.executable, "-I", os.path.abspath(__file__), str(grace_seconds)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",  # not inside a run directory, where leftover sweeps look for tasks
                start_new_session=True,  # survives a kill of miniwdl's process group
            )
        finally:
            os.close(read_end)
        cls._pipe, cls._pid = write_end, os.getpid()


def _signal_groups(groups: Set[int], sig: int) -> Set[int]:
    """Signal each group; returns those that still existed."""
    alive = set()
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
            alive.add(pgid)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def main(grace_seconds: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in a terminal is miniwdl's to handle
    groups: Set[int] = set()
    for line in sys.stdin:  # until miniwdl's process is gone: the pipe's only writer
        line = line.strip()
        if line[:1] in ("+", "-") and line[1:].isdigit():
            (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    alive = _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pgid for pgid in alive if _group_exists(pgid)}
    _signal_groups(alive, signal.SIGKILL)


if __name__ == "__main__":
    main(float(sys.argv[1]))
