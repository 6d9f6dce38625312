"""Companions: the notebook side of each container backend, in a registry like the launchers'.

A backend (a miniwdl plugin) runs tasks inside the miniwdl process; its companion is what the runs
layer asks about that backend from the notebook's side: is it usable here (`[jupyter] backend =
auto`), are its settings sound before anything starts, do its tasks run on other machines, and
how to stop what a run left running after its miniwdl process died, or sweep what earlier killed
runs left. So the runs layer names no backend (docs/design.md, "Adding a backend").

Built-ins below, plus the entry-point group `miniwdl_jupyter.companions` (name = the backend's
name in `miniwdl.plugin.container_backend`). A backend without a companion gets the plain one:
nothing to check, nothing to clean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from WDL.runtime.config import Loader

from .. import registry

ENTRY_POINT_GROUP = "miniwdl_jupyter.companions"
_BUILTIN = {
    "docker_run": "miniwdl_jupyter.companions.docker_run:DockerRunCompanion",
    "local": "miniwdl_jupyter.companions.local:LocalCompanion",
    "docker_swarm": "miniwdl_jupyter.companions.docker_swarm:DockerSwarmCompanion",
    "slurm": "miniwdl_jupyter.slurm.companion:SlurmCompanion",
    "aws_batch": "miniwdl_jupyter.aws.companion:AwsBatchCompanion",
}


class Companion:
    """What the notebook side knows of one backend. Stateless: everything about a run comes from
    its run directory and launch record."""

    name = ""
    # Tasks run on other machines (a scheduler's nodes): this machine's cores do not bound how many
    # run at once ([jupyter] cluster_task_concurrency applies).
    runs_elsewhere = False
    # `[jupyter] backend = auto` picks the usable companion with the lowest rank; None: never picked.
    auto_rank: Optional[int] = None

    def usable(self, cfg: Loader) -> bool:
        """Can this backend run tasks from here now (asked only for `auto`)?"""
        return True

    def preflight(self, cfg: Loader) -> None:
        """Check the backend's settings before a run starts; raise ConfigError naming the fix."""

    def stop_leftovers(self, run_dir: Path, record: Dict[str, Any], cfg: Loader) -> int:
        """Stop the tasks `run_dir`'s run left running (its miniwdl process is gone or told to stop).
        `record`: its launch record ({} when it has none). Returns how many were stopped."""
        return 0

    def sweep(self, cfg: Loader) -> int:
        """Remove what runs killed earlier left behind (called off the critical path of a new run)."""
        return 0


_instances: Dict[str, Companion] = {}


def available() -> List[str]:
    return registry.names(ENTRY_POINT_GROUP, _BUILTIN)


def get_companion(backend: Optional[str]) -> Companion:
    """The companion of `backend` (the plain one when it has none)."""
    name = backend or ""
    if name not in _instances:
        cls = registry.load(ENTRY_POINT_GROUP, name, _BUILTIN) or Companion
        _instances[name] = cls()
        _instances[name].name = _instances[name].name or name
    return _instances[name]


def all_companions() -> List[Companion]:
    return [get_companion(name) for name in available()]
