"""Cancelling as docs/display.md and README describe it, in a real ipykernel on real backends: the
widget's Cancel button pressed the way JupyterLab presses it (a comm message to the button's
model), and a kernel interrupt while a cell waits, on docker_run and on local. Each checks the run
ends `cancelled` and that no container or process of the run is left."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import List

import psutil
import pytest
from jupyter_client.manager import start_new_kernel

import miniwdl_jupyter as mj
from miniwdl_jupyter import launch_record

from conftest import wdl
from display_fixtures import KernelSession


@pytest.fixture
def kernel(workdir):
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    session = KernelSession(km, kc)
    try:
        session.run("%load_ext miniwdl_jupyter")
        yield session
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def containers_of(run_dir: Path) -> List[str]:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=miniwdl_jupyter.run_dir={run_dir}"], capture_output=True, text=True
    )
    return listed.stdout.split()


def processes_of(run_dir: Path) -> List[str]:
    """Processes working in the run directory or naming it (miniwdl, task commands, docker run)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.info["pid"] != os.getpid() and (str(run_dir) in cmdline or cwd.startswith(str(run_dir))):
            found.append(f"{proc.info['pid']} {cmdline[:200]}")
    return found


def wait_until_running(workdir: Path, backend: str) -> mj.Run:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = mj.list_runs(workdir / "wdl_runs")
        if found and found[0].poll().counts["running"] >= 1:
            run = found[0]
            # "running" starts at task setup; wait for the task itself to be there.
            while time.monotonic() < deadline:
                if (containers_of(run.run_dir) if backend == "docker_run" else [p for p in processes_of(run.run_dir) if "sleep 600" in p]):
                    return run
                time.sleep(0.2)
        time.sleep(0.2)
    raise AssertionError("the run's task never started")


def assert_nothing_left(run: mj.Run) -> None:
    deadline = time.monotonic() + 60
    while (containers_of(run.run_dir) or processes_of(run.run_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert containers_of(run.run_dir) == [], "no container of the run is left"
    assert processes_of(run.run_dir) == [], "no process of the run is left"
    pid = launch_record.read(run.run_dir)["pid"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_the_widgets_cancel_button_cancels_a_running_run(docker, workdir, kernel, monkeypatch):
    kernel.run("import os; os.environ['MINIWDL__JUPYTER__BACKEND'] = 'docker_run'")
    kernel.run("%%wdl --no-wait -o bg --progress widget n=1 seconds=600\n" + wdl("sleep_scatter.wdl", docker))
    run = wait_until_running(workdir, "docker_run")
    assert run.run_dir == Path(kernel.value("str(bg.run_dir)").strip("'"))
    # The button as the page has it: the Button model whose description is "Cancel".
    model_id = kernel.value(
        "[w.model_id for w in list(__import__('ipywidgets').Widget.widgets.values())"
        " if isinstance(w, __import__('ipywidgets').Button) and w.description == 'Cancel'][-1]"
    ).strip("'")
    # A click in JupyterLab reaches the kernel as this comm message on the button's model.
    click = kernel.kc.session.msg("comm_msg", {"comm_id": model_id, "data": {"method": "custom", "content": {"event": "click"}}})
    kernel.kc.shell_channel.send(click)
    deadline = time.monotonic() + 90
    while run.poll().status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run.status == "cancelled"
    assert_nothing_left(run)
    # What the page shows afterwards: the view's header says so and the button is gone.
    deadline = time.monotonic() + 30
    header = ""
    while "cancelled" not in header and time.monotonic() < deadline:
        header = kernel.value("[w.value for w in __import__('ipywidgets').Widget.widgets.values() if getattr(w, 'value', None).__class__ is str and 'sleepy' in w.value][0]")
        time.sleep(0.3)
    assert "cancelled" in header, header
    assert kernel.value("bg.status") == "'cancelled'"


@pytest.mark.parametrize("backend", ["docker_run", "local"])
def test_interrupting_the_kernel_leaves_no_container_or_process(docker, workdir, kernel, backend):
    kernel.run(f"import os; os.environ['MINIWDL__JUPYTER__BACKEND'] = {backend!r}")
    msg_id = kernel.kc.execute("%%wdl -o r --progress none n=2\n" + wdl("sleep_scatter.wdl", docker))
    run = wait_until_running(workdir, backend)
    kernel.km.interrupt_kernel()
    while True:
        reply = kernel.kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "Cancelled"
    assert run.status == "cancelled"
    assert_nothing_left(run)
