"""JupyterLab in headless Chromium, with this repository's JupyterLab extension.

- `labextension`: the extension built from src/ (`jlpm install --immutable` once, `jlpm build`
  when the sources are newer than the build), as a user gets it from the wheel.
- `jupyterlab`: JupyterLab on loopback (a port chosen at runtime) serving the test's workdir, with
  that build and the server extension enabled by the repository's own config file
  (jupyter-config/server-config/), and an in-memory notebook trust database (a notebook is trusted
  only once this server saw it executed or saved).
- `browser_page`: Debian's Chromium driven by Playwright (its own browser download cannot work
  here); `open_notebook` opens one and waits for its kernel.

Node.js (`.ci/provision` installs it) and jlpm (PyPI `jupyter-builder`, in the `test` extra) build
the extension; under CI=true their absence fails the tests, elsewhere they skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import require
from display_fixtures import REPO

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the fixture skips (or fails under CI) with the reason
    PlaywrightTimeout = TimeoutError

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
BUILT = REPO / "miniwdl_jupyter" / "labextension"
SOURCES = ("src", "style", "package.json", "yarn.lock", "tsconfig.json")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jlpm() -> str:
    return shutil.which("jlpm") or str(Path(sys.executable).with_name("jlpm"))


def node_tools() -> None:
    require("Node.js", shutil.which("node") is not None, "node is not installed (.ci/provision installs it)")
    require("jlpm", Path(jlpm()).exists(), "jlpm is not installed (pip install -e '.[test]' brings jupyter-builder)")


def run_jlpm(*args: str, timeout: float = 900) -> None:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    proc = subprocess.run([jlpm(), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"jlpm {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def node_modules() -> None:
    """The extension's npm dependencies, from the committed lock file."""
    node_tools()
    marker = REPO / "node_modules" / ".yarn-state.yml"
    if not marker.exists() or marker.stat().st_mtime < (REPO / "yarn.lock").stat().st_mtime:
        run_jlpm("install", "--immutable")


def _newest(paths) -> float:  # type: ignore[no-untyped-def]
    newest = 0.0
    for name in paths:
        p = REPO / name
        for f in ([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                newest = max(newest, f.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def labextension() -> Path:
    """The built extension (miniwdl_jupyter/labextension), rebuilt when src/ changed."""
    built = BUILT / "package.json"
    if not built.exists() or built.stat().st_mtime < _newest(SOURCES):
        node_modules()
        run_jlpm("build")
    return BUILT


@pytest.fixture
def lab_backend() -> str:
    """The backend of the kernels' runs (a test module may override this fixture)."""
    return "local"


@pytest.fixture
def jupyterlab(workdir: Path, labextension: Path, lab_backend: str, tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab on loopback, serving `workdir`; yields (base url, token)."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        require("JupyterLab", False, "jupyterlab is not installed (pip install -e '.[test]')")
    # This build of the extension first on the search paths, and the server extension enabled by
    # the file the wheel installs.
    paths = tmp_path_factory.mktemp("jupyter-paths")
    (paths / "data" / "labextensions").mkdir(parents=True)
    (paths / "data" / "labextensions" / "miniwdl-jupyter").symlink_to(labextension)
    shutil.copytree(REPO / "jupyter-config" / "server-config", paths / "config" / "jupyter_server_config.d")
    (paths / "config" / "labconfig").mkdir()  # no "news?" toast over the screenshots
    (paths / "config" / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    env = dict(os.environ, JUPYTER_PATH=str(paths / "data"), JUPYTER_CONFIG_PATH=str(paths / "config"),
               MINIWDL__JUPYTER__BACKEND=lab_backend)
    port, token = free_port(), secrets.token_hex(16)
    log = open(workdir / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}", "--allow-root",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands by id
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--NotebookNotary.db_file=:memory:",
        ],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("JupyterLab did not start: " + (workdir / "jupyterlab.log").read_text()[-2000:])
                time.sleep(0.3)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def browser_page(tmp_path_factory: pytest.TempPathFactory):
    require("Chromium", Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (.ci/provision installs Debian's)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("Playwright", False, "playwright is not installed (pip install -e '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def open_lab(page, base: str, token: str, path: str = "") -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/lab/tree/{path}?token={token}" if path else f"{base}/lab?token={token}")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell", timeout=90_000)
    page.evaluate("() => window.jupyterapp.restored")  # every plugin activated, the layout restored


def open_notebook(page, base: str, token: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """Open a notebook and wait until its kernel is idle."""
    open_lab(page, base, token, path)
    page.wait_for_function("document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
    try:  # JupyterLab may ask which kernel to start: take the notebook's own (python3)
        page.click(".jp-Dialog .jp-mod-accept", timeout=5_000)
    except PlaywrightTimeout:
        pass
    page.wait_for_function(
        "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'", timeout=90_000
    )
