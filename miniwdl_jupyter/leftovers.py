"""Stop what a run left running after its miniwdl process died (SIGKILL, OOM killer, a crashed
node): docker_run containers, found by their run-directory label, and `local` task processes,
found by their working directory inside the run directory (each task has its own session, so
killing miniwdl's process group does not reach them).

Cleaning up is the runs layer's job (DESIGN.md): backends only say how to find their leftovers.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import List, Optional

import psutil
from WDL.runtime.config import Loader

from .backend_choice import docker_answers, docker_exe
from .backends.container_cli import LABEL_RUN_DIR
from .run_dirs import is_locked, log_files

_logger = logging.getLogger("miniwdl_jupyter.leftovers")


def stop_leftovers(run_dir: Path, cfg: Loader) -> int:
    """Stop every container and task process of `run_dir`. Call it only once its miniwdl process
    is gone (or has been told to stop). Returns how many were stopped."""
    # Batch jobs first, by the API: on AWS they run on other hosts, where nothing else reaches them
    return (
        stop_batch_jobs(run_dir, cfg)
        + cancel_slurm_jobs(run_dir)
        + remove_containers(cfg, run_dir)
        + kill_task_processes(run_dir)
    )


def cancel_slurm_jobs(run_dir: Path) -> int:
    """scancel the SLURM task jobs of a slurm-backend run (found by the comment naming its run dir)."""
    from . import launch_record

    if (launch_record.read(run_dir) or {}).get("backend") != "slurm" or not shutil.which("squeue"):
        return 0
    from .slurm.companion import cancel_run_jobs

    return cancel_run_jobs(run_dir)


def stop_batch_jobs(run_dir: Path, cfg: Loader) -> int:
    """TerminateJob for the AWS Batch task jobs of an aws_batch run (found by their name prefix)."""
    from . import launch_record

    record = launch_record.read(run_dir) or {}
    if record.get("backend") != "aws_batch":
        return 0
    from .backends.batch_jobs import stop_run_jobs

    settings = {"region": record["aws_region"], "endpoint_url": record.get("aws_endpoint_url", "")} if record.get("aws_region") else None
    stopped = stop_run_jobs(cfg, str(run_dir), record.get("task_queues"), settings)
    if stopped:
        _logger.info("terminated %d AWS Batch job(s) left by %s", len(stopped), run_dir)
    return len(stopped)


def remove_containers(cfg: Loader, run_dir: Optional[Path] = None) -> int:
    """Remove docker_run containers of `run_dir`, or (without it) of every run whose miniwdl
    process is gone: its log is no longer locked."""
    exe = docker_exe(cfg)
    if not docker_answers(exe):
        return 0
    # abspath, like the label docker_run writes
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


def kill_task_processes(run_dir: Path) -> int:
    """SIGKILL the process groups of processes working inside `run_dir` (local-backend tasks).
    Processes in other pid namespaces (containers that bind the run directory at the same path,
    e.g. shared-filesystem backends' jobs) are their backend's to stop, not ours."""
    inside = str(Path(run_dir).resolve()) + os.sep
    own_group, own_namespace = os.getpgid(0), _pid_namespace("self")
    groups: List[int] = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd")
        pid = proc.info["pid"]
        if not cwd or not (cwd + os.sep).startswith(inside) or pid == os.getpid():
            continue
        if _pid_namespace(str(pid)) != own_namespace:
            continue
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if group != own_group and group not in groups:
            groups.append(group)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if groups:
        _logger.info("killed %d task process group(s) left by %s", len(groups), run_dir)
    return len(groups)


def _pid_namespace(pid: str) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None
