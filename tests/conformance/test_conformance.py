"""WDL conformance across container backends: every case runs through `miniwdl run` on docker_run,
local, docker_swarm and slurm (node runtime docker and none) and must give the expected outputs
(file contents compared, not paths) or the expected error.

A case is `<name>.json` beside this module: {"inputs": {...}, "outputs": {...}} or
{"inputs": {...}, "error": {...fields of the root cause in error.json}}, optionally with "wdl" (the
WDL file's stem, default <name>) and "env" (MINIWDL__* settings for the run). Inputs written
"@name" are files or folders staged next to the WDL.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from backend_fixtures import (  # noqa: F401 (docker_image and swarm: fixtures requires_docker asks for)
    docker_image,
    miniwdl_run as _miniwdl_run,
    requires_docker,
    root_cause,
    swarm,
    write_wdl,
)
from slurm_fixtures import slurm_backend, slurm_cluster  # noqa: F401 (slurm_cluster: asked for by slurm_backend)

CASES_DIR = Path(__file__).parent
CASES = sorted(p.stem for p in CASES_DIR.glob("*.json"))
BACKENDS = ["docker_run", "local", "docker_swarm", "slurm-docker", "slurm-none"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param.startswith("slurm-"):  # slurm with the node runtime after the dash
        return slurm_backend(request, request.param.split("-", 1)[1])
    requires_docker(request, request.param)
    return request.param


def miniwdl_run(wdl: Path, backend: str, run_dir: Path, inputs=None, env=None, args=()):
    """backend_fixtures.miniwdl_run, plus the settings of a backend variant (slurm's node runtime)."""
    return _miniwdl_run(wdl, str(backend), run_dir, inputs, env={**getattr(backend, "env", {}), **(env or {})}, args=args)


def stage(workdir: Path) -> None:
    """Every case's WDL (imports find each other) and the input files the cases name."""
    for wdl in CASES_DIR.glob("*.wdl"):
        write_wdl(workdir, wdl.name, wdl.read_text())
    (workdir / "greeting.txt").write_text("hello file\n")
    (workdir / "folder").mkdir(exist_ok=True)
    for name in ("x.txt", "y.txt"):
        (workdir / "folder" / name).write_text(name)


def materialize(value):
    """Replace file paths by their contents, directories by {relative path: contents}."""
    if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
        path = Path(value)
        if path.is_dir():
            return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}
        return path.read_text()
    if isinstance(value, list):
        return [materialize(v) for v in value]
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES)
def test_case(case: str, backend: str, tmp_path: Path) -> None:
    spec = json.loads((CASES_DIR / f"{case}.json").read_text())
    stage(tmp_path)
    inputs = {k: str(tmp_path / v[1:]) if isinstance(v, str) and v.startswith("@") else v for k, v in spec["inputs"].items()}
    run_dir = tmp_path / "run"
    proc = miniwdl_run(tmp_path / f"{spec.get('wdl', case)}.wdl", backend, run_dir, inputs, env=spec.get("env"))
    if "outputs" in spec:
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs = json.loads((run_dir / "outputs.json").read_text())
        assert {k.split(".", 1)[1]: materialize(v) for k, v in outputs.items()} == spec["outputs"]
    else:
        assert proc.returncode != 0, "this case must fail"
        cause = root_cause(run_dir)
        assert {k: cause.get(k) for k in spec["error"]} == spec["error"]


def test_retry_attempts_keep_their_own_files(backend: str, tmp_path: Path) -> None:
    stage(tmp_path)
    run_dir = tmp_path / "run"
    proc = miniwdl_run(tmp_path / "retries.wdl", backend, run_dir, {})
    assert proc.returncode == 0, proc.stderr[-3000:]
    flaky = run_dir / "call-flaky"
    # task.attempt counts from 0; the host side of each attempt is numbered from the second on
    assert (flaky / "stderr.txt").read_text() == "attempt 0 fails\n"
    assert (flaky / "stderr2.txt").read_text() == "attempt 1 fails\n"
    assert (flaky / "stdout3.txt").read_text() == "ok after 2\n"
    assert (flaky / "work2").is_dir() and (flaky / "work3").is_dir()
    if backend == "docker_run":  # what the `docker run` CLI printed, per attempt (docs/backends.md)
        assert all((flaky / name).is_file() for name in ("docker_run.log.txt", "docker_run2.log.txt", "docker_run3.log.txt"))


@pytest.mark.parametrize("backend", ["docker_run", "local"], indirect=True)  # our scheduler, not swarm's
@pytest.mark.parametrize(
    "cpu, task_concurrency",
    [(os.cpu_count(), None), (1, "1")],
    ids=["each task reserves every cpu", "task_concurrency 1"],
)
def test_two_tasks_that_cannot_share_the_host_run_one_after_the_other(backend, cpu, task_concurrency, tmp_path):
    stage(tmp_path)
    run_dir = tmp_path / "run"
    env = {"MINIWDL__SCHEDULER__TASK_CONCURRENCY": task_concurrency} if task_concurrency else None
    proc = miniwdl_run(tmp_path / "busy.wdl", backend, run_dir, {"cpu": cpu}, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spans = sorted(([float(t) for t in span] for span in json.loads((run_dir / "outputs.json").read_text())["busy.spans"]))
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], f"tasks overlapped: {spans}"


