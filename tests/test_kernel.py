"""The magic in a real ipykernel: interrupting the kernel cancels the run."""

from __future__ import annotations

import time

import pytest
from jupyter_client.manager import start_new_kernel

import miniwdl_jupyter as mj

from conftest import wdl


@pytest.fixture
def kernel(workdir):
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    try:
        reply = kc.execute_interactive("%load_ext miniwdl_jupyter", timeout=60)
        assert reply["content"]["status"] == "ok"
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_interrupting_the_kernel_cancels_the_run(docker, workdir, kernel):
    km, kc = kernel
    # stop_on_error=False: the interrupted cell must not make the kernel abort the requests after it
    msg_id = kc.execute("%%wdl -o r --progress none n=2\n" + wdl("sleep_scatter.wdl", docker), stop_on_error=False)
    deadline = time.monotonic() + 120
    run = None
    while time.monotonic() < deadline:
        runs = mj.list_runs(workdir / "wdl_runs")
        if runs and runs[0].poll().counts["running"] >= 1:
            run = runs[0]
            break
        time.sleep(0.2)
    assert run is not None, "the run never started"
    km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "Cancelled"
    assert run.status == "cancelled"
    # The handle was stored before waiting, so the notebook still has it.
    check = kc.execute_interactive("assert r.status == 'cancelled'", timeout=30)
    assert check["content"]["status"] == "ok"
