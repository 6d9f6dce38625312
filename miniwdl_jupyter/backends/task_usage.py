"""How a backend puts the usage sampler (`miniwdl_jupyter/usage_sampler.py`) beside a task attempt.

Two shapes, one sampler: where this machine's python3 runs the command (local), the sampler script
is the command's parent; inside a container whose image may have no python3 (docker_run), the
sampler's shell form runs the command and then reads the container's cgroup, writing into a file
mounted from the call directory. Either way a sampler that cannot start leaves the task as it was,
with a warning, and the report says the usage is missing.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from WDL._util import StructuredLogMessage as _
from WDL.runtime import config

from .. import config as jupyter_config
from ..protocol import usage_file
from ..usage_sampler import SHELL_SAMPLER, sampled_invocation, shell_sampler_fields

CONTAINER_USAGE_FILE = usage_file("").name  # inside the container every attempt writes the same name


def host_usage_path(host_dir: str, attempt: int) -> str:
    return str(usage_file(host_dir, attempt))


def requested(runtime_values: Dict[str, Any]) -> Dict[str, Any]:
    """What the attempt asked for, recorded beside what it used (miniwdl logs its effective
    runtime only under --verbose)."""
    memory = runtime_values.get("memory_reservation") or runtime_values.get("memory_limit")
    fields = {"requested_cpu": runtime_values.get("cpu"), "requested_memory_bytes": memory}
    return {key: value for key, value in fields.items() if value}


def sampled_local_command(
    cfg: config.Loader, logger: logging.Logger, host_dir: str, attempt: int, command: List[str], asked: Dict[str, Any]
) -> List[str]:
    """`command` run under the sampler script with [usage] python, or `command` unchanged when
    sampling is off or that python cannot run."""
    if not jupyter_config.option(cfg, "usage", "sample", "bool"):
        return command
    python = jupyter_config.option(cfg, "usage", "python") or sys.executable
    if not (python and os.access(python, os.X_OK)):
        logger.warning(_("usage sampler cannot start: the task runs without usage figures", python=python))
        return command
    interval = jupyter_config.option(cfg, "usage", "interval_seconds", "float")
    return sampled_invocation(python, host_usage_path(host_dir, attempt), interval, command, asked)


# On a cluster node, the python3 and the sampler script of the submitting machine may be missing:
# then the command runs unsampled, as it would without the sampler ($1 = python, $4 = the script).
_NODE_GUARD = 'if [ -x "$1" ] && [ -r "$4" ]; then exec "$@"; fi; while [ "$1" != "--" ]; do shift; done; shift; exec "$@"'


def node_sampled_command(
    cfg: config.Loader, logger: logging.Logger, host_dir: str, attempt: int, command: List[str], asked: Dict[str, Any]
) -> List[str]:
    """As sampled_local_command, for a job script on another machine (slurm, runtime = none)."""
    sampled = sampled_local_command(cfg, logger, host_dir, attempt, command, asked)
    return sampled if sampled == command else ["/bin/sh", "-c", _NODE_GUARD, "sh"] + sampled


def sampled_job_command(cfg: config.Loader, host_dir: str, attempt: int, command_line: str, asked: Dict[str, Any]) -> List[str]:
    """A job's command line under the shell sampler, writing the attempt's usage file straight into
    the call directory on the shared filesystem (aws_batch); unchanged when sampling is off."""
    if not jupyter_config.option(cfg, "usage", "sample", "bool"):
        return ["/bin/sh", "-c", command_line]
    return _shell_sampled(cfg, command_line, host_usage_path(host_dir, attempt), asked)


def container_usage_mount(
    cfg: config.Loader, host_dir: str, container_dir: str, attempt: int
) -> Optional[Tuple[str, str, bool]]:
    """A writable (container path, host path, True) mount for the attempt's usage file, created
    empty; None when sampling is off."""
    if not jupyter_config.option(cfg, "usage", "sample", "bool"):
        return None
    host_path = host_usage_path(host_dir, attempt)
    with open(host_path, "w"):
        pass
    return (os.path.join(container_dir, CONTAINER_USAGE_FILE), host_path, True)


def sampled_container_command(cfg: config.Loader, command_line: str, asked: Dict[str, Any]) -> List[str]:
    """The container's argv: `command_line` under the shell sampler, writing ../usage.json
    (relative to the work directory the container starts in)."""
    return _shell_sampled(cfg, command_line, "../" + CONTAINER_USAGE_FILE, asked)


def _shell_sampled(cfg: config.Loader, command_line: str, usage_path: str, asked: Dict[str, Any]) -> List[str]:
    interval = jupyter_config.option(cfg, "usage", "interval_seconds", "float")
    return ["/bin/sh", "-c", SHELL_SAMPLER, "sh", command_line, usage_path, shell_sampler_fields(asked), f"{interval:g}"]


def drop_if_empty(host_path: str) -> None:
    """A container that never ran its command leaves the mounted file empty: no usage, no file."""
    try:
        if os.path.getsize(host_path) == 0:
            os.remove(host_path)
    except OSError:
        pass
