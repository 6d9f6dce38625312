"""Reserving GPUs for a task, across every miniwdl process on this machine.

Runs from two notebooks (two kernels, two miniwdl processes) share the machine's GPUs, so a
reservation cannot live in one process's memory. Each device has a lock file in a per-machine
directory (`[jupyter] gpu_lock_dir`); a task holds an exclusive `flock` on the files of its devices
for its whole life. The kernel drops a flock when the last descriptor holding it closes, so devices
come back when the task ends, fails or is cancelled, and also when its miniwdl process is killed:
no stale reservation to clean up. The descriptors are handed to the task's own process too (the
command on `local`, the `docker run` client on `docker_run`), so a task that outlives a killed
miniwdl keeps its devices until it ends or is stopped.

A task takes all its devices at once or none (two 2-GPU tasks each holding one would wait for each
other forever), lowest free ids first. Waiting tasks try again every POLL_SECONDS; there is no queue,
so a large request may wait while smaller ones keep finding a free device.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence

from WDL.runtime.error import Terminated

from . import protocol

POLL_SECONDS = 0.5
# A waiting task says so when it starts waiting and then every this many seconds.
WAITING_NOTICE_SECONDS = 60.0


class GpuReservation:
    """The devices one task holds, and the descriptors that hold them."""

    def __init__(self, device_ids: List[str], fds: List[int]) -> None:
        self.device_ids = device_ids
        self.fds = fds

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)  # drops this descriptor's flock (copies in the task process keep it)
        self.fds = []


def lock_path(lock_dir: str, device_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device_id)
    return os.path.join(lock_dir, f"gpu-{safe}.lock")


def _open_lock(lock_dir: str, device_id: str) -> int:
    """The device's lock file, created if missing. Read-only is enough for flock, so another user's
    file serves too; the directory is made writable by all (sticky, as /tmp) for theirs."""
    if not os.path.isdir(lock_dir):
        os.makedirs(lock_dir, exist_ok=True)
        try:
            os.chmod(lock_dir, 0o1777)
        except OSError:
            pass  # created by someone else meanwhile
    path = lock_path(lock_dir, device_id)
    try:
        # without O_CREAT first: fs.protected_regular refuses O_CREAT on another user's file here
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


def try_reserve(lock_dir: str, device_ids: Sequence[str], count: int) -> Optional[GpuReservation]:
    """`count` free devices of `device_ids`, locked; None (holding nothing) if fewer are free."""
    taken_ids: List[str] = []
    fds: List[int] = []
    for device_id in device_ids:
        fd = _open_lock(lock_dir, device_id)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exn:
            os.close(fd)
            if exn.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            continue
        taken_ids.append(device_id)
        fds.append(fd)
        if len(taken_ids) == count:
            return GpuReservation(taken_ids, fds)
    GpuReservation(taken_ids, fds).release()
    return None


def free_devices(lock_dir: str, device_ids: Sequence[str]) -> List[str]:
    """Which of `device_ids` no task holds right now."""
    free = []
    for device_id in device_ids:
        reservation = try_reserve(lock_dir, [device_id], 1)
        if reservation is not None:
            reservation.release()
            free.append(device_id)
    return free


@contextmanager
def reserved_gpus(
    logger: logging.Logger,
    backend: str,
    lock_dir: str,
    device_ids: Sequence[str],
    count: int,
    terminating: Callable[[], bool],
) -> Iterator[GpuReservation]:
    """Hold `count` of `device_ids` for the block, waiting (and saying so) while too few are free;
    raises Terminated if the run is cancelled meanwhile."""
    started = time.monotonic()
    next_notice = started
    while True:
        reservation = try_reserve(lock_dir, device_ids, count)
        if reservation is not None:
            break
        if terminating():
            raise Terminated()
        now = time.monotonic()
        if now >= next_notice:
            protocol.task_waiting(logger, backend, "a GPU", now - started, gpus_wanted=count, gpus=len(device_ids))
            next_notice = now + WAITING_NOTICE_SECONDS
        time.sleep(POLL_SECONDS)
    try:
        protocol.task_gpus(logger, backend, reservation.device_ids, time.monotonic() - started)
        yield reservation
    finally:
        reservation.release()
