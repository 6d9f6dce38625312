"""Our container backends as miniwdl plugins: from `miniwdl run`, cancel without leftovers,
orphan cleanup, and short errors for a missing image or daemon."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import backends, config, launch_record
from miniwdl_jupyter.backends.docker_run import LABEL_RUN_DIR, DockerRunContainer
from miniwdl_jupyter.errors import BackendError, Cancelled

from conftest import wdl


def labelled_containers(run_dir: Path) -> list:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_RUN_DIR}={run_dir}"], capture_output=True, text=True
    ).stdout
    return out.split()


def processes_under(run_dir: Path) -> list:
    """Processes whose working directory is inside the run directory (the local backend's tasks)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(run_dir)):
                found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("backend", ["docker_run", "local"])
def test_miniwdl_run_uses_the_plugin_from_a_cfg_file(docker, workdir, backend):
    (workdir / "hello.wdl").write_text(wdl("scatter.wdl", docker))
    (workdir / "miniwdl.cfg").write_text(f"[scheduler]\ncontainer_backend = {backend}\n")
    proc = subprocess.run(
        ["miniwdl", "run", "hello.wdl", "names=a", "names=b", "--cfg", "miniwdl.cfg", "--dir", "out/."],
        capture_output=True, text=True, cwd=workdir, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (workdir / "out" / "workflow.log").read_text()
    assert ("docker_run initialized" if backend == "docker_run" else "local backend initialized") in log
    assert sorted(p.read_text() for p in (workdir / "out" / "out" / "files").rglob("*.txt")) == ["hello a\n", "hello b\n"]


@pytest.mark.parametrize("backend", ["docker_run", "local"])
def test_cancel_a_10_way_scatter_leaves_nothing_running(docker, workdir, backend):
    run = mj.run(wdl("sleep_scatter.wdl", docker), {"n": 10, "seconds": 600}, backend=backend, wait=False)
    deadline = time.monotonic() + 120
    while run.poll().counts["running"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run.state.counts["running"] >= 2, run.log()
    time.sleep(1)  # let the commands really start
    assert (labelled_containers(run.run_dir) if backend == "docker_run" else processes_under(run.run_dir))
    started = time.monotonic()
    run.cancel()
    assert run.status == "cancelled" and time.monotonic() - started < 10
    assert labelled_containers(run.run_dir) == []
    assert processes_under(run.run_dir) == []
    with pytest.raises(Cancelled):
        run.wait()


def test_containers_of_a_killed_run_are_removed_by_the_next_run(docker, workdir):
    run = mj.run(wdl("sleep_scatter.wdl", docker), {"n": 2, "seconds": 600}, backend="docker_run", wait=False)
    deadline = time.monotonic() + 120
    while not labelled_containers(run.run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert labelled_containers(run.run_dir)
    os.killpg(launch_record.read(run.run_dir)["pid"], signal.SIGKILL)  # no chance to clean up
    run.wait(timeout=30, raise_on_failure=False)
    assert run.status == "failed"
    assert labelled_containers(run.run_dir), "the hard kill left its containers"
    assert backends.cleanup_orphans() >= 1
    assert labelled_containers(run.run_dir) == []


def test_missing_image_is_a_backend_error_naming_it(docker, workdir):
    source = 'version 1.1\ntask t { command <<< echo hi >>> runtime { docker: "no-such/image:0.1" } }\n'
    with pytest.raises(BackendError, match=r"image no-such/image:0.1 is not on this machine and could not be pulled"):
        mj.run(source, backend="docker_run")


def test_daemon_not_answering_is_a_backend_error(docker, workdir, monkeypatch):
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__EXE", '["docker", "-H", "unix:///nonexistent/docker.sock"]')
    with pytest.raises(BackendError, match="Docker daemon is not answering"):
        mj.run(wdl("exit3.wdl", docker), backend="docker_run")


def test_docker_run_arguments_follow_runtime_values_and_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    cfg = config.load()
    container = DockerRunContainer(cfg, "call-t", str(tmp_path / "call-t"))
    container.runtime_values = {"cpu": 2, "memory_limit": 2**30, "gpu": True, "privileged": True}
    args = container.run_arguments(logging.getLogger("test"))
    assert args[:2] == ["docker", "run"]
    assert ["--cpus", "2"] == args[args.index("--cpus"): args.index("--cpus") + 2]
    assert ["--memory", str(2**30)] == args[args.index("--memory"): args.index("--memory") + 2]
    assert ["--gpus", "all"] == args[args.index("--gpus"): args.index("--gpus") + 2]
    assert "--privileged" not in args, "privileged needs [docker_run] allow_privileged"
    assert f"--user" in args and f"{os.geteuid()}:{os.getegid()}" in args

    cfg = config.load(overrides={"docker_run": {"allow_privileged": True, "as_root": True, "exe": ["podman"], "gpu_flags": ["--device", "nvidia.com/gpu=all"]}})
    container = DockerRunContainer(cfg, "call-t", str(tmp_path / "call-u"))
    container.runtime_values = {"gpu": True, "privileged": True}
    args = container.run_arguments(logging.getLogger("test"))
    assert args[:2] == ["podman", "run"] and "--privileged" in args and "--user" not in args
    assert ["--device", "nvidia.com/gpu=all"] == args[args.index("--device"): args.index("--device") + 2]


def test_auto_backend_and_unknown_names(docker, monkeypatch, tmp_path):
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "none.cfg"))
    cfg = config.load()
    assert backends.resolve_backend("auto", cfg) == "docker_run"
    assert {"docker_run", "local", "docker_swarm"} <= set(backends.installed_backends(cfg))
    with pytest.raises(Exception, match="installed backends: .*docker_run.*local"):
        backends.resolve_backend("nosuch", cfg)


def test_podman_through_docker_run(docker, workdir, monkeypatch):
    import shutil

    from conftest import require

    require("podman", shutil.which("podman") is not None, "podman is not installed (.ci/provision installs it)")
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__EXE", '["podman"]')
    # Root's hard open-files limit here is below podman's default; see docs/backends.md.
    monkeypatch.setenv("MINIWDL__DOCKER_RUN__EXTRA_ARGS", '["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]')
    run = mj.run(wdl("scatter.wdl", docker), {"names": ["pod"]}, backend="docker_run")
    assert run.outputs["files"][0].read_text() == "hello pod\n"
    assert "docker_run invocation :: args: \"podman run" in (run.calls[0].dir / "task.log").read_text()
