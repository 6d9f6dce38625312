"""The runs API from plain Python, on a real Docker daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import launch_record
from miniwdl_jupyter.errors import Cancelled, InputError, TaskFailed, WDLSourceError

from conftest import CORE_BACKEND, wdl


def test_scatter_outputs_then_cached_then_no_cache(docker, workdir):
    source = wdl("scatter.wdl", docker)
    first = mj.run(source, {"names": ["a", "b", "c"], "greeting": "hi"})
    assert first.status == "succeeded"
    files = first.outputs["files"]
    assert [p.read_text() for p in files] == ["hi a\n", "hi b\n", "hi c\n"]
    assert all(isinstance(p, Path) and p.is_relative_to(first.run_dir) for p in files)
    assert first.outputs["count"] == 3
    assert sorted(c.state for c in first.calls) == ["succeeded"] * 3
    assert all(c.exit_code == 0 and c.start_time and c.end_time for c in first.calls)
    # README: per call its name, scatter index, state, start/end, exit code, attempt, cached
    assert sorted((c.name, c.scatter_index, c.attempt, c.cached) for c in first.calls) == [("greet", f"{i}-{n}", 1, False) for i, n in enumerate("abc")]
    assert first.backend == CORE_BACKEND

    again = mj.run(source, {"names": ["a", "b", "c"], "greeting": "hi"})
    assert again.run_dir != first.run_dir
    assert sorted(c.state for c in again.calls) == ["cached"] * 3
    assert all(c.cached for c in again.calls)

    fresh = mj.run(source, {"names": ["a", "b", "c"], "greeting": "hi"}, cache=False)
    assert sorted(c.state for c in fresh.calls) == ["succeeded"] * 3
    assert [p.read_text() for p in fresh.outputs["files"]] == ["hi a\n", "hi b\n", "hi c\n"]


def test_syntax_error_names_line_and_column(workdir):
    with pytest.raises(WDLSourceError) as info:
        mj.run("version 1.1\nworkflow w {\n  Strin x = 1\n}\n")
    err = info.value
    assert (err.line, err.column) == (3, 3)
    rendered = "\n".join(err._render_traceback_())
    assert "cell:3:3" in rendered and "Strin x = 1" in rendered and "^" in rendered
    assert not any(workdir.glob("wdl_runs/*_w")), "no run directory for a run that never started"


def test_missing_and_mistyped_inputs_are_reported_before_anything_starts(docker, workdir):
    source = wdl("scatter.wdl", docker)
    with pytest.raises(InputError, match=r"missing required input for hello: names \(Array\[String\]\)"):
        mj.run(source, {})
    with pytest.raises(InputError, match=r"input names should be Array\[String\], but was given int 3"):
        mj.run(source, {"names": 3})
    with pytest.raises(InputError, match=r"hello has no input 'nmes'"):
        mj.run(source, {"nmes": ["a"]})
    assert not any(p for p in (workdir / "wdl_runs").glob("2*")), "nothing is left behind"


def test_file_inputs_resolve_against_the_working_directory(docker, workdir):
    (workdir / "in.txt").write_text("data\n")
    source = textwrap.dedent(
        f"""
        version 1.1
        task cat_it {{
          input {{ File f }}
          command <<< cat ~{{f}} >>>
          output {{ String text = read_string(stdout()) }}
          runtime {{ docker: "{docker}" }}
        }}
        """
    )
    assert mj.run(source, {"f": "in.txt"}).outputs == {"text": "data"}
    with pytest.raises(InputError, match="file not found: nope.txt"):
        mj.run(source, {"f": "nope.txt"})


def test_failed_task_raises_task_failed_with_stderr_tail(docker, workdir):
    with pytest.raises(TaskFailed) as info:
        mj.run(wdl("exit3.wdl", docker))
    err = info.value
    assert err.exit_code == 3
    assert err.stderr_tail[-2:] == ["starting", "something went wrong"]
    assert err.stderr_file and err.stderr_file.exists()
    handle = mj.attach(err.run_dir)
    assert handle.status == "failed"
    assert isinstance(handle.error, TaskFailed)
    assert "something went wrong" in "\n".join(handle.error._render_traceback_())


def test_imports_resolve_relative_to_the_wdl_file(docker, workdir):
    lib = workdir / "lib"
    lib.mkdir()
    for name in ("main.wdl", "greet.wdl"):
        (lib / name).write_text(wdl(f"lib/{name}", docker))
    assert mj.run("lib/main.wdl", {"who": "ann"}).outputs == {"message": "hi ann"}


def test_no_wait_run_survives_its_process_and_is_attached_later(docker, workdir):
    (workdir / "hello.wdl").write_text(wdl("scatter.wdl", docker))
    script = textwrap.dedent(
        """
        import os, sys, miniwdl_jupyter as mj
        r = mj.run("hello.wdl", {"names": ["x", "y"]}, wait=False)
        print(r.run_dir, flush=True)
        os.kill(os.getpid(), 9)  # the kernel dies hard; the run must not
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=workdir, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    run_dir = Path(proc.stdout.strip())
    handle = mj.attach(run_dir).wait(timeout=180)
    assert [p.read_text() for p in handle.outputs["files"]] == ["hello x\n", "hello y\n"]


