"""`local`: start `miniwdl run` as a process on this machine, in its own session.

Its own session means a kernel interrupt (SIGINT to the kernel's process group) or a kernel
restart does not reach it; only an explicit cancel does. The process is identified by pid plus its
start time (psutil), so a reused pid is never taken for the run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import psutil
from WDL.runtime.config import Loader

from .. import launch_record
from . import Launcher

# How long SIGTERM gets (miniwdl stops its tasks, writes error.json) before the group is killed.
CANCEL_GRACE_SECONDS = 20.0


class LocalLauncher(Launcher):
    name = "local"

    def launch(
        self, command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path, cfg: Loader
    ) -> Optional[subprocess.Popen]:
        with open(launch_record.stdout_path(run_dir), "wb") as out, open(launch_record.stderr_path(run_dir), "wb") as err:
            proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        launch_record.update(
            run_dir, pid=proc.pid, pid_start_time=process_start_time(proc.pid), host=socket.gethostname()
        )
        return proc

    def alive(self, record: Dict[str, Any], cfg: Loader) -> Optional[bool]:
        if record.get("host") != socket.gethostname():
            return None  # another machine's pid says nothing here
        if "pid" not in record:
            return None  # the launching process has not recorded it yet
        return process_start_time(int(record["pid"])) == record.get("pid_start_time")

    def cancel(self, record: Dict[str, Any], run_dir: Path, cfg: Loader) -> None:
        """SIGTERM to miniwdl (it stops its tasks and writes error.json); SIGKILL its group if it lingers."""
        if not self.alive(record, cfg):
            return
        pid = int(record["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS
        while time.monotonic() < deadline:
            if not self.alive(record, cfg):
                return
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)  # the session leader's pid is its group id
        except ProcessLookupError:
            pass

    def describe(self, record: Dict[str, Any], cfg: Loader) -> Dict[str, Any]:
        return {"pid": record["pid"], "host": record.get("host")} if "pid" in record else {}


def process_start_time(pid: int) -> Optional[float]:
    """When a live process started (None if it is gone or a zombie): tells pid reuse apart."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # finished; it only waits to be reaped
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
