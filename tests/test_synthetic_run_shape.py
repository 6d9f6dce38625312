"""The synthetic run directories (benchmarks/make_synthetic_run.py) that the display tests and the
display benchmark use must look like what miniwdl really writes, or they test a fiction. A small
real scatter (one call failing after a retry) and a succeeding one run on miniwdl's docker_swarm
backend, which the synthetic runs imitate; every event the synthetic writer emits must occur in
the real logs with the same logger name, message, level and fields (of the same JSON types), its
files must be where miniwdl puts them, and the monitor must read both the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Set, Tuple

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter.monitor import RunMonitor

from display_fixtures import make_run, scatter_ids

REAL_WDL = """version 1.1
workflow shape {
  input {
    Array[Int] xs
    Int bad = 1
  }
  scatter (x in xs) {
    call align { input: x = x, bad = bad }
  }
  output { Array[String] out = align.out }
}
task align {
  input {
    Int x
    Int bad
  }
  command <<<
    echo "aligning ~{x}" >&2
    if [ ~{x} -eq ~{bad} ]; then echo "error: sample 1 is corrupt" >&2; exit 1; fi
    echo ok
  >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "IMAGE" maxRetries: 1 }
}
"""

Kind = Tuple[str, str]  # (logger name, message), with run-specific parts replaced


def kind(event: Dict[str, Any], workflow: str) -> Kind:
    source = event["source"].replace(f"wdl.w:{workflow}", "wdl.w:WF")
    source = re.sub(r"call-[A-Za-z_]\w*?(-\d+)+", "CALL", source)
    message = event["message"]
    if source.endswith(".stderr"):
        message = "<a stderr line>"
    message = re.sub(r"^task (\w+) \(.*\) failed$", r"task \1 (POS) failed", message)
    message = re.sub(r"call-[A-Za-z_]\w*?(-\d+)+", "CALL", message)
    return source, message


def field_types(event: Dict[str, Any]) -> Dict[str, str]:
    return {k: type(v).__name__ for k, v in event.items() if k not in ("message", "source")}


def events_by_kind(run_dir: Path, workflow: str) -> Dict[Kind, list]:
    found: Dict[Kind, list] = {}
    for line in (run_dir / "workflow.log.json").read_text().splitlines():
        event = json.loads(line)
        found.setdefault(kind(event, workflow), []).append(event)
    return found


def layout(run_dir: Path) -> Set[str]:
    """Paths relative to the run directory, call directories' names made generic."""
    return {re.sub(r"^call-align-\d+", "call-align-N", str(p.relative_to(run_dir))) for p in run_dir.rglob("*")}


def key_paths(value: Any, prefix: str = "") -> Set[str]:
    if not isinstance(value, dict):
        return set()
    keys = set()
    for k, v in value.items():
        keys.add(prefix + k)
        keys |= key_paths(v, prefix + k + ".")
    return keys


@pytest.fixture(scope="module")
def real_runs(docker, tmp_path_factory) -> Dict[str, Path]:
    """A failing and a succeeding real run on docker_swarm, started together."""
    import os

    here = tmp_path_factory.mktemp("real")
    old = os.getcwd()
    os.chdir(here)
    try:
        source = REAL_WDL.replace("IMAGE", docker)
        cfg = {"call_cache": {"dir": str(here / "cache")}}
        failing = mj.run(source, {"xs": [0, 1, 2]}, backend="docker_swarm", cache=False, wait=False, cfg=cfg)
        # Scatter values equal to their index: miniwdl then names calls call-align-<index>, as the
        # synthetic writer does (other values are appended: call-align-1-7).
        passing = mj.run(source, {"xs": [0, 1], "bad": -1}, backend="docker_swarm", cache=False, wait=False, cfg=cfg)
        failing.wait(timeout=600, raise_on_failure=False)
        passing.wait(timeout=600)
    finally:
        os.chdir(old)
    assert failing.status == "failed" and passing.status == "succeeded"
    return {"failed": failing.run_dir, "succeeded": passing.run_dir}


@pytest.fixture
def synthetic_runs(tmp_path) -> Dict[str, Path]:
    """The same two runs written by the synthetic writer (its failing call retried once)."""
    failing = make_run(tmp_path / "failed", 3, 0)
    ids = scatter_ids("align", 3)
    for call_id in ids[2:]:
        failing.start_call(call_id)  # make_run started the first two already
    failing.finish_call(ids[0], stderr="aligning 0")
    failing.retry_call(ids[1])
    failing.fail_call(ids[1], stderr="aligning 1\nerror: sample 1 is corrupt\n")
    failing.fail(ids[1])
    passing = make_run(tmp_path / "succeeded", 2, 2)
    passing.succeed({"out": ["ok", "ok"]})
    return {"failed": tmp_path / "failed", "succeeded": tmp_path / "succeeded"}


