"""The friendly log tail, the run record (application/vnd.miniwdl-jupyter.run+json) and the one
view left per run, on synthetic run directories and in a real ipykernel."""

from __future__ import annotations

import json
import time
from pathlib import Path

from display_fixtures import kernel, make_run  # noqa: F401 - fixture
from make_synthetic_run import SyntheticRun
from miniwdl_jupyter.display.html_board import board_bundle
from miniwdl_jupyter.display.logtail import friendly_tail
from miniwdl_jupyter.display.progress import NoView
from miniwdl_jupyter.display.record import RUN_MIME, run_record
from miniwdl_jupyter.monitor import RunMonitor
from miniwdl_jupyter.report import build_report, plain
from miniwdl_jupyter.report.timeline import timeline as full_timeline


class MonitoredRun:
    def __init__(self, run_dir: Path, outputs=None):
        self.run_dir = run_dir
        self.monitor = RunMonitor(run_dir)
        self._outputs = outputs or {}

    @property
    def state(self):
        return self.monitor.state

    def poll(self):
        return self.monitor.poll()

    outputs = property(lambda self: self._outputs)

    def report(self):
        return build_report(self.run_dir, self.poll())


def test_friendly_tail_tells_calls_starting_finishing_retrying_failing(tmp_path):
    writer = make_run(tmp_path / "run", 4, 1, call_dirs=True)
    writer.start_call("call-align-1")
    writer.fail_call("call-align-1", stderr="oops\n", exit_code=3)
    writer.retry_call("call-align-1")
    writer.start_call("call-align-2")
    writer.finish_call("call-align-2", stderr="container abc123 says hi\n")
    writer.start_call("call-align-3")
    writer.fail_call("call-align-3", exit_code=2)
    writer.fail("call-align-3")
    run = MonitoredRun(tmp_path / "run")
    state = run.poll()
    lines = [line.split("  ", 1)[1] for line in friendly_tail(state, limit=50)]
    assert "align-1 started" in lines
    assert "align-1 failed (exit 3), retrying" in lines
    assert "align-2 finished" in lines
    assert "align-3 failed: CommandFailed (exit 2)" in lines
    assert not any("container abc123" in line or "docker task exit" in line for line in lines), lines
    assert any("container abc123" in line for line in state.log_tail), "the raw tail keeps miniwdl's lines"
    assert len(friendly_tail(state)) <= 12


def test_run_record_of_a_failed_run_names_the_call_its_stderr_and_log(tmp_path):
    writer = make_run(tmp_path / "run", 10, 3, call_dirs=True)
    writer.start_call("call-align-3")
    writer.fail_call("call-align-3", stderr="reading sample 3\n<b>bad header</b>\n", exit_code=2)
    writer.fail("call-align-3")
    run = MonitoredRun(tmp_path / "run")
    state = run.poll()
    view = NoView(run)
    view.finish(state)
    record = run_record(run, state, view)
    assert json.loads(json.dumps(record)) == record, "plain JSON"
    assert record["status"] == "failed" and record["calls"]["counts"]["failed"] == 1
    failure = record["failure"]
    assert failure["call"] == "call-align-3" and failure["exit_code"] == 2
    assert failure["stderr_tail"] == ["reading sample 3", "<b>bad header</b>"]  # text: the renderer escapes
    assert failure["log"] == str(tmp_path / "run" / "call-align-3" / "task.log")
    assert record["groups"][0]["name"] == "align" and record["groups"][0]["total"] == 10
    assert record["outputs"] == []
    assert RUN_MIME in board_bundle(state, view, final=True) and RUN_MIME not in board_bundle(state, view, final=False)


def test_run_record_lists_outputs_with_files_as_references(tmp_path):
    writer = make_run(tmp_path / "run", 2, 2, call_dirs=False)
    writer.succeed({"n": 2})
    files = [tmp_path / f"f{i}.txt" for i in range(60)]
    run = MonitoredRun(tmp_path / "run", outputs={"n": 2, "report": files[0], "parts": files, "names": {"a": "x"}})
    state = run.poll()
    record = run_record(run, state, NoView(run))
    outputs = {o["name"]: o["value"] for o in record["outputs"]}
    assert outputs["n"] == 2 and outputs["names"] == {"a": "x"}
    assert outputs["report"]["$file"] == str(files[0])
    assert len(outputs["parts"]) == 51 and outputs["parts"][-1] == "... 10 more"  # long arrays are cut


