"""WDL conformance across container backends: every case runs through `miniwdl run` on docker_run,
local and docker_swarm, and must give the expected outputs (file contents compared, not paths) or
the expected error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TEST_IMAGE

CASES_DIR = Path(__file__).with_name("conformance")
CASES = sorted(p.stem for p in CASES_DIR.glob("*.json"))
BACKENDS = ["docker_run", "local", "docker_swarm"]


def stage(case: str, workdir: Path) -> Path:
    for wdl in CASES_DIR.glob("*.wdl"):
        (workdir / wdl.name).write_text(wdl.read_text().replace("IMAGE", TEST_IMAGE))
    (workdir / "greeting.txt").write_text("hello file\n")
    (workdir / "folder").mkdir(exist_ok=True)
    for name in ("x.txt", "y.txt"):
        (workdir / "folder" / name).write_text(name)
    return workdir / f"{case}.wdl"


def miniwdl_run(wdl: Path, inputs: dict, backend: str, run_dir: Path, cache: bool = False) -> subprocess.CompletedProcess:
    inputs_file = run_dir.with_suffix(".inputs.json")
    inputs_file.write_text(json.dumps(inputs))
    env = dict(
        os.environ,
        MINIWDL__SCHEDULER__CONTAINER_BACKEND=backend,
        MINIWDL__CALL_CACHE__GET=str(cache).lower(),
        MINIWDL__CALL_CACHE__PUT=str(cache).lower(),
        MINIWDL__CALL_CACHE__DIR=str(run_dir.parent / "cache"),
    )
    return subprocess.run(
        [sys.executable, "-m", "WDL", "run", str(wdl), "-i", str(inputs_file), "--dir", f"{run_dir}/.", "--log-json", "--error-json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=wdl.parent,
        timeout=300,
    )


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


def root_cause(error: dict) -> dict:
    while isinstance(error.get("cause"), dict):
        error = error["cause"]
    return error


@pytest.fixture(params=BACKENDS)
def backend(request, docker):
    if request.param == "docker_swarm" and subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True).stdout.strip() != "active":
        pytest.fail("docker_swarm needs swarm mode (docker swarm init; .ci/provision does it)")
    return request.param


@pytest.mark.parametrize("case", CASES)
def test_case(case, backend, tmp_path):
    spec = json.loads((CASES_DIR / f"{case}.json").read_text())
    wdl = stage(case, tmp_path)
    inputs = {k: str(tmp_path / v[1:]) if isinstance(v, str) and v.startswith("@") else v for k, v in spec["inputs"].items()}
    run_dir = tmp_path / "run"
    proc = miniwdl_run(wdl, inputs, backend, run_dir)
    if "outputs" in spec:
        assert proc.returncode == 0, (proc.stderr[-3000:])
        outputs = json.loads((run_dir / "outputs.json").read_text())
        got = {k.split(".", 1)[1]: materialize(v) for k, v in outputs.items()}
        assert got == spec["outputs"]
    else:
        assert proc.returncode != 0
        cause = root_cause(json.loads((run_dir / "error.json").read_text()))
        assert {k: cause.get(k) for k in spec["error"]} == spec["error"]


def test_call_cache(backend, tmp_path):
    wdl = stage("control_flow", tmp_path)
    first = miniwdl_run(wdl, {"bonus": 1}, backend, tmp_path / "run1", cache=True)
    assert first.returncode == 0, first.stderr[-3000:]
    # Plain `miniwdl run` also reuses the whole workflow's entry: nothing runs again.
    second = miniwdl_run(wdl, {"bonus": 1}, backend, tmp_path / "run2", cache=True)
    assert second.returncode == 0
    log = (tmp_path / "run2" / "workflow.log").read_text()
    assert "done (cached)" in log and "task setup" not in log
    assert json.loads((tmp_path / "run2" / "outputs.json").read_text()) == json.loads((tmp_path / "run1" / "outputs.json").read_text())
