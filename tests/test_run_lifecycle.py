"""A run's life from outside its process: starting, killed, cancelled after death, its directory
(miniwdl's --dir convention), and bad arguments that must fail before anything is created."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import launch_record
from miniwdl_jupyter.errors import InputError, RunNotFound

from conftest import wdl
from slurm_fixtures import slurm_cluster  # noqa: F401 (a fixture)

ECHO = textwrap.dedent(
    """
    version 1.1
    task echo {
      input { String s = "x" }
      command <<<
        echo "~{s}"
      >>>
      output { String out = read_string(stdout()) }
    }
    """
)


def _wait_until(predicate, seconds: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {seconds} s")
        time.sleep(0.1)


def _processes_inside(run_dir: Path) -> list:
    inside = str(run_dir.resolve()) + os.sep
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "cmdline"]):
        if (proc.info.get("cwd") or "").startswith(inside):
            found.append(proc.info)
    return found


def _containers_of(run_dir: Path) -> list:
    return subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=miniwdl_jupyter.run_dir={run_dir}"], capture_output=True, text=True
    ).stdout.split()


def _start_sleepers(docker: str, backend: str, n: int = 2) -> mj.Run:
    handle = mj.run(wdl("sleep_scatter.wdl", docker), {"n": n, "seconds": 600}, backend=backend, wait=False, cache=False)
    _wait_until(lambda: handle.poll().counts["running"] == n, what=f"{n} running tasks")
    return handle


def test_killing_the_runner_leaves_no_local_task_running(docker, workdir):
    handle = _start_sleepers(docker, "local")
    _wait_until(lambda: len(_processes_inside(handle.run_dir)) >= 2, what="task processes")
    os.kill(launch_record.read(handle.run_dir)["pid"], signal.SIGKILL)  # the runner only, not its tasks
    handle.wait(timeout=60, raise_on_failure=False)
    assert handle.status == "failed"
    _wait_until(lambda: not _processes_inside(handle.run_dir), 30, "no task process left")
    message = str(handle.error)
    assert "killed by SIGKILL" in message and "Re-run it" in message
    assert '{"' not in message  # no raw JSON log lines
    assert len(handle.error._render_traceback_()) <= 6


def test_local_tasks_end_with_their_killed_runner_though_nobody_watches(docker, workdir):
    handle = _start_sleepers(docker, "local")
    _wait_until(lambda: len(_processes_inside(handle.run_dir)) >= 2, what="task processes")
    os.killpg(launch_record.read(handle.run_dir)["pid"], signal.SIGKILL)  # miniwdl's whole group, no cleanup
    # Nobody waits on or cancels the run (poll() only reads its directory; it stops nothing).
    _wait_until(lambda: handle.poll().status == "failed", 60, "the run reads failed")
    _wait_until(lambda: not _processes_inside(handle.run_dir), 2, "no task process 2 s after the run reads failed")


def test_cancel_of_a_killed_docker_run_removes_its_containers(docker, workdir):
    handle = _start_sleepers(docker, "docker_run")
    _wait_until(lambda: len(_containers_of(handle.run_dir)) == 2, what="2 containers")
    os.kill(launch_record.read(handle.run_dir)["pid"], signal.SIGKILL)
    # Another process, as after a kernel restart: the run is already failed, and cancel cleans up.
    code = f"import miniwdl_jupyter as mj; r = mj.attach({str(handle.run_dir)!r}); r.cancel(); print(r.status)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "failed"
    assert _containers_of(handle.run_dir) == []


def test_a_new_docker_run_sweeps_containers_of_killed_runs(docker, workdir):
    killed = _start_sleepers(docker, "docker_run", n=1)
    _wait_until(lambda: len(_containers_of(killed.run_dir)) == 1, what="a container")
    os.kill(launch_record.read(killed.run_dir)["pid"], signal.SIGKILL)
    _wait_until(lambda: not psutil.pid_exists(launch_record.read(killed.run_dir)["pid"]) or killed.done, 30, "runner gone")
    mj.run(ECHO, {"s": "next"}, backend="docker_run", task="echo", cache=False)
    _wait_until(lambda: _containers_of(killed.run_dir) == [], 60, "the killed run's container removed")


def test_a_starting_run_is_not_taken_for_dead(workdir):
    run_dir = workdir / "starting"
    run_dir.mkdir()
    # What another process sees between writing the record and recording the pid.
    launch_record.write(run_dir, {"name": "echo", "launcher": "local", "launch_time": time.time(), "host": os.uname().nodename})
    seen = mj.attach(run_dir)
    assert seen.status == "queued"
    launch_record.update(run_dir, launch_time=time.time() - 100)  # still within the two minutes
    assert mj.attach(run_dir).status == "queued"
    launch_record.update(run_dir, launch_time=time.time() - 130)  # no handle after two minutes: died
    assert mj.attach(run_dir).status == "failed"


def test_a_reused_pid_is_never_taken_for_the_run(workdir):
    """Liveness is the recorded pid *with its start time*: a live process that got the same pid
    later is not the run's miniwdl."""
    from miniwdl_jupyter.launchers.local import process_start_time

    me = os.getpid()
    for started, alive in ((process_start_time(me), True), (process_start_time(me) - 1000, False)):
        run_dir = workdir / f"pid-{alive}"
        run_dir.mkdir()
        launch_record.write(run_dir, {"name": "echo", "launcher": "local", "launch_time": time.time(), "host": os.uname().nodename})
        launch_record.update(run_dir, pid=me, pid_start_time=started)
        status = mj.attach(run_dir).status
        assert (status != "failed") if alive else (status == "failed"), (alive, status)