def _swarm_services(run_dir: Path) -> set:
    """Swarm services of this run: those mounting its directory (the daemon is shared, and other
    runs' services come and go meanwhile)."""
    ids = subprocess.run(["docker", "service", "ls", "-q"], capture_output=True, text=True).stdout.split()
    if not ids:
        return set()
    listed = subprocess.run(
        ["docker", "service", "inspect", "--format", "{{.ID}} {{json .Spec.TaskTemplate.ContainerSpec.Mounts}}", *ids],
        capture_output=True, text=True,
    ).stdout.splitlines()
    return {line.split(" ", 1)[0] for line in listed if f'"Source":"{run_dir}/' in line}


def test_cancel_stops_a_running_scatter(docker, workdir):
    handle = mj.run(wdl("sleep_scatter.wdl", docker), {"n": 4}, wait=False)
    deadline = time.monotonic() + 120
    while handle.poll().counts["running"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert handle.state.counts["running"] >= 1, handle.log()
    while not _swarm_services(handle.run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)  # "running" starts at task setup, a moment before swarm has the service
    services = _swarm_services(handle.run_dir)
    assert services, "the run's tasks are swarm services"
    handle.cancel()  # returns once the run is done (it waits up to 30 s), not on a timer
    assert handle.status == "cancelled"
    assert isinstance(handle.error, Cancelled)
    assert _swarm_services(handle.run_dir) == set(), "no swarm service of this run is left"
    # Swarm removes a service's container asynchronously (docker's stop timeout is 10 s): give it
    # that long, no more.
    deadline = time.monotonic() + 15
    while _service_containers(services) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _service_containers(services) == []
    with pytest.raises(Cancelled):
        handle.wait()


def _service_containers(services: set) -> list:
    listed = subprocess.run(
        ["docker", "ps", "-a", "--format", '{{.ID}} {{.Label "com.docker.swarm.service.id"}}'],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return [line for line in listed if any(line.endswith(" " + full) or full.startswith(line.split(" ")[-1] or "-") for full in services)]


def test_a_run_whose_process_died_is_failed_not_running_forever(docker, workdir):
    handle = mj.run(wdl("sleep_scatter.wdl", docker), {"n": 1, "seconds": 30}, backend="local", wait=False)
    deadline = time.monotonic() + 60
    while handle.poll().status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    record = launch_record.read(handle.run_dir)
    os.killpg(record["pid"], signal.SIGKILL)
    handle.wait(timeout=30, raise_on_failure=False)
    assert handle.status == "failed"
    assert "was killed by SIGKILL before it wrote outputs.json or error.json" in str(handle.error)
    # docs/runs.md: which process, what to do, the last log line and where miniwdl's own output is
    assert f"(pid {record['pid']})" in str(handle.error) and "Re-run it: tasks that finished come back from the call cache." in str(handle.error)
    details = handle.error.details
    assert details[0].startswith("last log line: ") and details[-1] == f"miniwdl's own output: {handle.run_dir / '.miniwdl_jupyter' / 'miniwdl.stderr'}", details


def test_list_runs_newest_first_and_attach_by_name(docker, workdir):
    source = wdl("scatter.wdl", docker)
    older = mj.run(source, {"names": ["a"]})
    newer = mj.run(source, {"names": ["b"]})
    listed = mj.list_runs()
    assert [r.run_dir for r in listed[:2]] == [newer.run_dir, older.run_dir]
    assert mj.attach(older.run_dir.name).outputs["files"][0].read_text() == "hello a\n"
    assert "done" in older.log(tail=3)
    assert "task setup" in older.log("greet", tail=None)


def test_one_task_of_a_document(docker, workdir):
    run = mj.run(wdl("scatter.wdl", docker), {"name": "solo", "greeting": "yo"}, task="greet")
    assert run.outputs["out"].read_text() == "yo solo\n"
    assert [c.state for c in run.calls] == ["succeeded"]
    with pytest.raises(InputError, match="no task named 'nope'"):
        mj.run(wdl("scatter.wdl", docker), task="nope")
