"""The JupyterLab extension in a real JupyterLab in headless Chromium (see lab_fixtures.py):
WDL highlighting in `%%wdl` cells (and .wdl files) only, diagnostics from miniwdl while typing, the
runs sidebar (listing and cancelling), the run renderer in a reopened, untrusted notebook, and the
calm live view.

Screenshots land in test-artifacts/: lab-wdl-cell.png, lab-wdl-file.png, lab-runs-sidebar.png,
lab-runs-sidebar-cancelled.png, lab-reopened-untrusted.png, lab-live-view.png; the measured
diagnostic latency in lab-diagnostics.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from display_fixtures import make_run
from lab_fixtures import ARTIFACTS, browser_page, jupyterlab, lab_backend, labextension, open_lab, open_notebook  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
RUN_MIME = "application/vnd.miniwdl-jupyter.run+json"

HELLO = """version 1.1
workflow hello {
  input { String name = "world" }
  call greet { input: name = name }
  output { File out = greet.out }
}
task greet {
  input { String name }
  command <<< echo "hello ~{name}" > out.txt >>>
  output { File out = "out.txt" }
}
"""
FAILS = """version 1.1
workflow breaks {
  call crash
}
task crash {
  command <<< echo "reading sample 3: bad header" >&2; exit 3 >>>
}
"""
HUNGRY = """version 1.1
workflow hungry {
  call eat
}
task eat {
  command <<< x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo "${#x}" >>>
  runtime { docker: "IMAGE" memory: "64M" }
}
"""
SLEEPY = """version 1.1
workflow sleepy {
  call nap
}
task nap {
  command <<< sleep 600 >>>
}
"""


def write_notebook(path: Path, *sources: str) -> None:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def cell(index: int) -> str:
    return f".jp-Notebook .jp-Cell:nth-child({index + 1})"


def test_wdl_cells_are_highlighted_and_diagnosed_as_you_type(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    write_notebook(
        workdir / "cells.ipynb",
        "%%wdl check\n" + HELLO,
        'workflow = "the same words in Python"\ncommand = "<<< echo ~{name} >>>"',
        "",
    )
    page = browser_page
    open_notebook(page, base, token, "cells.ipynb")
    wdl_cell, python_cell, new_cell = cell(0), cell(1), cell(2)
    page.wait_for_selector(f"{wdl_cell} .tok-keyword", timeout=30_000)
    keywords = page.eval_on_selector_all(f"{wdl_cell} .tok-keyword", "els => els.map(e => e.textContent)")
    assert {"version", "workflow", "input", "call", "task", "command", "output"} <= set(keywords), keywords
    assert "hello" in page.eval_on_selector_all(f"{wdl_cell} .tok-definition", "els => els.map(e => e.textContent)")
    types = page.eval_on_selector_all(f"{wdl_cell} .tok-typeName", "els => els.map(e => e.textContent)")
    assert {"String", "File"} <= set(types), types
    placeholders = page.eval_on_selector_all(f"{wdl_cell} .tok-string2", "els => els.map(e => e.textContent)")
    assert "~{" in placeholders, placeholders  # the placeholder's delimiters, its expression inside
    assert page.eval_on_selector(f"{wdl_cell} .tok-meta", "e => e.textContent") == "%%wdl check"
    # A Python cell keeps JupyterLab's Python highlighting: none of the WDL language's classes.
    assert page.locator(f"{python_cell} .cm-content").inner_text().startswith("workflow")
    assert page.locator(f"{python_cell} [class*='tok-']").count() == 0

    # Type a workflow with a type error into the empty cell: miniwdl's message appears underlined.
    page.click(f"{new_cell} .cm-content")
    typed_at = page.evaluate("performance.now()")
    page.keyboard.insert_text('%%wdl\nversion 1.1\nworkflow typed {\n  Boolean ok = 1\n}\n')
    page.wait_for_selector(f"{new_cell} .cm-lintRange-error", timeout=30_000)
    latency_ms = page.evaluate("performance.now()") - typed_at
    underlined = page.inner_text(f"{new_cell} .cm-lintRange-error")
    assert underlined == "1", underlined
    page.hover(f"{new_cell} .cm-lintRange-error")
    tooltip = page.wait_for_selector(".cm-tooltip-lint", timeout=10_000).inner_text()
    assert "Expected Boolean instead of Int" in tooltip, tooltip
    assert page.locator(f"{new_cell} .tok-keyword").count() > 0, "the typed cell switched to WDL"
    page.screenshot(path=str(ARTIFACTS / "lab-wdl-cell.png"))
    (ARTIFACTS / "lab-diagnostics.json").write_text(json.dumps({"underlined_after_ms": round(latency_ms)}))

    # A .wdl file opens in the editor as WDL, with the same diagnostics.
    (workdir / "lib.wdl").write_text("version 1.1\ntask t {\n  Boolean b = 1\n  command <<< echo ~{b} >>>\n}\n")
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'lib.wdl'})")
    page.wait_for_selector(".jp-FileEditor .tok-keyword", timeout=30_000)
    page.wait_for_selector(".jp-FileEditor .cm-lintRange-error", timeout=30_000)
    assert page.inner_text(".jp-FileEditor .cm-lintRange-error") == "1"
    page.screenshot(path=str(ARTIFACTS / "lab-wdl-file.png"))
    page.evaluate("() => window.jupyterapp.commands.execute('application:close')")  # back to the notebook

    # Removing the magic line switches the cell back to Python (and its diagnostics go).
    page.click(f"{new_cell} .cm-content")
    page.keyboard.press("Control+Home")
    page.keyboard.press("Shift+End")
    page.keyboard.press("Delete")
    page.wait_for_function(
        f"document.querySelectorAll(\"{new_cell} [class*='tok-']\").length === 0 && "
        f"document.querySelectorAll(\"{new_cell} .cm-lintRange-error\").length === 0",
        timeout=30_000,
    )


def test_runs_sidebar_lists_runs_and_cancels_a_running_one(workdir, jupyterlab, browser_page):
    from miniwdl_jupyter import disk_usage, runs

    base, token = jupyterlab
    finished = make_run(workdir / "wdl_runs" / "20260101_000000_align", 3, 3, call_dirs=False)
    finished.succeed({"n": 3})
    running = runs.run(SLEEPY, backend="local", wait=False)
    try:
        page = browser_page
        open_lab(page, base, token)
        page.evaluate("() => window.jupyterapp.shell.activateById('miniwdl-jupyter-runs')")
        page.wait_for_selector(".miniwdl-runs-row.miniwdl-runs-succeeded", timeout=30_000)
        page.wait_for_selector(".miniwdl-runs-row.miniwdl-runs-running", timeout=60_000)
        rows = page.locator(".miniwdl-runs-row")
        assert rows.count() == 2
        assert "synth" in page.inner_text(".miniwdl-runs-succeeded") and "3/3 calls" in page.inner_text(".miniwdl-runs-succeeded")
        size = disk_usage.human(disk_usage.run_size(finished.run_dir, True))  # each run's size on disk, as %wdl runs shows it
        assert f"3/3 calls · {size}" in page.inner_text(".miniwdl-runs-succeeded")
        assert "sleepy" in page.inner_text(".miniwdl-runs-running") and "local" in page.inner_text(".miniwdl-runs-running")
        assert page.locator(".miniwdl-runs-succeeded .miniwdl-runs-cancel").count() == 0
        page.screenshot(path=str(ARTIFACTS / "lab-runs-sidebar.png"))

        page.click(".miniwdl-runs-running .miniwdl-runs-cancel")
        page.wait_for_selector(".miniwdl-runs-row.miniwdl-runs-cancelled", timeout=60_000)
        deadline = time.monotonic() + 60
        while not running.poll().done and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running.poll().status == "cancelled"
        assert page.locator(".miniwdl-runs-row.miniwdl-runs-running").count() == 0
        page.screenshot(path=str(ARTIFACTS / "lab-runs-sidebar-cancelled.png"))
    finally:
        if not running.poll().done:
            running.cancel()


def test_saved_notebook_reopened_untrusted_shows_the_run(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    write_notebook(workdir / "hello.ipynb", "%load_ext miniwdl_jupyter", "%%wdl -o r\n" + HELLO, "%%wdl -o bad\n" + FAILS)
    page = browser_page
    open_notebook(page, base, token, "hello.ipynb")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".miniwdl-run-summary[data-status='succeeded']", timeout=150_000)
    page.wait_for_selector(".miniwdl-run-summary[data-status='failed']", timeout=150_000)
    # Each final summary carries its run report, folded (tests/test_lab_report.py unfolds one).
    assert page.locator(".miniwdl-run-summary .miniwdl-report").count() == 2
    assert page.locator(".miniwdl-run-summary[data-status='failed'] .miniwdl-report-attempt[data-call='call-crash']").count() == 1
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = nbformat.read(workdir / "hello.ipynb", as_version=4)
        outputs = saved.cells[1].get("outputs", [])
        if any(RUN_MIME in o.get("data", {}) for o in outputs):
            break
        time.sleep(0.3)
    kinds = [sorted(o.get("data", {})) for o in outputs]
    assert any(RUN_MIME in k for k in kinds), kinds
    assert not any("application/vnd.jupyter.widget-view+json" in k for k in kinds), "one view left: no widget"

    # Someone else opens it (a copy changed outside this server): untrusted.
    saved.metadata["opened_elsewhere"] = True
    nbformat.write(saved, workdir / "reopened.ipynb")
    page.goto(f"{base}/lab/tree/reopened.ipynb?reset&token={token}")
    page.wait_for_selector(".miniwdl-run-summary", timeout=90_000)
    trusted = page.evaluate(
        "() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;"
        " return Array.from({length: cells.length}, (_, i) => cells.get(i).trusted); }"
    )
    assert trusted == [False, False, False], trusted
    failed = page.inner_text(".miniwdl-run-summary[data-status='failed']")
    assert "breaks" in failed and "call-crash failed (exit 3)" in failed and "reading sample 3: bad header" in failed, failed
    summary = page.inner_text(".miniwdl-run-summary[data-status='succeeded']")
    assert "hello" in summary and "succeeded" in summary and "1/1 calls" in summary, summary
    page.click(".miniwdl-run-summary summary")  # unfold the outputs
    link = page.locator(".miniwdl-run-outputs a")
    assert link.inner_text() == "out.txt" and "out.txt" in link.get_attribute("href")
    page.screenshot(path=str(ARTIFACTS / "lab-reopened-untrusted.png"))


def test_the_run_renderer_says_what_the_backend_knows_of_a_failure(docker, workdir, jupyterlab, browser_page):
    """A task killed at its memory limit: the renderer says so, not only "exit 137"."""
    base, token = jupyterlab
    (workdir / "limits.cfg").write_text("[task_runtime]\nmemory_limit_multiplier = 1\n")  # docker_run --memory
    hungry = HUNGRY.replace("IMAGE", docker)
    write_notebook(workdir / "oom.ipynb", "%load_ext miniwdl_jupyter", "%%wdl -o oom --backend docker_run --no-cache --cfg limits.cfg\n" + hungry)
    page = browser_page
    open_notebook(page, base, token, "oom.ipynb")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_selector(".miniwdl-run-summary[data-status='failed'] .miniwdl-run-failure", timeout=150_000)
    failed = page.inner_text(".miniwdl-run-summary[data-status='failed'] .miniwdl-run-failure")
    assert "call-eat failed (exit 137): task ran out of memory: the kernel killed it at its memory limit of 64 MB" in failed, failed


def test_live_view_tells_what_happens_and_keeps_raw_lines_behind_a_toggle(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    write_notebook(workdir / "live.ipynb", "%load_ext miniwdl_jupyter", "%%wdl -o nap_run\n" + SLEEPY)
    page = browser_page
    open_notebook(page, base, token, "live.ipynb")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    widget = ".miniwdl-run-widget"
    page.wait_for_selector(f"{widget} pre:has-text('nap started')", timeout=120_000)
    friendly = page.inner_text(f"{widget} pre")
    assert "nap started" in friendly and "pid" not in friendly, friendly  # no invocation details
    page.click(f"{widget} :text('raw log')")  # unfolds in the browser, while the cell still runs
    page.wait_for_selector(f"{widget} pre:has-text('task setup')", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "lab-live-view.png"))
    # The widget's Cancel works while the cell still waits (through the server, not the busy kernel).
    page.click(f"{widget} button:has-text('Cancel')")
    page.wait_for_selector(".miniwdl-run-summary[data-status='cancelled']", timeout=120_000)
    assert page.locator(widget).count() == 0, "one view left when the run ends"
