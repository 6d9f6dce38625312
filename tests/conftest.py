"""Shared test set-up: real services only. Under CI=true a missing service fails the test;
elsewhere the test skips with a one-line reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
TEST_IMAGE = os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim")
# Core tests run on miniwdl's own docker_swarm backend unless told otherwise.
CORE_BACKEND = os.environ.get("MINIWDL_JUPYTER_TEST_BACKEND", "docker_swarm")
DATA = Path(__file__).with_name("data")


def require(service: str, available: bool, reason: str) -> None:
    """Skip outside CI, fail under CI=true, when a service a test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{service} is required under CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def image_present(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker() -> str:
    """A Docker daemon that answers, with the test image present; returns the image name."""
    require("Docker", docker_answers(), "no Docker daemon answers (start it with .ci/provision)")
    require("the test image", image_present(TEST_IMAGE), f"image {TEST_IMAGE} is missing (build it with .ci/provision)")
    return TEST_IMAGE


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh notebook working directory with its own call cache and no user miniwdl.cfg."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINIWDL_CFG", str(tmp_path / "no-such.cfg"))
    monkeypatch.setenv("MINIWDL__CALL_CACHE__DIR", str(tmp_path / "call_cache"))
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", CORE_BACKEND)
    return tmp_path


def wdl(name: str, image: str = TEST_IMAGE) -> str:
    """A test WDL from tests/data, with the test image substituted for IMAGE."""
    return (DATA / name).read_text().replace("IMAGE", image)


@pytest.fixture
def shell(workdir: Path):
    """A real IPython InteractiveShell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "miniwdl_jupyter")
    yield ip
    ip.user_ns.clear()
    InteractiveShell.clear_instance()
