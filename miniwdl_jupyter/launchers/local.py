"""Start `miniwdl run` as a local process in its own session, so it outlives the kernel.

Its own session means a kernel interrupt (SIGINT to the kernel's process group) or a kernel
restart does not reach it; only an explicit cancel does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

from .. import launch_record


def launch(command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen:
    meta = launch_record.meta_dir(run_dir)
    meta.mkdir(parents=True, exist_ok=True)
    with open(meta / "miniwdl.stdout", "wb") as out, open(launch_record.stderr_path(run_dir), "wb") as err:
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
        run_dir,
        launcher="local",
        pid=proc.pid,
        pid_start_time=launch_record.process_start_time(proc.pid),
        host=socket.gethostname(),
    )
    return proc


def cancel(record: Dict[str, Any], *, grace_seconds: float = 20.0) -> None:
    """SIGTERM to miniwdl (it stops its tasks and writes error.json); SIGKILL its group if it lingers."""
    if not launch_record.process_alive(record):
        return
    pid = int(record["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not launch_record.process_alive(record):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)  # the session leader's pid is its group id
    except ProcessLookupError:
        pass
