"""`.miniwdl_jupyter/launch.json` inside a run directory: who started the run, where, and how.

It lets any process (a restarted kernel, `%wdl runs`, a monitor on another node) tell a run that is
still starting up from one whose process died, and find the launcher's stdout/stderr.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Dict, Optional

DIR_NAME = ".miniwdl_jupyter"


def meta_dir(run_dir: Path) -> Path:
    return Path(run_dir) / DIR_NAME


def write(run_dir: Path, record: Dict[str, Any]) -> None:
    path = meta_dir(run_dir) / "launch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a record


def read(run_dir: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads((meta_dir(run_dir) / "launch.json").read_text())
    except (OSError, ValueError):
        return None


def update(run_dir: Path, **fields: Any) -> None:
    record = read(run_dir) or {}
    record.update(fields)
    write(run_dir, record)


def process_start_time(pid: int) -> Optional[str]:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): tells pid reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished; it only waits to be reaped
        return None
    return fields[19]


def process_alive(record: Optional[Dict[str, Any]]) -> bool:
    """Is the launched miniwdl process still alive? Only answerable on the host that started it."""
    if not record or "pid" not in record or record.get("host") != socket.gethostname():
        return False
    return process_start_time(int(record["pid"])) == record.get("pid_start_time")


def request_cancel(run_dir: Path) -> None:
    (meta_dir(run_dir) / "cancel_requested").touch()


def cancel_requested(run_dir: Path) -> bool:
    return (meta_dir(run_dir) / "cancel_requested").exists()


def stderr_path(run_dir: Path) -> Path:
    return meta_dir(run_dir) / "miniwdl.stderr"


def stderr_hint(run_dir: Path, lines: int = 5) -> str:
    """The last lines the launcher's miniwdl process printed, to explain why it died."""
    try:
        tail = stderr_path(run_dir).read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (": " + " | ".join(line.strip() for line in tail)) if tail else ""
