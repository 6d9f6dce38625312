"""Shared test set-up: real services only. Under CI=true a missing service fails the test;
elsewhere the test skips with a one-line reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
TEST_IMAGE = os.environ.get("MINIWDL_JUPYTER_TEST_IMAGE", "debian:bookworm-slim")
# Core tests run on miniwdl's own docker_swarm backend unless told otherwise.
CORE_BACKEND = os.environ.get("MINIWDL_JUPYTER_TEST_BACKEND", "docker_swarm")
DATA = Path(__file__).with_name("data")
REPO = Path(__file__).resolve().parent.parent


def copy_repository(dest: Path) -> Path:
    """A clean copy of the repository, as a fresh clone of the working tree would hold it: tracked
    files plus new files that are not ignored (no build output, run directories or CI venvs)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is gone from a clone too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def fresh_venv_env(venv: Path, home: Path) -> dict:
    """Environment for commands in a fresh virtual environment `venv` (created here, never with the
    machine's site-packages), as a new user's shell would have it: the venv first on PATH, an empty
    HOME, no miniwdl or Jupyter settings from this process."""
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIWDL", "XDG_", "JUPYTER", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", HOME=str(home), VIRTUAL_ENV=str(venv))
    return env


NODE_PROGRAMS = ("node", "nodejs", "npm", "npx", "corepack", "yarn")


def without_node(env: dict, shadows: Path) -> dict:
    """`env` as on a machine without Node.js: each PATH folder holding a Node.js program is replaced
    by a folder of links to everything else in it."""
    folders = []
    for i, folder in enumerate(env["PATH"].split(os.pathsep)):
        here = Path(folder)
        if here.is_dir() and any((here / name).exists() for name in NODE_PROGRAMS):
            shadow = shadows / str(i)
            shadow.mkdir(parents=True, exist_ok=True)
            for entry in here.iterdir():
                if entry.name not in NODE_PROGRAMS:
                    (shadow / entry.name).symlink_to(entry)
            folder = str(shadow)
        folders.append(folder)
    hidden = dict(env, PATH=os.pathsep.join(folders))
    assert shutil.which("node", path=hidden["PATH"]) is None
    return hidden

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


def swarm_active() -> bool:
    state = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True, timeout=20)
    return state.stdout.strip() == "active"


def image_present(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker() -> str:
    """A Docker daemon that answers, with the test image present; returns the image name."""
    require("Docker", docker_answers(), "no Docker daemon answers (start it with .ci/provision)")
    require("the test image", image_present(TEST_IMAGE), f"image {TEST_IMAGE} is missing (build it with .ci/provision)")
    if CORE_BACKEND == "docker_swarm":  # the backend these tests run on
        require("Docker swarm mode", swarm_active(), "Docker is not in swarm mode (`docker swarm init`; .ci/provision does it)")
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
