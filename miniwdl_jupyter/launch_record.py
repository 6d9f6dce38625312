"""`.miniwdl_jupyter/launch.json` inside a run directory: who started the run, where, and how.

It is written (atomically) before the miniwdl process starts, with `launcher` and `launch_time`,
and the launcher adds what finds the process again (a pid, a job id). Any process (a restarted
kernel, `%wdl runs`, a monitor on another node) reads it to tell a run that is still starting from
one whose process died, and to reach the launcher that can cancel it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from .files import atomic_write_text

DIR_NAME = ".miniwdl_jupyter"


def meta_dir(run_dir: Path) -> Path:
    return Path(run_dir) / DIR_NAME


def path(run_dir: Path) -> Path:
    return meta_dir(run_dir) / "launch.json"


def write(run_dir: Path, record: Dict[str, Any]) -> None:
    meta_dir(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(path(run_dir), json.dumps(record, indent=2, default=str))


def read(run_dir: Path) -> Optional[Dict[str, Any]]:
    """The record, or None when there is none or it is not a JSON object (a damaged run directory
    must not break listing the others)."""
    try:
        record = json.loads(path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def update(run_dir: Path, **fields: Any) -> None:
    record = read(run_dir) or {}
    record.update(fields)
    write(run_dir, record)


def request_cancel(run_dir: Path) -> None:
    (meta_dir(run_dir) / "cancel_requested").touch()


def cancel_requested(run_dir: Path) -> bool:
    return cancel_requested_at(run_dir) is not None


def cancel_requested_at(run_dir: Path) -> Optional[float]:
    """When a cancel was asked for (the marker's mtime), or None."""
    try:
        return (meta_dir(run_dir) / "cancel_requested").stat().st_mtime
    except OSError:
        return None


def stdout_path(run_dir: Path) -> Path:
    return meta_dir(run_dir) / "miniwdl.stdout"


def stderr_path(run_dir: Path) -> Path:
    return meta_dir(run_dir) / "miniwdl.stderr"
