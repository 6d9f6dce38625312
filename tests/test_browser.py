"""JupyterLab in headless Chromium: a %%wdl cell shows the live widget, which reaches the finished
state; the PNG output renders; a task's HTML output with a script runs nothing in the page.

Needs Debian's chromium (`.ci/provision`), and PyPI jupyterlab + playwright (the `test` extra);
Playwright drives the system Chromium (its own browser download cannot work here). The screenshot
lands in test-artifacts/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import require
from display_fixtures import REPO, report_wdl

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
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """JupyterLab on loopback, serving `workdir`; yields (base url, token)."""
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "docker_run")  # the fast local backend
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        require("JupyterLab", False, "jupyterlab is not installed (pip install -e '.[test]')")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(workdir / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}", "--allow-root",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands by id
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
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
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1600},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_widget_finishes_and_outputs_render_safely_in_jupyterlab(docker, workdir, jupyterlab, browser_page, monkeypatch):
    base, token = jupyterlab
    nb = new_notebook(cells=[new_code_cell("%load_ext miniwdl_jupyter"), new_code_cell("%%wdl -o r\n" + report_wdl(docker, n=3))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "report.ipynb")
    page = browser_page
    page.goto(f"{base}/lab/tree/report.ipynb?token={token}")
    page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')", timeout=90_000)
    try:  # JupyterLab may ask which kernel to start: take the notebook's own (python3)
        page.click(".jp-Dialog .jp-mod-accept", timeout=15_000)
    except PlaywrightTimeout:
        pass
    # Wait for the kernel, so the widget manager has connected before the cell runs.
    page.wait_for_function(
        "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'", timeout=90_000
    )
    title_before = page.title()
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.wait_for_selector(".miniwdl-run-widget.miniwdl-run-succeeded", timeout=150_000)
        page.wait_for_selector(".jp-RenderedImage img", timeout=30_000)
        page.wait_for_timeout(500)  # let the last outputs paint before the screenshot
    finally:
        page.screenshot(path=str(ARTIFACTS / "browser-widget.png"), full_page=True)

    widget_text = page.inner_text(".miniwdl-run-widget")
    assert "succeeded" in widget_text and "4/4 calls" in widget_text, widget_text
    assert page.eval_on_selector(".miniwdl-run-widget .widget-progress progress, .miniwdl-run-widget .progress-bar",
                                 "e => e !== null")
    image_width = page.eval_on_selector(".jp-RenderedImage img", "img => img.complete ? img.naturalWidth : 0")
    assert image_width == 16, "the PNG output decoded in the page"
    # The task's HTML page is in a sandboxed iframe and its script ran nowhere.
    sandbox = page.eval_on_selector("iframe[title='page.html']", "f => f.getAttribute('sandbox')")
    assert sandbox == ""
    assert page.title() == title_before and "pwned" not in page.title()
    assert page.evaluate("typeof window.pwned") == "undefined"
    # Expanding a group asks the (now idle) kernel for its calls.
    page.click(".miniwdl-run-widget button:has-text('count')")
    page.wait_for_selector(".miniwdl-run-widget td:has-text('call-count-2')", timeout=30_000)
    (ARTIFACTS / "browser-widget.json").write_text(json.dumps({"title": page.title(), "widget": widget_text}))
