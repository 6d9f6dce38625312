"""JupyterLab in headless Chromium: a %%wdl cell shows the live widget, which gives way to the
run's final summary (drawn by the extension's run renderer) when the run succeeds; the PNG output
renders; a task's HTML output with a script runs nothing in the page.

Needs Debian's chromium and Node.js (`.ci/provision`), and PyPI jupyterlab + playwright +
jupyter-builder (the `test` extra); see lab_fixtures.py. The screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from display_fixtures import report_wdl
from lab_fixtures import ARTIFACTS, browser_page, jupyterlab, labextension, open_notebook  # noqa: F401 - fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# Records whether a live widget was ever shown (the run may end before a poll could see it).
WATCH_WIDGET = """() => {
  window.__sawWidget = false;
  new MutationObserver(() => {
    if (document.querySelector('.miniwdl-run-widget')) { window.__sawWidget = true; }
  }).observe(document.body, { childList: true, subtree: true });
}"""


@pytest.fixture
def lab_backend() -> str:
    return "docker_run"  # the fast Docker backend


def test_widget_finishes_and_outputs_render_safely_in_jupyterlab(docker, workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    nb = new_notebook(cells=[new_code_cell("%load_ext miniwdl_jupyter"), new_code_cell("%%wdl -o r\n" + report_wdl(docker, n=3))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "report.ipynb")
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1600})
    open_notebook(page, base, token, "report.ipynb")
    title_before = page.title()
    page.evaluate(WATCH_WIDGET)
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    try:
        page.wait_for_selector(".miniwdl-run-summary[data-status='succeeded']", timeout=150_000)
        page.wait_for_selector(".jp-RenderedImage img", timeout=30_000)
        page.wait_for_timeout(500)  # let the last outputs paint before the screenshot
    finally:
        page.screenshot(path=str(ARTIFACTS / "browser-widget.png"), full_page=True)

    assert page.evaluate("window.__sawWidget"), "the live widget was shown while the run went on"
    # One view per run: the widget gave way to the summary.
    assert page.locator(".miniwdl-run-widget").count() == 0
    assert page.locator(".miniwdl-run-summary").count() == 1
    summary_text = page.inner_text(".miniwdl-run-summary")
    assert "succeeded" in summary_text and "4/4 calls" in summary_text, summary_text
    assert "count" in page.inner_text(".miniwdl-run-summary .miniwdl-run-groups")
    image_width = page.eval_on_selector(".jp-RenderedImage img", "img => img.complete ? img.naturalWidth : 0")
    assert image_width == 16, "the PNG output decoded in the page"
    # The task's HTML page is in a sandboxed iframe and its script ran nowhere.
    sandbox = page.eval_on_selector("iframe[title='page.html']", "f => f.getAttribute('sandbox')")
    assert sandbox == ""
    assert page.title() == title_before and "pwned" not in page.title()
    assert page.evaluate("typeof window.pwned") == "undefined"
    (ARTIFACTS / "browser-widget.json").write_text(json.dumps({"title": page.title(), "summary": summary_text}))
