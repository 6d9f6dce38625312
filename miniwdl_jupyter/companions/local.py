"""local's companion: always usable (the fallback of `auto`), and killing task processes a killed
run left (found by their working directory inside the run directory: each task has its own
session, so killing miniwdl's process group does not reach them)."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any, Dict, List, Optional

import psutil
from WDL.runtime.config import Loader

from . import Companion

_logger = logging.getLogger("miniwdl_jupyter.companions.local")


class LocalCompanion(Companion):
    name = "local"
    auto_rank = 1  # `auto` without a Docker daemon

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        return kill_task_processes(run_dir)


def kill_task_processes(run_dir: Path) -> int:
    """SIGKILL the process groups of processes working inside `run_dir` (local-backend tasks).
    Processes in other pid namespaces (containers that bind the run directory at the same path,
    e.g. shared-filesystem backends' jobs) are their backend's to stop, not ours."""
    inside = str(Path(run_dir).resolve()) + os.sep
    own_group, own_namespace = os.getpgid(0), _pid_namespace("self")
    groups: List[int] = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd")
        pid = proc.info["pid"]
        if not cwd or not (cwd + os.sep).startswith(inside) or pid == os.getpid():
            continue
        if _pid_namespace(str(pid)) != own_namespace:
            continue
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if group != own_group and group not in groups:
            groups.append(group)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if groups:
        _logger.info("killed %d task process group(s) left by %s", len(groups), run_dir)
    return len(groups)


def _pid_namespace(pid: str) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
