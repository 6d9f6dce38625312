"""Container backends (miniwdl `TaskContainer` plugins) and choosing one by name."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from WDL.runtime.config import Loader, load_all_plugins

from ..errors import ConfigError

_logger = logging.getLogger("miniwdl_jupyter.backends")
_DOCKER_CHECK_TTL = 30.0
_docker_checks: Dict[Tuple[str, ...], Tuple[float, bool]] = {}


def installed_backends(cfg: Optional[Loader] = None) -> List[str]:
    """Names registered in `miniwdl.plugin.container_backend` and enabled by `[plugins]`."""
    from .. import config

    cfg = cfg or config.load()
    return sorted({plugin.name for enabled, plugin in load_all_plugins(cfg, "container_backend") if enabled})


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
    """`auto` -> docker_run when a Docker daemon answers, else local; unknown names are errors."""
    from .. import config

    if not name or name == "auto":
        config.apply_defaults(cfg)
        return "docker_run" if docker_answers(cfg.get_list("docker_run", "exe")) else "local"
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

    exe = config.apply_defaults(cfg or config.load()).get_list("docker_run", "exe")
    if not docker_answers(exe):
        return 0
    # abspath, like the label docker_run writes (see docker_run._run_dir_of)
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
