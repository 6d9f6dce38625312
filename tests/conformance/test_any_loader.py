"""Our backends under a plain miniwdl `Loader`: the kind miniwdl itself, its tests or a host
program create, with no cfg file and none of our defaults (`plugin_defaults` never applied). The
backends must read their settings with their own defaults: docker_run and local run a task, and
local cancels one leaving no process behind.

Each test is its own Python process calling miniwdl's API the way miniwdl's own runtime tests do:
a first task under one Loader (a backend's global_init runs once per process, with that Loader),
then the task under test with a fresh Loader, which global_init never saw.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backend_fixtures import docker_image, processes_under, requires_docker, wait_until, write_wdl  # noqa: F401

RUN_WITH_A_PLAIN_LOADER = r"""
import json, logging, os, sys
import WDL
from WDL import _util
from WDL.runtime.config import Loader

backend, wdl, run_dir, seconds = sys.argv[1:5]
logging.basicConfig(level=logging.INFO)
logger = logging.getLogger("plain-loader")
task = WDL.load(wdl).tasks[0]


def run(directory, inputs):
    cfg = Loader(logger, [])  # no cfg file; nothing of miniwdl_jupyter's defaults
    cfg.override({"scheduler": {"container_backend": backend}})
    inputs = WDL.values_from_json(inputs, task.available_inputs, task.required_inputs)
    with _util.TerminationSignalFlag(logger):
        return WDL.runtime.run_local_task(cfg, task, inputs, run_dir=directory + "/.")[1]


run(os.path.join(os.path.dirname(run_dir), "first"), {"seconds": 0})  # not under run_dir
print(json.dumps(WDL.values_to_json(run(run_dir, {"seconds": int(seconds)}))))
"""

TASK_WDL = """
version 1.1
task t {
  input { Int seconds = 0 }
  command <<< sleep ~{seconds}; echo "ran in $PWD" >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


def start(backend: str, wdl: Path, run_dir: Path, seconds: int = 0) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL")}
    env["MINIWDL_CFG"] = str(run_dir.parent / "no-such.cfg")
    return subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_A_PLAIN_LOADER, backend, str(wdl), str(run_dir), str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=run_dir.parent,
        start_new_session=True,
    )


@pytest.mark.parametrize("backend", ["docker_run", "local"])
def test_a_plain_loader_runs_a_task(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    requires_docker(request, backend)
    proc = start(backend, write_wdl(tmp_path, "t.wdl", TASK_WDL), tmp_path / "run")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert json.loads(stdout)["out"].startswith("ran in "), stdout
    assert "ConfigMissing" not in stderr


def test_a_plain_loader_cancels_a_local_task_leaving_no_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start("local", write_wdl(tmp_path, "t.wdl", TASK_WDL), run_dir, seconds=600)
    try:
        wait_until(lambda: processes_under(run_dir), 120, "the task's sleep")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "ConfigMissing" not in stderr, stderr[-3000:]
    assert "Terminated" in stderr
    assert processes_under(run_dir) == []


def test_option_falls_back_to_defaults_cfg_under_a_plain_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from WDL.runtime.config import Loader

    from miniwdl_jupyter import config

    for key in [k for k in os.environ if k.startswith("MINIWDL")]:
        monkeypatch.delenv(key)
    plain = Loader(logging.getLogger("test"), [])
    assert config.option(plain, "docker_run", "exe", "list") == ["docker"]
    assert config.option(plain, "docker_run", "require_gpu", "bool") is False
    assert config.option(plain, "local", "kill_grace_seconds", "float") == 5.0
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__EXE", '["podman"]')
    assert config.option(plain, "docker_run", "exe", "list") == ["podman"]
    plain.override({"local": {"kill_grace_seconds": 1}})
    assert config.option(plain, "local", "kill_grace_seconds", "float") == 1.0
    with pytest.raises(KeyError, match="no default"):
        config.option(plain, "local", "no_such_key")
