"""The docker/podman CLI invocation of a task attempt: a node runtime that backends compose.

docker_run runs it as a process here; slurm writes it into the job script that runs on a node. The
functions take miniwdl's TaskContainer of the attempt (its runtime values, run id, try counter and
directories) and the CLI to call, so either backend can use them without inheriting the other.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shlex
from typing import List, Optional, Tuple

from WDL._util import StructuredLogMessage as _
from WDL.runtime.task_container import TaskContainer

from .. import config as jupyter_config
from .. import gpus, studio
from ..errors import BackendError
from .task_dir import run_dir_of

LABEL_RUN_DIR = "miniwdl_jupyter.run_dir"
LABEL_CALL = "miniwdl_jupyter.call"
# `docker run` and `podman run` exit with 125 when the CLI or daemon failed, 126/127 when the
# container's command could not be started (podman also for OCI runtime errors); the task's own
# status is passed through otherwise. The task's output goes to files, so whatever the CLI printed
# is the CLI's own complaint: that tells the cases apart.
CLI_FAILURES = (125, 126, 127)
Mount = Tuple[str, str, bool]  # (container path, host path, writable), as miniwdl's prepare_mounts


def container_name(container: TaskContainer) -> str:
    """Unique per attempt and process. The call id alone repeats in nested scatters and
    sub-workflows, so a digest of the call directory tells them apart."""
    digest = hashlib.sha1(f"{container.host_dir}\0{os.getpid()}".encode()).hexdigest()[:12]
    name = f"wdl-{container.run_id}-{container.try_counter}-{digest}"
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[-200:]


def container_command(container: TaskContainer) -> List[str]:
    """What runs inside the container: the command file, its output to the call's files."""
    shell = jupyter_config.option(container.cfg, "task_runtime", "command_shell")
    return ["/bin/sh", "-c", f"{shell} ../command >> ../stdout.txt 2>> ../stderr.txt"]


def invocation(
    container: TaskContainer, logger: logging.Logger, exe: List[str], image: str, mounts: List[Mount], with_gpus: Optional[bool] = None
) -> List[str]:
    """`docker run` (or podman) with the attempt's options and mounts, up to the image."""
    args = run_arguments(container, logger, exe, with_gpus)
    for container_path, host_path, writable in mounts:
        args += mount_args(host_path, container_path, writable)
    logger.info(_("docker_run invocation", args=" ".join(shlex.quote(a) for a in args + [image]), binds=len(mounts)))
    return args + [image]


def run_arguments(container: TaskContainer, logger: logging.Logger, exe: List[str], with_gpus: Optional[bool] = None) -> List[str]:
    """`docker run` options for this attempt, from its runtime values and [docker_run] config.
    `with_gpus` (default: runtime.gpu) adds [docker_run] gpu_flags."""
    option = functools.partial(jupyter_config.option, container.cfg, "docker_run")
    values = container.runtime_values
    args = exe + [
        "run",
        "--rm",  # the CLI still returns the container's exit status
        "--sig-proxy=false",  # a signal to the CLI must not reach the task; cancel removes the container
        "--name",
        container_name(container),
        "--label",
        f"{LABEL_RUN_DIR}={run_dir_of(container.host_dir)}",
        "--label",
        f"{LABEL_CALL}={container.run_id}",
        "--workdir",
        os.path.join(container.container_dir, "work"),
    ]
    if option("init", "bool"):
        args.append("--init")  # a PID 1 that forwards signals and reaps zombies
    cpu = values.get("cpu", 0)
    if cpu > 0:
        args += ["--cpus", str(cpu)]
    memory_limit = values.get("memory_limit", 0)
    if memory_limit > 0:
        args += ["--memory", str(memory_limit)]
    if not option("as_root", "bool"):
        args += ["--user", f"{os.geteuid()}:{os.getegid()}"]
    reserved = getattr(container, "gpu_ids", [])  # devices scheduled on this machine (local backends)
    if values.get("gpu", False) if with_gpus is None else with_gpus:
        args += gpus.docker_flags(option("gpu_flags", "list"), reserved)  # the reserved devices, if any
    elif not values.get("gpu", False) and not gpus.share_with_all(container.cfg):
        args += gpus.docker_hidden_flags()
    network = values.get("docker_network")
    if network:
        # as docker_swarm: only networks the operator allowed (a task could otherwise reach
        # e.g. the host's network)
        if network in jupyter_config.option(container.cfg, "docker_swarm", "allow_networks", "list"):
            args += ["--network", network]
        else:
            logger.warning(
                _(
                    "runtime.docker_network ignored; network name must appear in JSON list from config"
                    " [docker_swarm] allow_networks / env MINIWDL__DOCKER_SWARM__ALLOW_NETWORKS",
                    docker_network=network,
                )
            )
    # miniwdl sets "privileged" only when [task_runtime] allow_privileged = true
    if values.get("privileged", False):
        logger.warning("runtime.privileged enabled (security & portability warning)")
        args.append("--privileged")
    return studio.docker_run_args(args + option("extra_args", "list"), logger)


def mount_args(host_path: str, container_path: str, writable: bool) -> List[str]:
    """`docker run` arguments that bind-mount any path. `--mount` takes a CSV record (docker reads
    it with Go's csv), so a field holding a comma, quote or line break is quoted, and `:` needs
    nothing (`-v` splits on it). Go's csv turns CR LF inside a quoted field into LF, though, so a
    path holding CR LF goes through `-v`, which takes any character but `:`; one holding both
    cannot be named and is refused."""
    paths = host_path + container_path
    if "\r\n" not in paths:
        fields = ["type=bind", f"src={host_path}", f"dst={container_path}"] + ([] if writable else ["readonly"])
        return ["--mount", ",".join(_csv_field(field) for field in fields)]
    if ":" not in paths:
        return ["-v", f"{host_path}:{container_path}" + ("" if writable else ":ro")]
    raise BackendError(
        f"docker_run cannot mount {host_path!r}: Docker has no way to name a path holding both ':' and "
        "a carriage return followed by a line feed. Rename it, or set [file_io] copy_input_files = true"
    )


def _csv_field(field: str) -> str:
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field
