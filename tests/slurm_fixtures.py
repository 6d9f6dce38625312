"""Fixtures for the tests that need the SLURM cluster (.ci/provision starts a single-node one).

Real services only: under CI=true a missing cluster fails the test; elsewhere it skips with a
one-line reason.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from conftest import require


class BackendName(str):
    """A backend's name plus the MINIWDL__* settings that make a variant of it (slurm's node runtime)."""

    def __new__(cls, name: str, env: Dict[str, str]) -> "BackendName":
        self = super().__new__(cls, name)
        self.env = env
        return self


# Node states in which a node takes jobs (sinfo %T, without its flag suffixes such as `*` or `+`).
_TAKING_JOBS = ("idle", "mixed", "allocated", "completing")


def slurm_answers(within: float = 90.0) -> bool:
    """Does a node take jobs? Asked again for up to `within` seconds: a node another test has set
    DOWN for a moment (the NODE_FAIL tests) is back soon after."""
    deadline = time.monotonic() + within
    while True:
        try:
            proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
            if proc.returncode == 0 and any(s.rstrip("*~#!%$@^-+") in _TAKING_JOBS for s in proc.stdout.split()):
                return True
        except OSError:
            return False  # no sinfo at all
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster with a node that takes jobs."""
    require("SLURM", slurm_answers(), "no SLURM node takes jobs according to `sinfo` (start the cluster with .ci/provision)")


def slurm_backend(request: pytest.FixtureRequest, runtime: str) -> BackendName:
    """The slurm backend with node runtime `runtime`, after the services it needs are checked."""
    request.getfixturevalue("slurm_cluster")
    if runtime in ("docker", "podman"):
        request.getfixturevalue("docker_image")
    # Task jobs wait in SLURM's queue, not in miniwdl's thread pool (whose default is this host's cpus).
    return BackendName("slurm", {"MINIWDL__SLURM__RUNTIME": runtime, "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "64"})


def jobs_in_queue(run_dir: Path) -> List[str]:
    """Queued or running jobs the slurm backend submitted for this run directory."""
    from miniwdl_jupyter.slurm.jobs import jobs_of_run

    return jobs_of_run(str(run_dir))


def _share_of_node_memory_mb() -> int:
    """60% of the node's memory: two such jobs never fit together, and other tests' jobs (which
    ask for little) still fit beside one."""
    sizes = subprocess.run(["sinfo", "--noheader", "--format=%m"], capture_output=True, text=True).stdout.split()
    return int(max(int(m.rstrip("+")) for m in sizes if m.rstrip("+").isdigit()) * 0.6)


def preemptable_task_memory() -> str:
    """A task's runtime.memory whose job, on the test cluster's `preemptable` partition, leaves too
    little beside it for urgent_job(), which then preempts it (.ci/provision: partition_prio
    preemption, and only `preemptable` may be preempted)."""
    return f"{_share_of_node_memory_mb()} MiB"


@contextmanager
def urgent_job() -> Iterator[str]:
    """A job of the `urgent` partition that does not fit beside a preemptable_task_memory() job, so
    SLURM cancels that job (state PREEMPTED) to start it; scancelled on leaving."""
    partitions = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True).stdout.split()
    require("the test cluster's preemption partitions", {"preemptable", "urgent"} <= set(partitions),
            "no `preemptable`/`urgent` partitions: run .ci/provision")
    job_id = subprocess.run(
        ["sbatch", "--parsable", "--partition=urgent", f"--mem={_share_of_node_memory_mb()}M", "--output=/dev/null",
         "--wrap", "sleep 600"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    try:
        yield job_id
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)
