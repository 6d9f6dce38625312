"""Container backends (miniwdl `TaskContainer` plugins) and choosing one by name."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Union

from WDL.runtime.config import Loader, load_all_plugins

from ..errors import ConfigError

_logger = logging.getLogger("miniwdl_jupyter.backends")
_DOCKER_CHECK_TTL = 30.0
_docker_checked: tuple = (0.0, False)


def installed_backends(cfg: Optional[Loader] = None) -> List[str]:
    """Names registered in `miniwdl.plugin.container_backend` and enabled by `[plugins]`."""
    from .. import config

    cfg = cfg or config.load()
    return sorted({plugin.name for enabled, plugin in load_all_plugins(cfg, "container_backend") if enabled})


def docker_answers() -> bool:
    """Does a Docker daemon answer? (cached briefly: `auto` asks it for every run)"""
    global _docker_checked
    checked_at, answer = _docker_checked
    if time.monotonic() - checked_at < _DOCKER_CHECK_TTL:
        return answer
    try:
        answer = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        answer = False
    _docker_checked = (time.monotonic(), answer)
    return answer


def resolve_backend(name: Optional[str], cfg: Loader) -> str:
    """`auto` -> docker_run when a Docker daemon answers, else local; unknown names are errors."""
    if not name or name == "auto":
        return "docker_run" if docker_answers() else "local"
    installed = installed_backends(cfg)
    if name not in installed:
        raise ConfigError(f"unknown backend {name!r}; installed backends: {', '.join(installed)}")
    return name


def cleanup_orphans(run_dir: Union[None, str, Path] = None, cfg: Optional[Loader] = None) -> int:
    """Remove docker_run containers of `run_dir`, or (without it) of every run whose miniwdl
    process is gone: its log is no longer locked. Returns how many were removed."""
    from .. import config
    from ..monitor import is_locked, log_files
    from .docker_run import LABEL_RUN_DIR

    if not docker_answers():
        return 0
    exe = (cfg or config.load())["docker_run"].get_list("exe")
    label = f"{LABEL_RUN_DIR}={Path(run_dir).absolute()}" if run_dir else LABEL_RUN_DIR
    listed = subprocess.run(
        exe + ["ps", "-a", "--filter", f"label={label}", "--format", f'{{{{.ID}}}} {{{{.Label "{LABEL_RUN_DIR}"}}}}'],
        capture_output=True,
        text=True,
    )
    doomed = []
    for line in listed.stdout.splitlines():
        container, _, owner = line.partition(" ")
        if run_dir or not is_locked(log_files(Path(owner))[0]):
            doomed.append(container)
    if doomed:
        subprocess.run(exe + ["rm", "-f", *doomed], capture_output=True)
        _logger.info("removed %d container(s) of finished runs", len(doomed))
    return len(doomed)