def test_attach_of_a_just_started_run_follows_it_to_success(workdir):
    started = subprocess.run(
        [sys.executable, "-c", f"import miniwdl_jupyter as mj; print(mj.run({ECHO!r}, {{'s': 'hi'}}, backend='local', wait=False).run_dir)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    handle = mj.attach("last")
    assert str(handle.run_dir) == started
    assert handle.wait(timeout=120).outputs["out"] == "hi"


def test_dir_follows_miniwdl_convention(workdir):
    first = mj.run(ECHO, backend="local", dir="myruns")
    second = mj.run(ECHO, backend="local", dir="myruns")
    assert first.run_dir.parent == second.run_dir.parent == workdir / "myruns"
    assert first.run_dir != second.run_dir and first.run_dir.name.endswith("_echo")
    assert (workdir / "myruns" / "_LAST").resolve() == second.run_dir
    exact = mj.run(ECHO, backend="local", dir="exact/.")
    assert exact.run_dir == workdir / "exact"
    with pytest.raises(InputError, match="already exists and is not empty"):
        mj.run(ECHO, backend="local", dir="exact/.")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dir": "afile"}, "is a file"),
        ({"dir": "afile/."}, "names a file"),
        ({"inputs": [("s", 1)]}, "must be a mapping"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(workdir, kwargs, message):
    (workdir / "afile").write_text("not a directory")
    with pytest.raises(InputError, match=message):
        mj.run(ECHO, backend="local", **kwargs)
    assert not (workdir / "wdl_runs").exists() or not [p for p in (workdir / "wdl_runs").iterdir() if p.name != ".cells"]


def test_a_run_root_that_is_a_file_is_a_short_error(workdir, monkeypatch):
    (workdir / "rootfile").write_text("")
    monkeypatch.setenv("MINIWDL__JUPYTER__ROOT", str(workdir / "rootfile"))
    with pytest.raises(InputError, match="run root .* is a file"):
        mj.run(ECHO, backend="local")


def test_attach_refuses_what_is_not_a_run(workdir):
    with pytest.raises(InputError, match="not list"):
        mj.attach(["a"])
    with pytest.raises(RunNotFound):
        mj.attach("nope")


def test_one_damaged_run_directory_does_not_break_the_listing(workdir):
    good = mj.run(ECHO, backend="local")
    broken = workdir / "wdl_runs" / "20200101_000000_broken"
    launch_record.write(broken, {})
    launch_record.path(broken).write_text('["valid JSON, not an object"]')
    odd = workdir / "wdl_runs" / "20200101_000001_odd"
    launch_record.write(odd, {"start_time": "yesterday", "name": 3})
    listed = mj.list_runs()
    assert {good.run_dir, broken, odd} == {r.run_dir for r in listed}
    assert {r.run_dir: r.status for r in listed}[good.run_dir] == "succeeded"
    from miniwdl_jupyter.display.tables import runs_table

    table = runs_table(listed)._repr_html_()
    assert "20200101_000000_broken" in table and "echo" in table


def test_killing_the_runner_of_a_slurm_run_leaves_no_job_queued(slurm_cluster, workdir, monkeypatch):
    from slurm_fixtures import jobs_in_queue

    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    handle = mj.run(wdl("sleep_scatter.wdl", "none"), {"n": 3, "seconds": 600}, backend="slurm", wait=False, cache=False)
    _wait_until(lambda: len(jobs_in_queue(handle.run_dir)) == 3, 120, "3 jobs in the queue")
    # the live board says where each running task is: its SLURM job, state and node
    from miniwdl_jupyter.display.html_board import board_bundle
    from miniwdl_jupyter.display.progress import NoView

    view = NoView(handle)
    _wait_until(lambda: any(c.job.get("state") == "RUNNING" for c in handle.poll().calls.values()), 120, "a job RUNNING")
    view.update(handle.poll())
    board = board_bundle(handle.state, view, final=False)["text/plain"]
    running = next(c for c in handle.state.calls.values() if c.job.get("state") == "RUNNING")
    assert f"job {running.job['job_id']} RUNNING on {running.job['node']}" in board
    os.kill(launch_record.read(handle.run_dir)["pid"], signal.SIGKILL)
    handle.wait(timeout=60, raise_on_failure=False)
    assert handle.status == "failed"
    _wait_until(lambda: jobs_in_queue(handle.run_dir) == [], 60, "the queue emptied of this run's jobs")


def test_a_failed_task_shows_the_last_20_lines_of_its_stderr_and_its_log_paths(workdir):
    """README: TaskFailed carries the exit code, the last 20 lines of the task's stderr and its log paths."""
    noisy = "version 1.1\ntask noisy { command <<< for i in $(seq 1 30); do echo line$i >&2; done; exit 4 >>> }\n"
    with pytest.raises(mj.TaskFailed) as info:
        mj.run(noisy, backend="local", cache=False)
    err = info.value
    assert err.exit_code == 4 and "exited with status 4" in str(err)
    assert err.stderr_tail == [f"line{i}" for i in range(11, 31)]
    shown = "\n".join(err._render_traceback_())
    assert "line11" in shown and "line10\n" not in shown
    assert f"stderr: {err.stderr_file}" in shown and f"log:    {err.log_file}" in shown
    assert err.stderr_file.name == "stderr.txt" and err.log_file.exists()


def _task_pool_size(run_dir: Path) -> int:
    for line in (run_dir / "workflow.log.json").read_text().splitlines():
        event = json.loads(line)
        if event.get("message") == "task thread pool initialized":
            return event["task_concurrency"]
    raise AssertionError("miniwdl logged no task thread pool")


def test_tasks_that_run_elsewhere_lift_the_local_core_limit(slurm_cluster, workdir, monkeypatch):
    """docs/design.md (companions' runs_elsewhere): without [scheduler] task_concurrency, a SLURM
    run's miniwdl gets [jupyter] cluster_task_concurrency task threads, a local run this machine's
    cores (miniwdl's default)."""
    monkeypatch.setenv("MINIWDL__SLURM__RUNTIME", "none")
    monkeypatch.setenv("MINIWDL__JUPYTER__CLUSTER_TASK_CONCURRENCY", "37")
    monkeypatch.delenv("MINIWDL__SCHEDULER__TASK_CONCURRENCY", raising=False)
    one = ECHO.replace("version 1.1\n", "version 1.1\nworkflow one { call echo  output { String out = echo.out } }\n", 1)
    on_slurm = mj.run(one, backend="slurm", cache=False)
    assert on_slurm.outputs == {"out": "x"}
    assert _task_pool_size(on_slurm.run_dir) == 37
    on_local = mj.run(one, backend="local", cache=False)
    assert _task_pool_size(on_local.run_dir) == os.cpu_count() != 37
