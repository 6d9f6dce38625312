"""The run report in JupyterLab's run renderer, in a notebook JupyterLab does not trust: papermill
runs a real workflow on the local backend, then the executed notebook is opened in real
JupyterLab in Chromium (see lab_fixtures.py). The report is drawn from the run record's data,
no script in the output (screenshot: test-artifacts/lab-report-untrusted.png); so is `%wdl report`'s."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lab_fixtures import ARTIFACTS, browser_page, jupyterlab, lab_backend, labextension, open_lab  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
RUN_MIME = "application/vnd.miniwdl-jupyter.run+json"

TOUR = """version 1.1
workflow tour {
  input { Int n = 2  Boolean check = true }
  scatter (i in range(n)) { call hold { input: i = i } }
  if (check) { call tight }
  call flaky
  call last { input: xs = hold.out }
  output { Int count = last.n }
}
task hold {
  input { Int i }
  command <<< sleep 1; echo ~{i} >>>
  output { Int out = read_int(stdout()) }
  runtime { memory: "4 GiB"  cpu: 1 }
}
task tight {
  command <<< sleep 1 >>>
}
task flaky {
  command <<< if [ -e MARKER ]; then echo again; else touch MARKER; exit 3; fi >>>
  runtime { maxRetries: 1 }
}
task last {
  input { Array[Int] xs }
  command <<< sleep 2; echo ~{length(xs)} >>>
  output { Int n = read_int(stdout()) }
}
"""


def count(page, selector: str) -> int:  # type: ignore[no-untyped-def]
    return page.locator(selector).count()


def test_a_papermill_notebook_reopened_untrusted_shows_the_run_report(workdir, jupyterlab, browser_page):
    base, token = jupyterlab
    tour = TOUR.replace("MARKER", str(workdir / "flaky-once"))  # its first attempt fails, the retry succeeds
    nb = new_notebook(cells=[new_code_cell("%load_ext miniwdl_jupyter"), new_code_cell("%%wdl -o r\n" + tour), new_code_cell("%wdl report last")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "tour.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "tour.ipynb", "tour.out.ipynb", "--kernel", "python3"],
        capture_output=True, text=True, timeout=300, cwd=workdir, env=dict(os.environ, MINIWDL__JUPYTER__BACKEND="local"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [record] = [o.data[RUN_MIME] for o in nbformat.read(workdir / "tour.out.ipynb", as_version=4).cells[1].outputs if RUN_MIME in o.get("data", {})]
    assert record["report"]["version"] == 1 and record["status"] == "succeeded"

    page = browser_page
    open_lab(page, base, token, "tour.out.ipynb")  # executed elsewhere: this server never trusted it
    summary = ".miniwdl-run-summary[data-status='succeeded']"
    page.wait_for_selector(f"{summary} .miniwdl-report", timeout=90_000)
    trusted = page.evaluate(
        "() => { const cells = window.jupyterapp.shell.currentWidget.content.model.cells;"
        " return Array.from({length: cells.length}, (_, i) => cells.get(i).trusted); }"
    )
    assert trusted == [False, False, False], trusted
    page.click(f"{summary} .miniwdl-report > summary")  # unfold the report
    report = f"{summary} .miniwdl-report"
    page.wait_for_selector(f"{report} svg.miniwdl-report-timeline", state="visible", timeout=30_000)

    # The timeline: one row per call (two scattered holds, tight, flaky, last), a bar per attempt:
    # flaky's retried first attempt in the retrying colour, its second in the succeeded one.
    assert count(page, f"{report} .miniwdl-report-attempt") == 6
    labels = page.eval_on_selector_all(f"{report} svg.miniwdl-report-timeline > text[text-anchor='end']", "els => els.map(e => e.textContent)")
    assert "call-last" in labels and len(labels) == 5, labels
    flaky = page.eval_on_selector_all(f"{report} .miniwdl-report-attempt[data-call='call-flaky']", "els => els.map(e => [e.getAttribute('fill'), e.textContent])")
    assert [fill for fill, _ in flaky] == ["#f57c00", "#2e7d32"], flaky
    assert flaky[0][1].startswith("call-flaky attempt 1: retrying") and flaky[1][1].startswith("call-flaky attempt 2: succeeded"), flaky
    tip = page.eval_on_selector(f"{report} .miniwdl-report-attempt[data-call='call-last'] title", "e => e.textContent")
    assert re.fullmatch(r"call-last attempt 1: succeeded, \d+s; peak [\d,]+ MiB, [\d.]+ CPU s", tip), tip  # its sleep 2
    waiting = page.eval_on_selector_all(f"{report} .miniwdl-report-waiting", "els => els.map(e => e.getAttribute('fill'))")
    assert waiting and set(waiting) == {"#cfd8dc"}, waiting  # grey from ready to running
    critical = page.eval_on_selector_all(f"{report} .miniwdl-report-attempt[stroke='#000']", "els => els.map(e => e.dataset.call)")
    # The run ends with last, which waited for the holds: last and one hold are outlined.
    assert "call-last" in critical and any("call-hold" in c for c in critical) and "call-tight" not in critical, critical
    assert "critical path: " in page.inner_text(f"{report} .miniwdl-report-critical")

    # Usage against requests: one row per task name, and the rightsizing line for the 4 GiB asked.
    tasks = page.eval_on_selector_all(f"{report} tr.miniwdl-report-task", "els => els.map(e => e.dataset.task)")
    assert sorted(tasks) == ["flaky", "hold", "last", "tight"], tasks
    hold = page.inner_text(f"{report} tr.miniwdl-report-task[data-task='hold']")
    assert "4 GiB" in hold and "MiB" in hold, hold  # memory asked, peak min / median / max
    advice = page.inner_text(f"{report} .miniwdl-report-advice")
    assert "hold: asked 4 GiB, peak" in advice and "over 2 calls: 0.5 GiB would do" in advice, advice

    # The workflow graph: the scatter, the conditional and the last call, each coloured by state.
    nodes = page.eval_on_selector_all(f"{report} g.miniwdl-report-node", "els => els.map(e => [e.dataset.node, e.dataset.state, e.textContent])")
    assert len(nodes) == 4, nodes
    assert {state for _, state, _ in nodes} == {"succeeded"}, nodes
    texts = sorted(text for _, _, text in nodes)
    assert texts[0].startswith("call flaky") and texts[1].startswith("call last") and texts[2].startswith("if (check)"), texts
    assert texts[3].startswith("scatter (i in range(n))") and "hold 2 succeeded" in texts[3], texts  # a group lists its calls
    fill = page.eval_on_selector(f"{report} g.miniwdl-report-node[data-node='call-last'] rect", "e => e.getAttribute('fill')")
    assert fill == "#2e7d32", fill  # succeeded's colour, as in report.html
    assert count(page, f"{report} path.miniwdl-report-edge") == 1  # hold's outputs feed last

    # Drawn from data: SVG elements in the SVG namespace, no script in the output, and not the
    # HTML fallback (which an untrusted notebook would show sanitized, without its pictures).
    namespaces = page.eval_on_selector_all(f"{report} svg, {report} svg *", "els => [...new Set(els.map(e => e.namespaceURI))]")
    assert namespaces == ["http://www.w3.org/2000/svg"], namespaces
    assert count(page, ".jp-OutputArea script") == 0 and count(page, ".wdl-report") == 0
    page.locator(report).scroll_into_view_if_needed()
    page.locator(report).screenshot(path=str(ARTIFACTS / "lab-report-untrusted.png"))

    # `%wdl report`'s output: the same report drawn from its data, unfolded (its HTML, sanitized
    # in this untrusted notebook, would have lost the pictures).
    shown = ".miniwdl-report-output"
    assert "Run report: tour" in page.inner_text(f"{shown} .miniwdl-run-header")
    assert page.eval_on_selector(f"{shown} details.miniwdl-report", "e => e.open") is True
    assert count(page, f"{shown} .miniwdl-report-attempt") == 6 and count(page, f"{shown} g.miniwdl-report-node") == 4
    assert count(page, f"{shown} tr.miniwdl-report-task") == 4


EVIL = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def _record(report) -> dict:  # type: ignore[no-untyped-def]
    return {"version": 1, "name": "evil", "run_dir": "/nowhere", "status": "succeeded", "backend": "local",
            "calls": {"total": 1, "finished": 1, "counts": {"succeeded": 1}}, "groups": [], "outputs": [], "report": report}


def test_a_hand_made_record_is_drawn_as_text_and_a_broken_one_costs_only_the_report(workdir, jupyterlab, browser_page):
    """Anyone can write a notebook: markup in every text of the report data stays text, a state
    the renderer does not know is grey, and report data of another shape leaves the summary whole."""
    base, token = jupyterlab
    hostile = {
        "version": 1, "calls": 1, "duration": EVIL, "cpu_hours": 0.0, "usage_missing": 1, "usage_missing_why": EVIL,
        "advice": [EVIL], "more_advice": 0, "critical_path": [EVIL], "more_critical": 0,
        "timeline": {"seconds": 2, "ticks": [{"at": 0, "label": EVIL}], "legend": EVIL, "more_rows": 0, "more_bars": 0,
                     "rows": [{"label": EVIL, "calls": 1, "bars": [{"kind": "attempt", "call": EVIL, "start": 0, "end": 1,
                                                                    "state": "__proto__", "tip": EVIL, "critical": True}]}]},
        "usage": {"head": [EVIL], "rows": [{"name": EVIL, "cells": [EVIL]}], "more": 0},
        "graph": {"nodes": [{"id": EVIL, "label": EVIL, "group": False, "layer": 0, "after": [EVIL], "state": "constructor",
                             "counts": EVIL, "lines": [{"name": EVIL, "state": EVIL, "counts": EVIL}], "more": 0}], "more": 0},
    }
    cells = []
    for report in (hostile, {"version": 1, "advice": "not a list"}):
        cell = new_code_cell("%%wdl\n...")
        cell.outputs = [new_output("display_data", data={RUN_MIME: _record(report), "text/plain": "evil (succeeded)"})]
        cells.append(cell)
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, workdir / "evil.ipynb")

    page = browser_page
    open_lab(page, base, token, "evil.ipynb")
    page.wait_for_selector(".miniwdl-run-summary .miniwdl-report", timeout=90_000)
    page.click(".miniwdl-run-summary .miniwdl-report > summary")
    report = page.locator(".miniwdl-run-summary .miniwdl-report").first
    shown = report.inner_text()
    assert shown.count(EVIL) >= 6, shown  # duration, missing usage, advice, critical path, legend, usage table
    drawn = page.eval_on_selector_all(".miniwdl-report svg text, .miniwdl-report svg title", "els => els.map(e => e.textContent)")
    assert EVIL in drawn and any(text.startswith(EVIL[:20]) for text in drawn), drawn
    assert page.locator(".jp-OutputArea img, .jp-OutputArea script").count() == 0
    fills = page.eval_on_selector_all(".miniwdl-report-attempt, g.miniwdl-report-node > rect", "els => els.map(e => e.getAttribute('fill'))")
    assert fills and set(fills) == {"#555"}, fills
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.pwned") is None
    broken = page.locator(".miniwdl-run-summary").nth(1).inner_text()
    assert "evil" in broken and "succeeded" in broken and "the run report could not be drawn: TypeError" in broken, broken
