"""The launcher interface and its registry (the launchers themselves are in launchers/).

Launchers start a run's miniwdl process somewhere: here (`local`), as a SLURM job, as an AWS Batch
job, on a WES server. A registry, like papermill's engines: built-ins plus the entry-point group
`miniwdl_jupyter.launchers`. The launch record names its launcher, so any later process
(a restarted kernel, `%wdl runs`, a monitor on another host) asks the same launcher whether the
run is alive and how to cancel it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from WDL.runtime.config import Loader

from . import registry
from .errors import ConfigError

ENTRY_POINT_GROUP = "miniwdl_jupyter.launchers"
_BUILTIN = {"local": "miniwdl_jupyter.launchers.local:LocalLauncher"}


class Launcher:
    """Starts, watches and stops the miniwdl process of a run. Subclasses are stateless: everything
    needed to find the process again goes into the launch record (`launch_record.update`)."""

    name = ""
    # The container backend for runs this launcher starts when none is chosen (`[jupyter] backend`
    # auto): e.g. a Batch head job's tasks are Batch jobs, not containers on this machine.
    default_backend: Optional[str] = None

    def launch(
        self, command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path, cfg: Loader
    ) -> Optional[subprocess.Popen]:
        """Start `command` (`python -m WDL run ... --dir RUN_DIR/.`; argv[0] is this process's
        python) so that it writes `run_dir`. Returns the Popen if the process is our child."""
        raise NotImplementedError

    def alive(self, record: Dict[str, Any], cfg: Loader) -> Optional[bool]:
        """Is the run's miniwdl process (or the job holding it) still queued or running?
        None: this process cannot tell (e.g. another host's pid)."""
        return None

    def cancel(self, record: Dict[str, Any], run_dir: Path, cfg: Loader) -> None:
        """Stop the miniwdl process; it stops its own tasks and writes error.json."""
        raise NotImplementedError

    def describe(self, record: Dict[str, Any], cfg: Loader) -> Dict[str, Any]:
        """Facts for the progress view and `%wdl runs` (job id, state, node...)."""
        return {}

    def follow(self, address: str, root: Path, cfg: Loader) -> Path:
        """For `attach("<launcher name>:...")`: a local run directory under `root` that mirrors the
        run `address` names elsewhere (e.g. `wes:URL#RUN_ID`)."""
        raise ConfigError(f"the {self.name} launcher cannot attach to {address!r}")


_instances: Dict[str, Launcher] = {}


def available() -> List[str]:
    return registry.names(ENTRY_POINT_GROUP, _BUILTIN)


def get_launcher(name: Optional[str]) -> Launcher:
    """The launcher registered under `name` (None: `local`, as records older than the registry)."""
    name = name or "local"
    if name not in _instances:
        cls = registry.load(ENTRY_POINT_GROUP, name, _BUILTIN)
        if cls is None:
            raise ConfigError(f"unknown launcher {name!r}; installed launchers: {', '.join(available())}")
        _instances[name] = cls()
    return _instances[name]