def test_every_synthetic_event_is_one_miniwdl_writes_with_the_same_fields(real_runs, synthetic_runs):
    real: Dict[Kind, list] = {}
    for run_dir in real_runs.values():
        for k, events in events_by_kind(run_dir, "shape").items():
            real.setdefault(k, []).extend(events)
    for outcome, run_dir in synthetic_runs.items():
        for k, events in events_by_kind(run_dir, "synth").items():
            assert k in real, f"{outcome}: the synthetic event {k} never occurs in a real run; real kinds: {sorted(real)}"
            real_levels = {e["level"] for e in real[k]}
            real_types: Dict[str, Set[str]] = {}
            for e in real[k]:
                for field, t in field_types(e).items():
                    real_types.setdefault(field, set()).add(t)
            for event in events:
                assert event["level"] in real_levels, (k, event["level"], real_levels)
                for field, t in field_types(event).items():
                    assert field in real_types, f"{k}: field {field!r} is not in miniwdl's event (it has {sorted(real_types)})"
                    assert t in real_types[field], f"{k}: field {field!r} is {t}, miniwdl writes {real_types[field]}"


def test_the_events_the_monitor_reads_are_all_imitated(real_runs, synthetic_runs):
    """The other direction, for what the progress view depends on: the real logs' call-level
    events (the ones the monitor reads) all have a synthetic counterpart."""
    synthetic = set()
    for run_dir in synthetic_runs.values():
        synthetic |= set(events_by_kind(run_dir, "synth"))
    needed = {
        ("wdl.w:WF", "workflow start"), ("wdl.w:WF", "ready"), ("wdl.w:WF", "finish"),
        ("wdl.w:WF", "call failure propagating"),
        ("wdl.w:WF.t:CALL", "task setup"), ("wdl.w:WF.t:CALL", "docker task exit"), ("wdl.w:WF.t:CALL", "done"),
        ("wdl.w:WF.t:CALL", "failed task will be retried"), ("wdl.w:WF.t:CALL", "task align (POS) failed"),
        ("wdl.w:WF.t:CALL.stderr", "<a stderr line>"),
    }
    real = set()
    for run_dir in real_runs.values():
        real |= set(events_by_kind(run_dir, "shape"))
    assert needed <= real, needed - real
    assert needed <= synthetic, needed - synthetic


def test_files_are_where_miniwdl_puts_them(real_runs, synthetic_runs):
    for outcome in ("failed", "succeeded"):
        missing = layout(synthetic_runs[outcome]) - layout(real_runs[outcome])
        assert not missing, f"{outcome}: the synthetic run has files miniwdl does not write: {sorted(missing)}"
    real_error = json.loads((real_runs["failed"] / "error.json").read_text())
    synthetic_error = json.loads((synthetic_runs["failed"] / "error.json").read_text())
    assert key_paths(synthetic_error) <= key_paths(real_error), key_paths(synthetic_error) - key_paths(real_error)
    assert real_error["cause"]["error"] == synthetic_error["cause"]["error"] == "CommandFailed"
    real_out = json.loads((real_runs["succeeded"] / "outputs.json").read_text())
    synthetic_out = json.loads((synthetic_runs["succeeded"] / "outputs.json").read_text())
    assert set(real_out) == {"shape.out"} and set(synthetic_out) == {"synth.out"}, "namespaced by the workflow"


def test_the_monitor_reads_both_the_same_way(real_runs, synthetic_runs):
    for outcome in ("failed", "succeeded"):
        real, synthetic = RunMonitor(real_runs[outcome]).poll(), RunMonitor(synthetic_runs[outcome]).poll()
        assert real.status == synthetic.status == outcome
        assert sorted(real.calls) == sorted(synthetic.calls)
        for call_id, call in real.calls.items():
            twin = synthetic.calls[call_id]
            if outcome == "failed" and call_id != "call-align-1":
                # In the real failing run calls 0 and 2 may or may not finish before call 1's
                # failure aborts them (a race the scheduler decides): either state is miniwdl's.
                assert call.state in ("cancelled", "succeeded") and twin.state in ("cancelled", "succeeded"), (call.state, twin.state)
                continue
            assert (twin.name, twin.state, twin.exit_code) == (call.name, call.state, call.exit_code), call_id
    real_failed = RunMonitor(real_runs["failed"]).poll().calls["call-align-1"]
    synthetic_failed = RunMonitor(synthetic_runs["failed"]).poll().calls["call-align-1"]
    assert real_failed.state == synthetic_failed.state == "failed" and real_failed.exit_code == synthetic_failed.exit_code == 1
