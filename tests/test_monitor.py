"""The run-directory monitor: call states from real miniwdl runs, and incremental reading."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import miniwdl_jupyter as mj
from miniwdl_jupyter.monitor import RunMonitor

from conftest import wdl


def test_retry_counts_attempts(docker, workdir):
    source = textwrap.dedent(
        f"""
        version 1.2
        task flaky {{
          command <<<
            if [ ~{{task.attempt}} -eq 0 ]; then echo "first try fails" >&2; exit 1; fi
            echo ok
          >>>
          output {{ String out = read_string(stdout()) }}
          requirements {{ container: "{docker}" max_retries: 2 }}
        }}
        workflow w {{ call flaky  output {{ String o = flaky.out }} }}
        """
    )
    run = mj.run(source)
    assert run.outputs == {"o": "ok"}
    (call,) = run.calls
    assert (call.state, call.attempt, call.exit_code) == ("succeeded", 2, 0)
    assert any("failed task will be retried" in line for line in run.state.log_tail)


def test_subworkflow_calls_are_grouped_by_call_path(docker, workdir):
    lib = workdir / "hello.wdl"
    lib.write_text(wdl("scatter.wdl", docker))
    source = textwrap.dedent(
        """
        version 1.1
        import "hello.wdl" as h
        workflow outer {
          call h.hello { input: names = ["x", "y"] }
          scatter (i in [1, 2]) { call h.hello as again { input: names = ["q"] } }
        }
        """
    )
    run = mj.run(source)
    state = run.state
    assert {g: (grp.total, grp.finished) for g, grp in state.groups.items()} == {"hello.greet": (2, 2), "again.greet": (2, 2)}
    kinds = {c.id: c.kind for c in state.calls.values()}
    assert kinds["call-hello"] == "workflow" and kinds["call-hello/call-greet-0-x"] == "task"
    assert state.task_calls == 4 and state.finished_calls == 4


def test_reads_only_new_lines_and_waits_for_a_partial_line(tmp_path: Path):
    log = tmp_path / "workflow.log.json"
    (tmp_path / "workflow.log").write_text("")
    events = [
        {"message": "workflow start", "source": "wdl.w:wf", "timestamp": 1.0, "levelno": 25, "level": "NOTICE", "dir": str(tmp_path)},
        {"message": "ready", "job": "call-t-0", "source": "wdl.w:wf", "timestamp": 1.1, "levelno": 25, "level": "NOTICE"},
        {"message": "task setup", "source": "wdl.w:wf.t:call-t-0", "timestamp": 1.2, "levelno": 25, "level": "NOTICE", "dir": str(tmp_path / "call-t-0")},
        {"message": "done", "source": "wdl.w:wf.t:call-t-0", "timestamp": 2.0, "levelno": 25, "level": "NOTICE"},
    ]
    lines = [json.dumps(e) + "\n" for e in events]
    monitor = RunMonitor(tmp_path)
    log.write_text(lines[0] + lines[1] + lines[2][:20])  # the third line is half-written
    state = monitor.poll()
    assert state.calls["call-t-0"].state == "queued" and state.changed == {"call-t-0"}
    with open(log, "a") as f:
        f.write(lines[2][20:] + lines[3])
    state = monitor.poll()
    assert state.calls["call-t-0"].state == "succeeded"
    assert state.calls["call-t-0"].start_time == 1.2 and state.calls["call-t-0"].end_time == 2.0
    assert monitor.poll().changed == set(), "nothing new, nothing changed"
    # Not locked and no outputs.json/error.json, not launched by us, log recently written: still
    # settling; once outputs.json appears the run is succeeded.
    (tmp_path / "outputs.json").write_text(json.dumps({"wf.x": 1}))
    assert monitor.poll().status == "succeeded"