def test_widget_gives_way_to_the_final_summary_in_the_same_output(kernel, tmp_path):
    writer = make_run(tmp_path / "run", 20, 5)
    kernel.run(
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"run = Run({str(tmp_path / 'run')!r}); run.poll()\n"
    )
    messages = kernel.run("view = progress_view(run, 'widget')\nview.update(run.poll())")
    for call_id in [f"call-align-{i}" for i in range(5, 20)]:
        writer.start_call(call_id)
        writer.finish_call(call_id)
    writer.succeed({"n": 20})
    messages += kernel.run("view.finish(run.poll())")
    displays = [m for m in messages if m["msg_type"] == "display_data"]
    assert len(displays) == 1 and "application/vnd.jupyter.widget-view+json" in displays[0]["content"]["data"]
    assert RUN_MIME not in displays[0]["content"]["data"], "the live widget's bundle carries no record"
    # for a frontend without the widget extension, the live bundle carries the board as HTML and text
    assert "align" in displays[0]["content"]["data"]["text/html"] and "5/20 calls" in displays[0]["content"]["data"]["text/plain"]
    updates = [m for m in messages if m["msg_type"] == "update_display_data"]
    final = updates[-1]["content"]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert final[RUN_MIME]["status"] == "succeeded" and "20/20 calls" in final["text/plain"]
    assert updates[-1]["content"]["transient"]["display_id"] == displays[0]["content"]["transient"]["display_id"]
    closed = [m for m in messages if m["msg_type"] == "comm_close"]
    assert closed, "the widgets' comms are closed once they are not shown"


def test_the_records_run_report_stays_small_for_a_big_run_and_says_what_it_left_out(tmp_path):
    """3,000 calls of 150 task names, a 70-call workflow graph: the record's report keeps 100
    timeline rows, 400 marks, 60 graph nodes and 50 usage rows, and counts the rest."""
    run = SyntheticRun(tmp_path / "big").start()
    ids = [f"call-t{k}-{i}" for k in range(150) for i in range(20)]
    run.ready(ids)
    for call_id in ids:
        run.start_call(call_id)
        run.write_usage(call_id, {"started_at": time.time(), "wall_seconds": 2.0, "cpu_seconds": 1.0, "peak_memory_bytes": 2**20})
        run.finish_call(call_id)
    run.succeed({})
    calls = "\n".join(f"  call t as c{i}" for i in range(70))
    (tmp_path / "big" / "wdl").mkdir()
    (tmp_path / "big" / "wdl" / "big.wdl").write_text(f"version 1.1\nworkflow big {{\n{calls}\n}}\ntask t {{ command <<< >>> }}\n")
    monitored = MonitoredRun(tmp_path / "big")
    state = monitored.poll()
    record = run_record(monitored, state, NoView(monitored))
    report = record["report"]
    assert record["report_error"] is None and report["version"] == plain.REPORT_DATA_VERSION
    assert report["calls"] == 3000
    timeline = report["timeline"]
    assert len(timeline["rows"]) == plain.MAX_ROWS and timeline["more_rows"] == 50
    assert timeline["rows"][0]["label"] == "t0 (20)" and timeline["rows"][0]["calls"] == 20, "one band per task name"
    shown = sum(len(row["bars"]) for row in timeline["rows"])
    full = monitored.report()
    every_bar = sum(len(row.bars) for row in full_timeline(full.call_reports, full.critical_path, state.end_time, max_rows=plain.MAX_ROWS).rows)
    assert shown <= plain.MAX_BARS + plain.MAX_PATH and shown + timeline["more_bars"] == every_bar
    assert len(report["usage"]["rows"]) == plain.MAX_TASKS and report["usage"]["more"] == 100
    assert report["usage"]["rows"][0]["cells"][:2] == ["t0", "20"] and report["usage"]["rows"][0]["peak_memory_max"] == 2**20
    graph = report["graph"]
    assert len(graph["nodes"]) == plain.MAX_NODES and graph["more"] == 10 and graph["nodes"][0]["label"] == "call c0"
    assert len(json.dumps(record)) < 100_000, len(json.dumps(record))
