"""Choosing a run's container backend by name: `auto`, or any installed miniwdl backend plugin."""

from __future__ import annotations

from typing import List, Optional

from WDL.runtime.config import Loader, load_all_plugins

from .companions import all_companions, get_companion
from .errors import ConfigError


def installed_backends(cfg: Loader) -> List[str]:
    """Names registered in `miniwdl.plugin.container_backend` and enabled by `[plugins]`."""
    return sorted({plugin.name for enabled, plugin in load_all_plugins(cfg, "container_backend") if enabled})


def resolve_backend(name: Optional[str], cfg: Loader) -> str:
    """`auto` (or empty) -> the first usable backend by its companion's rank (docker_run when a
    Docker daemon answers, else local); an unknown name is a ConfigError listing the installed ones
    (miniwdl itself would raise a bare KeyError). The backend's settings are checked here, before
    anything starts."""
    if not name or name == "auto":
        ranked = sorted((c for c in all_companions() if c.auto_rank is not None), key=lambda c: c.auto_rank or 0)
        for companion in ranked:
            if companion.usable(cfg):
                return companion.name
        raise ConfigError("no backend is usable here for `auto`; name one with [jupyter] backend")
    installed = installed_backends(cfg)
    if name not in installed:
        raise ConfigError(f"unknown backend {name!r}; installed backends: {', '.join(installed)}")
    get_companion(name).preflight(cfg)
    return name
