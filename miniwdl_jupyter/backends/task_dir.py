"""A call directory as every backend sees it: the run it belongs to, the command file a task's
runtime executes, and the image a task runs in when it names none.

Neutral ground: docker_run, local, slurm and aws_batch all use these, and none of them owns them.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, Dict, Mapping

# miniwdl's docker_swarm falls back to this image when a task names none and [task_runtime]
# defaults has no `docker` either.
FALLBACK_IMAGE = "ubuntu:22.04"


def run_dir_of(host_dir: str) -> str:
    """The run directory a call directory belongs to: the highest ancestor holding workflow.log
    (a workflow run), else the call directory itself (a single-task run)."""
    path = top = os.path.abspath(host_dir)
    while os.path.dirname(path) != path:
        if os.path.exists(os.path.join(path, "workflow.log")):
            top = path
        path = os.path.dirname(path)
    return top


def task_image(runtime_values: Mapping[str, Any]) -> str:
    """The image of a task: runtime.docker (which miniwdl fills from [task_runtime] defaults),
    else miniwdl's own fallback."""
    return runtime_values.get("docker") or FALLBACK_IMAGE


def write_command_file(host_dir: str, command: str, env: Dict[str, str]) -> str:
    """Write `command` preceded by `export` lines for the task's environment; returns the file's
    path. Exports in the script, as miniwdl's SubprocessBase does, because `--env` is subject to
    command-line length limits and `--env-file` quoting differs between CLIs."""
    path = os.path.join(host_dir, "command")
    with open(path, "w") as outfile:
        for key, value in env.items():
            outfile.write(f"export {key}={shlex.quote(value)}\n")
        outfile.write(command)
    return path