def test_call_cache(backend: str, tmp_path: Path) -> None:
    stage(tmp_path)
    cache = {"MINIWDL__CALL_CACHE__GET": "true", "MINIWDL__CALL_CACHE__PUT": "true"}
    first = miniwdl_run(tmp_path / "control_flow.wdl", backend, tmp_path / "run1", {"bonus": 1}, env=cache)
    assert first.returncode == 0, first.stderr[-3000:]
    # Plain `miniwdl run` also reuses the whole workflow's entry: nothing runs again.
    second = miniwdl_run(tmp_path / "control_flow.wdl", backend, tmp_path / "run2", {"bonus": 1}, env=cache)
    assert second.returncode == 0, second.stderr[-3000:]
    log = (tmp_path / "run2" / "workflow.log").read_text()
    assert "done (cached)" in log and "task setup" not in log
    assert json.loads((tmp_path / "run2" / "outputs.json").read_text()) == json.loads((tmp_path / "run1" / "outputs.json").read_text())


# Task inputs as a user's files: names no one would choose, modes, and what a command may do to them.
INPUTS_WDL = r"""
version 1.2
task inputs {
  input { File f  Directory d }
  command <<<
    cat "~{f}"
    find "~{d}" -type f | sed "s|^~{d}/||" | LC_ALL=C sort > listing.txt
    stat -c %a "~{f}" "~{d}/run me.sh" > modes.txt
    # a container mounts inputs read-only; wherever they are writable, only the task's view changes
    rm -f "~{f}" 2>/dev/null || true
    mv "~{d}/x.txt" moved.txt 2>/dev/null || true
    rm -rf "~{d}/sub" 2>/dev/null || true
  >>>
  output {
    String content = read_string(stdout())
    Array[String] listing = read_lines("listing.txt")
    Array[String] modes = read_lines("modes.txt")
  }
  runtime { docker: "IMAGE" }
}
"""
ODD = "in:put, 1 \x01\t é"  # colon, comma, a control character, a tab, a space, non-ASCII


def test_inputs_with_odd_names_are_real_files_and_the_originals_stay_intact(backend: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs:2026, a b"  # the run directory's own path has a colon, a comma, spaces
    runs.mkdir()
    source = runs / f"{ODD}.txt"
    source.write_text("file content\n")
    source.chmod(0o640)
    folder = runs / f"dir {ODD}"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.txt").write_text("x")
    (folder / "sub" / "deep, er.txt").write_text("deep")
    (folder / "run me.sh").write_text("#!/bin/sh\n")
    (folder / "run me.sh").chmod(0o755)
    wdl = write_wdl(tmp_path, "inputs.wdl", INPUTS_WDL)
    run_dir = runs / "run:1"
    proc = miniwdl_run(wdl, backend, run_dir, {"f": str(source), "d": str(folder)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads((run_dir / "outputs.json").read_text())
    assert outputs["inputs.content"] == "file content"
    assert outputs["inputs.listing"] == ["run me.sh", "sub/deep, er.txt", "x.txt"], "find -type f sees the files"
    assert outputs["inputs.modes"] == ["640", "755"], "stat sees each file's own mode"
    assert source.read_text() == "file content\n" and (folder / "x.txt").read_text() == "x"
    assert (folder / "sub" / "deep, er.txt").read_text() == "deep"


def test_a_run_directory_with_a_colon_runs_a_workflow(backend: str, tmp_path: Path) -> None:
    stage(tmp_path)
    run_dir = tmp_path / "runs:2026" / "run"
    run_dir.parent.mkdir()
    proc = miniwdl_run(tmp_path / "control_flow.wdl", backend, run_dir, {"bonus": 1})
    assert proc.returncode == 0, proc.stderr[-3000:]


NETWORK_WDL = """
version 1.1
task net {
  input { String network }
  command <<< hostname -I | cut -d' ' -f1 >>>
  output { String ip = read_string(stdout()) }
  runtime { docker: "IMAGE"  docker_network: network }
}
"""


@pytest.fixture(scope="module")
def attachable_network(swarm: str):
    """A swarm overlay network that `docker run` can join too (--attachable); (name, subnet prefix)."""
    name = f"miniwdl_jupyter_test_{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", "-d", "overlay", "--attachable", name], check=True, capture_output=True)
    subnet = subprocess.run(
        ["docker", "network", "inspect", name, "--format", "{{(index .IPAM.Config 0).Subnet}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    yield name, subnet.rsplit(".", 1)[0] + "."
    subprocess.run(["docker", "network", "rm", name], capture_output=True)


@pytest.mark.parametrize("backend", ["docker_run", "docker_swarm"], indirect=True)
def test_docker_network_only_when_allowed(backend: str, attachable_network, tmp_path: Path) -> None:
    name, prefix = attachable_network
    wdl = write_wdl(tmp_path, "net.wdl", NETWORK_WDL)
    allowed = {"MINIWDL__DOCKER_SWARM__ALLOW_NETWORKS": json.dumps([name])}
    proc = miniwdl_run(wdl, backend, tmp_path / "allowed", {"network": name}, env=allowed)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "allowed" / "outputs.json").read_text())["net.ip"].startswith(prefix)

    proc = miniwdl_run(wdl, backend, tmp_path / "refused", {"network": name})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not json.loads((tmp_path / "refused" / "outputs.json").read_text())["net.ip"].startswith(prefix)
    assert "runtime.docker_network ignored" in (tmp_path / "refused" / "task.log").read_text()


DOCKERFILE_WDL = """
version 1.2
task built {
  input { String marker }
  command <<< cat /built.txt >>>
  output { String out = read_string(stdout()) }
  runtime {
    inlineDockerfile: <<<
      FROM IMAGE
      RUN echo "~{marker}" > /built.txt
    >>>
  }
}
"""


@pytest.mark.parametrize("backend", ["docker_run", "docker_swarm"], indirect=True)
def test_inline_dockerfile_is_built_once_by_content(backend: str, tmp_path: Path) -> None:
    marker = f"built {uuid.uuid4().hex}"  # a Dockerfile no earlier run has built
    wdl = write_wdl(tmp_path, "built.wdl", DOCKERFILE_WDL)
    try:
        for run in ("first", "second"):
            proc = miniwdl_run(wdl, backend, tmp_path / run, {"marker": marker})
            assert proc.returncode == 0, proc.stderr[-3000:]
            assert json.loads((tmp_path / run / "outputs.json").read_text())["built.out"] == marker
        assert "docker build cached" not in (tmp_path / "first" / "task.log").read_text()
        assert "docker build cached" in (tmp_path / "second" / "task.log").read_text()
    finally:
        tags = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "miniwdl_auto_built"], capture_output=True, text=True)
        for tag in tags.stdout.split():
            if subprocess.run(["docker", "run", "--rm", tag, "cat", "/built.txt"], capture_output=True, text=True).stdout.strip() == marker:
                subprocess.run(["docker", "rmi", tag], capture_output=True)


