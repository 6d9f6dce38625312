"""Progress views on synthetic run directories: in process, in a real ipykernel 7, under nbclient
(what papermill runs) and from a plain `python` script."""

from __future__ import annotations

import io
import queue
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from display_fixtures import REPO, kernel, make_run, scatter_ids  # noqa: F401 - fixture
from miniwdl_jupyter.display.text import TextLine
from miniwdl_jupyter.display.widget import WidgetView
from miniwdl_jupyter.monitor import RunMonitor

WRITER = REPO / "benchmarks" / "make_synthetic_run.py"


class MonitoredRun:
    """The duck-typed run the views accept, over a bare RunMonitor."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.monitor = RunMonitor(run_dir)
        self.cancelled = False

    @property
    def state(self):
        return self.monitor.state

    def poll(self):
        return self.monitor.poll()

    def cancel(self) -> None:
        self.cancelled = True

    status = property(lambda self: self.poll().status)
    outputs = property(lambda self: {})


class CountingDict(dict):
    """Counts whole-collection reads of RunState.calls."""

    scans = 0

    def values(self):
        CountingDict.scans += 1
        return super().values()

    def __iter__(self):
        CountingDict.scans += 1
        return super().__iter__()


def test_refresh_reads_only_changed_calls(tmp_path):
    writer = make_run(tmp_path / "run", 2000, 1500, failed=3, call_dirs=False)
    run = MonitoredRun(tmp_path / "run")
    run.poll()
    view = TextLine(run, stream=io.StringIO())
    run.state.calls = CountingDict(run.state.calls)
    CountingDict.scans = 0
    for call_id in scatter_ids("align", 2000)[1500:1600]:
        writer.start_call(call_id)
        writer.finish_call(call_id)
    writer.flush()
    view.update(run.poll())
    assert CountingDict.scans == 0, "a refresh walked every call"
    assert len(view.failed) == 3 and view.first_failure().id == "call-align-0"
    writer.close()


def test_views_recover_changes_consumed_by_another_poll(tmp_path):
    writer = make_run(tmp_path / "run", 20, 5, call_dirs=False)
    run = MonitoredRun(tmp_path / "run")
    view = TextLine(run, stream=io.StringIO())
    view.update(run.poll())
    writer.start_call("call-align-7")
    writer.fail_call("call-align-7", stderr="boom\n")
    writer.flush()
    run.poll()  # someone else polled (run.status): `changed` of that poll is gone
    view.update(run.poll())
    assert list(view.failed) == ["call-align-7"]
    writer.close()


def test_text_view_prints_a_bounded_number_of_lines(tmp_path):
    writer = make_run(tmp_path / "run", 200, 0, call_dirs=False)
    run = MonitoredRun(tmp_path / "run")
    out = io.StringIO()
    view = TextLine(run, stream=out)
    for call_id in scatter_ids("align", 200):
        writer.start_call(call_id)
        writer.finish_call(call_id)
        writer.flush()
        view._last_render = 0  # every poll redraws, as if polls were slow
        view.update(run.poll())
    writer.succeed({"n": 200})
    view.finish(run.poll())
    lines = out.getvalue().splitlines()
    assert len(lines) <= 13, lines
    assert "succeeded" in lines[-1] and "200/200 calls" in lines[-1]


def test_widget_shows_groups_failure_and_cancels(tmp_path):
    writer = make_run(tmp_path / "run", 300, 120, failed=2)
    run = MonitoredRun(tmp_path / "run")
    view = WidgetView(run)
    view.update(run.poll())
    row = view.rows["align"]
    assert (row.bar.value, row.bar.max) == (120, 300)
    assert "error: sample 0 is corrupt" in view.failure.value and "task.log" in view.failure.value
    assert row.details.value == ""  # not built until expanded
    row.toggle.value = True
    assert row.details.value.count("<tr>") == 202  # header, the first 200 calls (failed first), "N more"
    assert row.details.value.index("call-align-0") < row.details.value.index("call-align-150")
    assert "100 more" in row.details.value
    view.cancel_button.click()
    deadline = time.monotonic() + 5
    while not run.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.cancelled
    writer.close()


def test_html_board_updates_one_display_in_place(kernel, tmp_path):
    writer = make_run(tmp_path / "run", 40, 10)
    kernel.run(
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"run = Run({str(tmp_path / 'run')!r})\n"
    )
    messages = kernel.run("view = progress_view(run, 'html')\nview.update(run.poll())")
    for call_id in scatter_ids("align", 40)[10:]:
        writer.start_call(call_id)
        writer.finish_call(call_id)
    writer.succeed({"n": 40})
    messages += kernel.run("view.finish(run.poll())")
    kinds = [m["msg_type"] for m in messages]
    assert kinds.count("display_data") == 1 and kinds.count("update_display_data") == 2, kinds
    ids = {m["content"]["transient"]["display_id"] for m in messages if "transient" in m["content"]}
    assert len(ids) == 1
    final = messages[-1]["content"]["data"]
    assert "succeeded" in final["text/plain"] and "40/40 calls" in final["text/plain"]
    assert "align" in final["text/html"]


def test_auto_is_html_headless_and_widget_in_interactive_frontends(kernel, tmp_path):
    writer = make_run(tmp_path / "run", 4, 4)
    writer.succeed({"n": 4})
    kernel.run(
        "import ipywidgets\n"  # registers the control comm target, as in a kernel that used widgets
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"run = Run({str(tmp_path / 'run')!r}); run.poll()\n"
    )
    auto = "type(progress_view(run, 'auto')).__name__"
    assert kernel.value(auto, allow_stdin=False) == "'HtmlBoard'"  # how nbclient/papermill execute
    assert kernel.value(auto, allow_stdin=True) == "'WidgetView'"  # JupyterLab, VS Code, Notebook
    kernel.open_widget_control_comm()
    deadline = time.monotonic() + 10
    name = ""
    while time.monotonic() < deadline and name != "'WidgetView'":
        name = kernel.value(auto, allow_stdin=False)
    assert name == "'WidgetView'", "a frontend that opened the widget control comm gets the widget"


def test_widget_follows_from_a_thread_with_trait_changes_only(kernel, tmp_path):
    """ipykernel 7: the follow() thread sends comm messages only; nothing printed or displayed."""
    writer = make_run(tmp_path / "run", 30, 0)
    kernel.run(
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"run = Run({str(tmp_path / 'run')!r}); run.poll()\n"
        "view = progress_view(run, 'widget')\n"
        "view.follow()\n"
    )
    published = []  # everything the kernel publishes while only the thread runs

    def drain(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                published.append(kernel.kc.get_iopub_msg(timeout=0.05))
            except queue.Empty:
                pass

    for call_id in scatter_ids("align", 30):
        writer.start_call(call_id)
        writer.finish_call(call_id)
        writer.flush()
        drain(0.03)
    writer.succeed({"n": 30})
    # The thread ends on its own once it sees the run end: poll for that (generous deadline),
    # collecting what the kernel publishes meanwhile.
    alive, deadline = "True", time.monotonic() + 60
    while alive == "True" and time.monotonic() < deadline:
        drain(0.5)
        reply = kernel.run("view._thread.is_alive()")  # ipykernel 7 would route a thread's output here
        published.extend(m for m in reply if m["msg_type"] != "execute_result")
        alive = next(m for m in reply if m["msg_type"] == "execute_result")["content"]["data"]["text/plain"]
    assert alive == "False", "the follow thread ended when the run did"
    kinds = {m["msg_type"] for m in published}
    assert kinds == {"comm_msg"}, kinds  # no stream, no display_data from the thread
    assert "succeeded" in kernel.value("view.header.value")
    assert kernel.value("(view.bar.value, view.bar.max)") == "(30, 30)"
    assert kernel.value("view.cancel_button.disabled") == "True"


def write_live_notebook(path: Path, run_dir: Path, seconds: float, calls: int) -> Path:
    cell = (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"writer = subprocess.Popen([sys.executable, {str(WRITER)!r}, {str(run_dir)!r}, '--calls', '{calls}', '--seconds', '{seconds}', '--no-call-dirs'])\n"
        f"while not Path({str(run_dir / 'workflow.log.json')!r}).exists(): time.sleep(0.05)\n"
        f"run = Run({str(run_dir)!r})\n"
        "view = progress_view(run)\n"
        "run.wait(on_poll=view.update)\n"
        "view.finish(run.state)\n"
        "_ = writer.wait()\n"
    )
    nb = new_notebook(cells=[new_code_cell(cell)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_headless_notebook_keeps_one_final_board_however_long_the_run(tmp_path):
    sizes = []
    for seconds in (0.5, 3.0):
        path = write_live_notebook(tmp_path / f"live{seconds}.ipynb", tmp_path / f"run{seconds}", seconds, 60)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = nb.cells[0].outputs
        assert len(outputs) == 1, [o.get("output_type") for o in outputs]
        assert outputs[0]["output_type"] == "display_data"
        assert "succeeded" in outputs[0]["data"]["text/plain"] and "60/60 calls" in outputs[0]["data"]["text/plain"]
        sizes.append(len(nbformat.writes(nb)))
    assert abs(sizes[0] - sizes[1]) < 200, sizes  # a 6x longer run: the same notebook


def test_plain_python_gets_text_lines_on_stderr(tmp_path):
    script = (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from miniwdl_jupyter.runs import Run\n"
        "from miniwdl_jupyter.display import progress_view\n"
        f"writer = subprocess.Popen([sys.executable, {str(WRITER)!r}, {str(tmp_path / 'run')!r}, '--calls', '100', '--seconds', '2', '--no-call-dirs'])\n"
        f"while not Path({str(tmp_path / 'run' / 'workflow.log.json')!r}).exists(): time.sleep(0.05)\n"
        f"run = Run({str(tmp_path / 'run')!r})\n"
        "view = progress_view(run, 'auto')\n"
        "run.wait(on_poll=view.update)\n"
        "view.finish(run.state)\n"
        "writer.wait()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert 2 <= len(lines) <= 13, lines
    assert "succeeded" in lines[-1] and "100/100 calls" in lines[-1]


def test_final_board_of_a_failed_run_names_the_call_its_stderr_and_log(tmp_path):
    from miniwdl_jupyter.display.html_board import board_bundle
    from miniwdl_jupyter.display.progress import NoView

    writer = make_run(tmp_path / "run", 10, 3, call_dirs=True)
    writer.start_call("call-align-3")
    writer.fail_call("call-align-3", stderr="reading sample 3\n<b>bad header</b>\n", exit_code=2)
    writer.fail("call-align-3")
    run = MonitoredRun(tmp_path / "run")
    state = run.poll()
    assert state.status == "failed"
    bundle = board_bundle(state, NoView(run), final=True)
    assert "call-align-3 failed (exit 2)" in bundle["text/plain"]
    assert "| <b>bad header</b>" in bundle["text/plain"]
    assert "&lt;b&gt;bad header&lt;/b&gt;" in bundle["text/html"] and "<b>bad header</b>" not in bundle["text/html"]
    assert str(tmp_path / "run" / "call-align-3" / "task.log") in bundle["text/html"]


def test_a_view_redraws_at_most_five_times_a_second(tmp_path):
    """docs/display.md: one updater, bounded rate. Fed polls as fast as they come, a view redraws
    no sooner than 0.2 s after its last redraw."""
    writer = make_run(tmp_path / "run", 50, 10, call_dirs=False)  # running: its log stays locked
    run = MonitoredRun(tmp_path / "run")
    view = TextLine(run, stream=io.StringIO())
    redraws: list = []
    # the view's own redraw times (taken before it draws): a clock read inside the draw can lag under load
    view._render = lambda state, final: redraws.append(view._last_render)
    updates, deadline = 0, time.monotonic() + 20
    while len(redraws) < 4 and time.monotonic() < deadline:
        view.update(run.poll())
        updates += 1
    assert len(redraws) == 4, "the view stopped redrawing a running run"
    assert updates > 4 * len(redraws), updates  # most updates were absorbed without a redraw
    gaps = [later - earlier for earlier, later in zip(redraws, redraws[1:])]
    assert min(gaps) >= 0.2, gaps
    writer.close()
