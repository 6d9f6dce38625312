"""Fixtures for the tests that need the SLURM cluster (.ci/provision starts a single-node one).

Real services only: under CI=true a missing cluster fails the test; elsewhere it skips with a
one-line reason.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import require


class BackendName(str):
    """A backend's name plus the MINIWDL__* settings that make a variant of it (slurm's node runtime)."""

    def __new__(cls, name: str, env: Dict[str, str]) -> "BackendName":
        self = super().__new__(cls, name)
        self.env = env
        return self


def slurm_answers() -> bool:
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and any(s.strip(" *") in ("idle", "mixed", "allocated", "completing") for s in proc.stdout.split())


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster with a node that takes jobs."""
    require("SLURM", slurm_answers(), "no SLURM node answers `sinfo` as idle (start the cluster with .ci/provision)")


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
