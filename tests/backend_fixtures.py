"""Helpers and fixtures for the container-backend tests (docker_run, local, conformance).

Real services only: a test that needs Docker fails under CI=true when no daemon answers, and
skips with a one-line reason elsewhere. Runs go through `miniwdl run` subprocesses, as a user's
would, so the plugins are exercised exactly as installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from miniwdl_jupyter.backends.container_cli import LABEL_RUN_DIR

from conftest import TEST_IMAGE, require  # noqa: F401 - shared with the backend tests


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)


def _docker_answers() -> bool:
    try:
        return _docker("info").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_image() -> str:
    """A Docker daemon that answers and has the test image; returns the image name."""
    require("Docker", _docker_answers(), "no Docker daemon answers (start it with .ci/provision)")
    require("the test image", _docker("image", "inspect", TEST_IMAGE).returncode == 0, f"image {TEST_IMAGE} is missing (.ci/provision builds it)")
    return TEST_IMAGE


@pytest.fixture(scope="session")
def swarm(docker_image: str) -> str:
    """Docker in swarm mode, which miniwdl's docker_swarm backend needs; returns the image name."""
    state = _docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    require("Docker swarm mode", state == "active", "Docker is not in swarm mode (`docker swarm init`; .ci/provision does it)")
    return docker_image


def requires_docker(request: pytest.FixtureRequest, backend: str) -> None:
    """Resolve the service fixture a backend needs (local needs none)."""
    if backend == "docker_swarm":
        request.getfixturevalue("swarm")
    elif backend == "docker_run":
        request.getfixturevalue("docker_image")


def write_wdl(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.write_text(source.replace("IMAGE", TEST_IMAGE))
    return path


def miniwdl_env(backend: Optional[str], workdir: Path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for a `miniwdl run` on `backend` (None: as configured), isolated from the
    user's miniwdl.cfg and call cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL")}
    env.update(
        MINIWDL_CFG=str(workdir / "no-such.cfg"),
        MINIWDL__CALL_CACHE__GET="false",
        MINIWDL__CALL_CACHE__PUT="false",
        MINIWDL__CALL_CACHE__DIR=str(workdir / "cache"),
    )
    if backend:
        env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = backend
    return {**env, **(extra or {})}


def miniwdl_command(wdl: Path, run_dir: Path, inputs: Optional[dict] = None, args: tuple = ()) -> List[str]:
    command = [sys.executable, "-m", "WDL", "run", str(wdl), "--dir", f"{run_dir}/.", "--log-json", "--error-json", *args]
    if inputs is not None:
        inputs_file = run_dir.parent / f"{run_dir.name}.inputs.json"
        inputs_file.write_text(json.dumps(inputs))
        command += ["-i", str(inputs_file)]
    return command


def miniwdl_run(
    wdl: Path, backend: str, run_dir: Path, inputs: Optional[dict] = None, env: Optional[Dict[str, str]] = None, args: tuple = ()
) -> subprocess.CompletedProcess:
    return subprocess.run(
        miniwdl_command(wdl, run_dir, inputs, args),
        capture_output=True,
        text=True,
        env=miniwdl_env(backend, run_dir.parent, env),
        cwd=wdl.parent,
        timeout=300,
    )


def miniwdl_start(wdl: Path, backend: str, run_dir: Path, inputs: Optional[dict] = None) -> subprocess.Popen:
    """`miniwdl run` in the background, in its own process group (so a test can kill all of it)."""
    return subprocess.Popen(
        miniwdl_command(wdl, run_dir, inputs),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=miniwdl_env(backend, run_dir.parent),
        cwd=wdl.parent,
        start_new_session=True,
    )


def root_cause(run_dir: Path) -> dict:
    """The innermost error of a failed run's error.json."""
    error = json.loads((run_dir / "error.json").read_text())
    while isinstance(error.get("cause"), dict):
        error = error["cause"]
    return error


def json_events(log_json: Path) -> List[dict]:
    return [json.loads(line) for line in log_json.read_text().splitlines() if line.strip()]


def events_of_a_call_retried_once(call_dir: Path) -> List[dict]:
    """The call's task log events, after checking miniwdl retried it exactly once as interrupted
    (a preemption, a node failure): not as a failure of its command."""
    events = json_events(call_dir / "task.log.json")
    retried = [e for e in events if e["message"] == "interrupted task will be retried"]
    assert len(retried) == 1 and retried[0]["error"] == "Interrupted", retried
    return events


def labelled_containers(run_dir: Path) -> List[str]:
    """Containers (any state) that docker_run labelled with this run directory."""
    return _docker("ps", "-aq", "--filter", f"label={LABEL_RUN_DIR}={run_dir}").stdout.split()


def processes_under(run_dir: Path) -> List[int]:
    """Processes whose working directory is inside the run directory (the local backend's tasks)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(run_dir)):
                found.append(int(pid))
        except OSError:
            continue
    return found


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# A scatter of `n` tasks that each sleep; for cancel and cleanup tests.
SLEEP_SCATTER_WDL = """
version 1.1
workflow sleepers {
  input { Int n  Int seconds }
  scatter (i in range(n)) { call nap { input: seconds = seconds } }
}
task nap {
  input { Int seconds }
  command <<< sleep ~{seconds} >>>
  runtime { docker: "IMAGE" }
}
"""

# A two-way scatter writing one file each; for `miniwdl run` selecting the backend.
HELLO_SCATTER_WDL = """
version 1.1
workflow hello {
  input { Array[String] names = ["a", "b"] }
  scatter (name in names) { call greet { input: name = name } }
  output { Array[File] files = greet.out  Array[String] dirs = greet.dir }
}
task greet {
  input { String name }
  command <<< echo "hello ~{name}" > out.txt; pwd >&2; pwd >>>
  output { File out = "out.txt"  String dir = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""
