"""The run report, as users get it: real runs on the local backend (no Docker needed), then
`%wdl report` in a real kernel, `Run.report()`, the folded section of the final board, and
report.html opened in Chromium with the network cut off (screenshot in test-artifacts/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require
from backend_fixtures import miniwdl_run
from display_fixtures import kernel, make_run, scatter_ids  # noqa: F401 - fixture
from lab_fixtures import ARTIFACTS, CHROMIUM
from miniwdl_jupyter import runs
from miniwdl_jupyter.display.report import folded_report_html
from miniwdl_jupyter.report import build_report
from miniwdl_jupyter.errors import RunFailed

USAGE_WDL = """
version 1.1
workflow usage {
  input { Int n = 3  Boolean check = true }
  scatter (i in range(n)) { call hold { input: i = i } }
  if (check) { call tight }
  call last { input: xs = hold.out }
  output { Int count = last.n }
}
task hold {
  input { Int i }
  command <<< dd if=/dev/zero of=/dev/null bs=300M count=2 2>/dev/null; sleep 1; echo ~{i} >>>
  output { Int out = read_int(stdout()) }
  runtime { memory: "4 GiB"  cpu: 1 }
}
task tight {
  command <<< dd if=/dev/zero of=/dev/null bs=300M count=2 2>/dev/null; sleep 1 >>>
  runtime { memory: "320 MiB" }
}
task last {
  input { Array[Int] xs }
  command <<< sleep 3; echo ~{length(xs)} >>>
  output { Int n = read_int(stdout()) }
}
"""

RETRIED_WDL = """
version 1.1
workflow flaky {
  call fails
}
task fails {
  command <<< sleep 1; exit 3 >>>
  runtime { maxRetries: 1 }
}
"""


def test_report_in_a_kernel_and_report_html_offline(tmp_path, kernel):  # noqa: F811
    (tmp_path / "usage.wdl").write_text(USAGE_WDL)
    messages = kernel.run(
        "%load_ext miniwdl_jupyter\n%wdl run -f usage.wdl --backend local --no-cache --progress html -o r", timeout=240
    )
    final_board = [m["content"]["data"]["text/html"] for m in messages if m["msg_type"] == "update_display_data"][-1]
    assert "<details class='miniwdl-report'>" in final_board, "the final summary folds the report in"

    shown = [m for m in kernel.run("%wdl report last") if m["msg_type"] == "display_data"]
    html = shown[0]["content"]["data"]["text/html"]
    text = shown[0]["content"]["data"]["text/plain"]
    assert "<script" not in html and "<svg" in html
    assert re.search(r"<title>call-hold-0 attempt 1: succeeded, \d+s; peak 3\d\d MiB, [0-9.]+ CPU s</title>", html), "bar tooltips"
    assert "hold: asked 4 GiB, peak 3" in html and "over 3 calls: 0.5 GiB would do" in html, text
    assert "tight: peak 3" in html and "of 320 MiB: raise memory" in html, text
    # the last call waited for the scatter: the path runs through its last hold call
    path = text.rstrip().rsplit("critical path: ", 1)[1].split(" -> ")
    assert path[-1] == "call-last" and path[-2].startswith("call-hold-"), text
    assert "scatter (i in range(n))" in html and "if (check)" in html, "the graph shows the groups"

    tasks = json.loads(kernel.value("import json; json.dumps([(t['name'], t['calls'], t['peak_memory_max']) for t in "
                                    "(r.report().tasks.to_dict('records') if hasattr(r.report().tasks, 'to_dict') else r.report().tasks)])").strip("'"))
    peaks = {name: peak for name, _, peak in tasks}
    assert 0.8 * 300 * 2**20 <= peaks["hold"] <= 1.2 * 300 * 2**20, tasks

    run_dir = Path(kernel.value("str(r.run_dir)").strip("'"))
    _open_offline(run_dir / "report.html", "report-html.png")


def _open_offline(report_html: Path, screenshot: str) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("playwright", False, "playwright is not installed (the `test` extra)")
    require("Chromium", Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (.ci/provision installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    requested = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            page = context.new_page()
            page.route("**/*", lambda route: (requested.append(route.request.url), route.abort() if not route.request.url.startswith("file:") else route.continue_()))
            page.goto(report_html.as_uri())
            timeline = page.locator("svg[aria-label=\"timeline of the run's calls\"]")
            assert timeline.is_visible()
            assert timeline.locator("rect").count() >= 5 and "0s" in timeline.text_content()  # bars and a time axis
            assert page.locator("svg[aria-label='workflow graph']").is_visible()
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
        finally:
            browser.close()
    assert [url for url in requested if not url.startswith("file:")] == [], "the page fetches nothing"


def test_a_retried_call_shows_each_attempt_and_a_cached_call_is_marked(workdir):
    (workdir / "flaky.wdl").write_text(RETRIED_WDL)
    with pytest.raises(RunFailed):
        runs.run(workdir / "flaky.wdl", backend="local")
    failed = runs.attach("last").report()
    attempts = [row for row in _rows(failed.calls) if row["name"] == "fails"]
    assert [row["attempt"] for row in attempts] == [1, 2]
    assert all(row["cpu_seconds"] is not None and row["wall_seconds"] >= 1 for row in attempts)
    assert attempts[0]["attempt_end"] <= attempts[1]["attempt_start"]
    assert "fails attempt 1: retrying" in failed.html() and "fails attempt 2: failed" in failed.html()

    (workdir / "usage.wdl").write_text(USAGE_WDL)
    runs.run(workdir / "usage.wdl", {"n": 1}, backend="local", cache=True)
    again = runs.run(workdir / "usage.wdl", {"n": 1}, backend="local", cache=True).report()
    assert {row["call"]: row["cached"] for row in _rows(again.calls)} == {"call-hold-0": True, "call-tight": True, "call-last": True}
    assert again.usage_missing == 0 and all(row["cpu_seconds"] is None for row in _rows(again.calls))
    assert ": cached</title>" in again.html()
    assert (again.run_dir / "report.html").exists()


def test_a_run_whose_sampler_could_not_start_succeeds_and_its_report_says_usage_is_missing(workdir):
    (workdir / "usage.wdl").write_text(USAGE_WDL)
    handle = runs.run(workdir / "usage.wdl", {"n": 1}, backend="local", cfg={"usage": {"python": str(workdir / "no-python3")}})
    assert handle.status == "succeeded" and handle.outputs["count"] == 1
    report = handle.report()
    assert report.usage_missing == 3
    assert "Usage is missing for 3 call(s)" in report.html()
    assert "usage is missing for 3 call(s)" in report.text()
    assert "Usage is missing" in (handle.run_dir / "report.html").read_text()


def _rows(table):
    return table.to_dict("records") if hasattr(table, "to_dict") else table


def test_terminal_users_get_report_html_after_miniwdl_run(tmp_path):
    (tmp_path / "usage.wdl").write_text(USAGE_WDL)
    run_dir = tmp_path / "run"
    assert miniwdl_run(tmp_path / "usage.wdl", "local", run_dir, {"n": 1}).returncode == 0
    command = [str(Path(sys.executable).with_name("miniwdl-jupyter")), "report", str(run_dir)]
    shown = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Run report: usage (succeeded), 3 task calls")
    assert "tight: peak 3" in shown.stdout and "<svg" in (run_dir / "report.html").read_text()
    not_a_run = subprocess.run(command[:-1] + [str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert not_a_run.returncode == 2 and "is not a miniwdl run directory" in not_a_run.stderr


def test_a_wide_scatter_is_one_band_and_the_folded_section_names_report_html(tmp_path):
    run = make_run(tmp_path / "wide", 600, 0)
    for i, call_id in enumerate(scatter_ids("align", 600)):
        run.effective_runtime(call_id, cpu=4, memory_bytes=16 * 2**30)
        run.start_call(call_id)
        run.write_usage(call_id, {"started_at": 1e9 + i, "wall_seconds": 30.0, "cpu_seconds": 28.0, "peak_memory_bytes": 2 * 2**30})
        run.finish_call(call_id)
    run.succeed({})
    report = build_report(tmp_path / "wide")
    assert ">align (600)</text>" in report.html(), "one band for the 600 calls"
    assert report.advice == [
        "align: asked 16 GiB, peak 2 GiB over 600 calls: 2.5 GiB would do",
        "align: asked 4 CPUs, kept at most 0.93 busy over 600 calls: 1 would do",
    ]
    folded = folded_report_html(report)
    assert "report.html" in folded and "<svg" not in folded and "would do" in folded
