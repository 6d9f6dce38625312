"""The run-directory monitor: call states from real miniwdl runs, and incremental reading."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

from WDL._util import StructuredLogMessage, StructuredLogMessageJSONFormatter

import miniwdl_jupyter as mj
from miniwdl_jupyter import protocol
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
    # each attempt's files under the protocol's names, as miniwdl numbers them
    assert protocol.latest_attempt(call.dir) == 2
    assert "first try fails" in protocol.stderr_file(call.dir, 1).read_text()
    assert protocol.stdout_file(call.dir, 2).read_text() == "ok\n" and protocol.work_dir(call.dir, 2).is_dir()


def test_backend_events_are_read_by_their_fields(tmp_path: Path):
    """A backend's protocol events, written as miniwdl writes `--log-json` lines, set the call's job,
    state and exit code; events of run directories written before the protocol still read."""
    (tmp_path / "workflow.log").write_text("")
    handler = logging.FileHandler(tmp_path / "workflow.log.json")
    handler.setFormatter(StructuredLogMessageJSONFormatter())
    run_logger, task = logging.getLogger("wdl.w:wf"), logging.getLogger("wdl.w:wf.t:call-t")
    run_logger.addHandler(handler)  # as miniwdl: on the run's logger, which its tasks' propagate to
    run_logger.setLevel(logging.DEBUG)
    try:
        run_logger.log(25, StructuredLogMessage("workflow start", dir=str(tmp_path)))
        task.log(25, StructuredLogMessage("task setup", dir=str(tmp_path / "call-t")))
        protocol.job_state(task, "slurm", "115", "PENDING", reason="Resources")
        monitor = RunMonitor(tmp_path)
        call = monitor.poll().calls["call-t"]
        assert call.state == "running" and call.job == {"job_id": "115", "state": "PENDING", "reason": "Resources"}
        task.log(25, StructuredLogMessage("failed task will be retried"))
        assert monitor.poll().calls["call-t"].state == "retrying"
        protocol.task_running(task, "slurm", job_id="116", node="vm")
        call = monitor.poll().calls["call-t"]
        assert call.state == "running" and (call.job["job_id"], call.job["node"]) == ("116", "vm")
        protocol.task_exit(task, "slurm", 137, "task exceeded its time limit", job_id="116")
        assert monitor.poll().calls["call-t"].exit_code == 137
        # before the protocol: "<backend> task running" and Batch's `status`
        task.log(25, StructuredLogMessage("failed task will be retried"))
        task.log(25, StructuredLogMessage("aws_batch job status", job_id="j-1", status="RUNNABLE", log_stream=""))
        task.log(25, StructuredLogMessage("aws_batch task running", job_id="j-1", log_stream="s/1"))
        call = monitor.poll().calls["call-t"]
        assert call.state == "running" and call.job["state"] == "RUNNABLE" and call.job["log_stream"] == "s/1"
    finally:
        run_logger.removeHandler(handler)
        handler.close()
    events = [json.loads(line) for line in (tmp_path / "workflow.log.json").read_text().splitlines()]
    exits = [e for e in events if e["message"] == protocol.TASK_EXIT]
    assert exits == [{**exits[0], "backend": "slurm", "exit_code": 137, "explanation": "task exceeded its time limit"}]


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
