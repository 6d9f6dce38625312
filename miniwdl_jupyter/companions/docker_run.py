"""docker_run's companion: is a Docker daemon there, and removing containers of killed runs (found
by the run-directory label the backend puts on each)."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from WDL.runtime.config import Loader

from .. import config
from ..backends.container_cli import LABEL_RUN_DIR
from ..run_dirs import is_locked, log_files
from . import Companion

_logger = logging.getLogger("miniwdl_jupyter.companions.docker_run")
_DOCKER_CHECK_TTL = 30.0
_docker_checks: Dict[Tuple[str, ...], Tuple[float, bool]] = {}


class DockerRunCompanion(Companion):
    name = "docker_run"
    auto_rank = 0  # `auto`: docker_run when a Docker daemon answers

    def usable(self, cfg: Loader) -> bool:
        return docker_answers(docker_exe(cfg))

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        return remove_containers(cfg, run_dir)

    def sweep(self, cfg: Loader) -> int:
        return remove_containers(cfg)


def docker_exe(cfg: Loader) -> List[str]:
    """The docker-compatible CLI docker_run uses (`[docker_run] exe`)."""
    return config.option(cfg, "docker_run", "exe", "list")


def docker_answers(exe: Sequence[str] = ("docker",)) -> bool:
    """Does the daemon behind this docker-compatible CLI answer? Cached briefly: `auto` asks for
    every run, and a daemon that is down would otherwise cost the timeout each time."""
    key = tuple(exe)
    checked_at, answer = _docker_checks.get(key, (0.0, False))
    if time.monotonic() - checked_at < _DOCKER_CHECK_TTL:
        return answer
    try:
        answer = subprocess.run([*exe, "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        answer = False
    _docker_checks[key] = (time.monotonic(), answer)
    return answer


def remove_containers(cfg: Loader, run_dir: Optional[Path] = None) -> int:
    """Remove docker_run containers of `run_dir`, or (without it) of every run whose miniwdl
    process is gone: its log is no longer locked."""
    exe = docker_exe(cfg)
    if not docker_answers(exe):
        return 0
    # abspath, like the label docker_run writes
    label = f"{LABEL_RUN_DIR}={os.path.abspath(run_dir)}" if run_dir else LABEL_RUN_DIR
    ids = subprocess.run(exe + ["ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True).stdout.split()
    if not ids:
        return 0
    # `inspect` templates read labels the same way in docker and podman (`ps --format` does not)
    owners = subprocess.run(
        exe + ["inspect", "--format", f'{{{{.Id}}}} {{{{index .Config.Labels "{LABEL_RUN_DIR}"}}}}', *ids],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    doomed = []
    for line in owners:
        container, _, owner = line.partition(" ")
        if run_dir or not is_locked(log_files(Path(owner))[0]):
            doomed.append(container)
    if doomed:
        subprocess.run(exe + ["rm", "-f", *doomed], capture_output=True)
        _logger.info("removed %d container(s) of finished runs", len(doomed))
    return len(doomed)
