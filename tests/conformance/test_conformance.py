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
from pathlib import Path

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
