"""The slurm backend's settings for one call: the `[slurm]` section, overridden by a `calls` entry
keyed by the call's id, call name or task name (per-call partitions, accounts, runtimes... without
editing the WDL)."""

from __future__ import annotations

import functools
import shlex
from typing import Any, Dict, Optional

from WDL.runtime import config

from .. import config as jupyter_config
from ..errors import ConfigError

RUNTIMES = ("docker", "podman", "apptainer", "singularity", "none")
# Settings a `[slurm] calls` entry may override for one call (or task) name.
CALL_SETTINGS = ("partition", "account", "constraint", "extra_args", "runtime", "gpu_partition")


def call_name(run_id: str) -> str:
    """The call's name from its run id: call-align-3-1 -> align (WDL names have no '-')."""
    return run_id[len("call-") :].split("-")[0] if run_id.startswith("call-") else run_id


def call_settings(cfg: config.Loader, run_id: str, task_name: str = "", runtime: Optional[str] = None) -> Dict[str, Any]:
    """[slurm] settings for call `run_id` (of task `task_name`, once known). `runtime`, once fixed
    for the call, wins over any entry."""
    option = functools.partial(jupyter_config.option, cfg, "slurm")
    found: Dict[str, Any] = {key: option(key) for key in ("partition", "account", "constraint", "runtime", "gpu_partition")}
    found["extra_args"] = option("extra_args", "list")
    calls = option("calls", "dict")
    for key in (task_name, call_name(run_id), run_id):
        override = calls.get(key) if key else None
        if isinstance(override, dict):
            unknown = set(override) - set(CALL_SETTINGS)
            if unknown:
                raise ConfigError(
                    f"[slurm] calls entry {key!r} has unknown setting(s) {', '.join(sorted(unknown))}; "
                    f"use {', '.join(CALL_SETTINGS)}"
                )
            found.update(override)
    if runtime is not None:
        found["runtime"] = runtime
    if isinstance(found["extra_args"], str):
        found["extra_args"] = shlex.split(found["extra_args"])
    if found["runtime"] not in RUNTIMES:
        raise ConfigError(f"[slurm] runtime = {found['runtime']!r} is not one of {', '.join(RUNTIMES)}")
    return found