@pytest.mark.parametrize("backend", ["docker_run", "docker_swarm"], indirect=True)
def test_inline_dockerfile_that_does_not_build_fails_the_task(backend: str, tmp_path: Path) -> None:
    failing = DOCKERFILE_WDL.replace('RUN echo "~{marker}"', 'RUN exit 3; echo "~{marker}"')
    if backend == "docker_run":
        failing = failing.replace("  runtime {\n", "  runtime {\n    maxRetries: 1\n", 1)
    wdl = write_wdl(tmp_path, "built.wdl", failing)
    proc = miniwdl_run(wdl, backend, tmp_path / "run", {"marker": uuid.uuid4().hex})
    assert proc.returncode != 0
    cause = root_cause(tmp_path / "run")
    assert cause["error"] in ("BuildError", "InlineDockerfileBuildFailed"), cause
    if backend == "docker_run":  # docs/backends.md: retried up to maxRetries, then the build's last line
        from miniwdl_jupyter.backends.docker_run import InlineDockerfileBuildFailed
        from miniwdl_jupyter.errors import BackendError

        assert (tmp_path / "run" / "task.log").read_text().count("failed docker build will be retried") == 1
        build_log = tmp_path / "run" / "inlineDockerfile.log"
        last_line = [line for line in build_log.read_text().splitlines() if line.strip()][-1].strip()
        assert "returned a non-zero code: 3" in last_line and last_line in cause["message"], (last_line, cause)
        assert f"full output: {build_log}" in cause["message"]
        assert issubclass(InlineDockerfileBuildFailed, BackendError) and issubclass(InlineDockerfileBuildFailed, docker.errors.BuildError)


GPU_WDL = 'version 1.1\ntask gpu { command <<< echo ran >>> output { String out = read_string(stdout()) } runtime { docker: "IMAGE"  gpu: true } }\n'


@pytest.mark.parametrize("backend", ["docker_run", "docker_swarm"], indirect=True)
def test_gpu_task_on_a_host_docker_gives_no_gpu_runs_with_a_warning(backend: str, tmp_path: Path) -> None:
    # Docker refuses this driver on any host with the error it gives where there is no GPU (and
    # docker_swarm ignores runtime.gpu anyway): the same path on a GPU machine too.
    no_gpu = {"MINIWDL__DOCKER_RUN__GPU_FLAGS": '["--gpus", "driver=no-such-driver"]', "MINIWDL__JUPYTER__GPUS": "0"}
    proc = miniwdl_run(write_wdl(tmp_path, "gpu.wdl", GPU_WDL), backend, tmp_path / "run", env=no_gpu)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "outputs.json").read_text())["gpu.out"] == "ran"
    assert "ignoring runtime.gpu" in (tmp_path / "run" / "task.log").read_text() or "runtime.gpu ignored" in (tmp_path / "run" / "task.log").read_text()
