"""The backends' documented settings reach what they control (docs/backends.md): for docker_run,
`docker inspect` of the task's running container (not the command line we build) shows the user,
--init, cpu and memory limits, and privileged mode gated by [task_runtime] allow_privileged; for
local, kill_grace_seconds escalates to SIGKILL for a task that ignores SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List

import psutil
import pytest

import miniwdl_jupyter as mj

SETTINGS_WDL = """version 1.1
task hold {
  command <<< sleep 600 >>>
  runtime {
    docker: "IMAGE"
    cpu: 1
    memory: "300 MiB"
    privileged: true
  }
}
"""


def containers_of(run_dir: Path) -> List[str]:
    listed = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=miniwdl_jupyter.run_dir={run_dir}"], capture_output=True, text=True
    )
    return listed.stdout.split()


def inspect_running_task(image: str) -> Dict[str, Any]:
    """Start the task on docker_run, `docker inspect` its container while it runs, cancel the run."""
    run = mj.run(SETTINGS_WDL.replace("IMAGE", image), backend="docker_run", cache=False, wait=False)
    try:
        deadline = time.monotonic() + 120
        while not containers_of(run.run_dir) and not run.poll().done and time.monotonic() < deadline:
            time.sleep(0.2)
        found = containers_of(run.run_dir)
        assert len(found) == 1, f"{run.status}: {run.log(tail=20)}"
        inspected = json.loads(subprocess.run(["docker", "inspect", found[0]], capture_output=True, text=True, check=True).stdout)[0]
        inspected["effective runtime"] = _effective_runtime(run.run_dir)
        return inspected
    finally:
        run.cancel()
        assert run.status == "cancelled"
        assert containers_of(run.run_dir) == []


def _effective_runtime(run_dir: Path) -> Dict[str, Any]:
    for line in (run_dir / "task.log.json").read_text().splitlines():
        event = json.loads(line)
        if event.get("message") == "effective runtime":
            return event
    raise AssertionError("no 'effective runtime' event in the task log")


def test_docker_run_defaults_reach_the_container(docker, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__TASK_RUNTIME__MEMORY_LIMIT_MULTIPLIER", "1.0")  # sets memory_limit
    inspected = inspect_running_task(docker)
    host = inspected["HostConfig"]
    assert inspected["Config"]["User"] == f"{os.geteuid()}:{os.getegid()}", "runs as you"
    assert host["Init"] is True, "--init by default"
    assert host["NanoCpus"] == 1_000_000_000, "runtime.cpu: 1"
    assert host["Memory"] == inspected["effective runtime"]["memory_limit"] == 300 * 1024 * 1024
    assert host["Privileged"] is False, "privileged: true is ignored unless [task_runtime] allow_privileged"
    labels = inspected["Config"]["Labels"]
    assert labels["miniwdl_jupyter.call"] and labels["miniwdl_jupyter.run_dir"]


def test_docker_run_as_root_without_init(docker, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__AS_ROOT", "true")
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__INIT", "false")
    inspected = inspect_running_task(docker)
    host = inspected["HostConfig"]
    assert inspected["Config"]["User"] == "", "as_root: no --user, the image's own user (root)"
    assert host.get("Init") in (None, False), "init = false"
    assert host["Memory"] == 0, "no memory limit without [task_runtime] memory_limit_multiplier"


def daemon_runs_privileged(image: str) -> bool:
    return subprocess.run(["docker", "run", "--rm", "--privileged", image, "true"], capture_output=True, timeout=120).returncode == 0


def test_docker_run_privileged_when_allowed(docker, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__TASK_RUNTIME__ALLOW_PRIVILEGED", "true")
    if daemon_runs_privileged(docker):
        assert inspect_running_task(docker)["HostConfig"]["Privileged"] is True
        return
    # A daemon that is itself confined (as on these machines, where the same task without the
    # allowance runs: test_docker_run_defaults_reach_the_container) refuses the privileged
    # container: the flag reached it, and the run says so as a BackendError, not a task failure.
    run = mj.run(SETTINGS_WDL.replace("IMAGE", docker), backend="docker_run", cache=False, wait=False)
    run.wait(timeout=120, raise_on_failure=False)
    assert run.status == "failed" and type(run.error).__name__ == "BackendError", run.error
    refusal = (run.run_dir / "docker_run.log.txt").read_text()
    assert "unable to apply caps" in refusal or "operation not permitted" in refusal, refusal
    assert "runtime.privileged enabled" in run.log(tail=None)


# The shell notes when SIGTERM came (in MARK) and goes on waiting; its `sleep` ignores SIGTERM.
IGNORES_TERM_WDL = """version 1.1
task stubborn {
  command <<<
    trap 'date +%s.%N > MARK' TERM
    (trap '' TERM; exec sleep 600) &
    while :; do wait; done
  >>>
}
"""


def _sleepers(run_dir: Path) -> List[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if proc.info["cmdline"] == ["sleep", "600"] and (proc.info["cwd"] or "").startswith(str(run_dir)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_local_kill_grace_escalates_to_sigkill_for_a_task_ignoring_sigterm(workdir, monkeypatch):
    grace = 10.0
    monkeypatch.setenv("MINIWDL__LOCAL__KILL_GRACE_SECONDS", str(grace))
    mark = workdir / "sigterm-at"
    run = mj.run(IGNORES_TERM_WDL.replace("MARK", str(mark)), backend="local", cache=False, wait=False)
    deadline = time.monotonic() + 60
    while not _sleepers(run.run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    sleepers = _sleepers(run.run_dir)
    assert len(sleepers) == 1, run.log(tail=20)
    sleeper = sleepers[0]
    cancelling = threading.Thread(target=run.cancel, kwargs={"timeout": 120})
    cancelling.start()
    # SIGTERM reaches the task (the shell notes when) but does not end it; SIGKILL does, no sooner
    # than kill_grace_seconds later. The run is cancelled and nothing is left.
    died_at: List[float] = []
    gone, alive = psutil.wait_procs([sleeper], timeout=180, callback=lambda _: died_at.append(time.time()))
    assert alive == [], "the task outlived kill_grace_seconds"
    assert mark.exists(), "the task never got SIGTERM"
    waited = died_at[0] - float(mark.read_text())
    assert grace - 0.5 <= waited < grace + 60, f"SIGKILL came {waited:.1f} s after SIGTERM; kill_grace_seconds = {grace}"
    cancelling.join(timeout=180)
    assert not cancelling.is_alive()
    assert run.status == "cancelled"
    assert _sleepers(run.run_dir) == []
