"""Choosing a run's container backend by name: `auto`, or any installed miniwdl backend plugin."""

from __future__ import annotations

import subprocess
import time
from typing import Dict, List, Optional, Sequence, Tuple

from WDL.runtime.config import Loader, load_all_plugins

from . import config
from .errors import ConfigError

_DOCKER_CHECK_TTL = 30.0
_docker_checks: Dict[Tuple[str, ...], Tuple[float, bool]] = {}


def installed_backends(cfg: Loader) -> List[str]:
    """Names registered in `miniwdl.plugin.container_backend` and enabled by `[plugins]`."""
    return sorted({plugin.name for enabled, plugin in load_all_plugins(cfg, "container_backend") if enabled})


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


def resolve_backend(name: Optional[str], cfg: Loader) -> str:
    """`auto` (or empty) -> docker_run when a Docker daemon answers, else local; an unknown name is
    a ConfigError listing the installed ones (miniwdl itself would raise a bare KeyError)."""
    if not name or name == "auto":
        return "docker_run" if docker_answers(docker_exe(cfg)) else "local"
    installed = installed_backends(cfg)
    if name not in installed:
        raise ConfigError(f"unknown backend {name!r}; installed backends: {', '.join(installed)}")
    if name == "aws_batch":  # its settings (and Studio's EFS) are checked before anything starts
        from .aws.settings import preflight

        preflight(cfg)
    return name
