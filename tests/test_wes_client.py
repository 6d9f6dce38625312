"""The WES client: `run(..., wes=URL)`, `%%wdl --wes URL` and `attach("wes:URL#RUN_ID")` against our
own server on loopback, followed in a local run directory by the same monitor and views."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import miniwdl_jupyter as mj
from conftest import TEST_IMAGE
from miniwdl_jupyter.errors import Cancelled, ConfigError, RunNotFound, TaskFailed
from miniwdl_jupyter import launch_record
from wes_fixtures import FAILING, ONE_TASK, SCATTER_LIB, WES, Server, server, server_env, wes_base  # noqa: F401

ONE = ONE_TASK.replace("IMAGE", TEST_IMAGE)
CELL = """version 1.1
import "lib/greet.wdl" as g
workflow hello {
  input { Array[String] names }
  scatter (n in names) { call g.greet { input: name = n, greeting = "hey" } }
  output { Array[File] files = greet.out }
}
"""


@pytest.fixture
def notebook_dir(workdir: Path) -> Path:
    (workdir / "lib").mkdir()
    (workdir / "lib" / "greet.wdl").write_text(SCATTER_LIB.replace("IMAGE", TEST_IMAGE))
    return workdir


def test_run_on_a_wes_server_is_followed_locally(server: Server, notebook_dir: Path):
    host = server.url.rsplit("/ga4gh/wes/v1", 1)[0]  # a bare server URL gets the standard base path
    run = mj.run(CELL, {"names": ["a", "b"]}, wes=host, wait=False)
    seen = []
    run.wait(timeout=300, on_poll=lambda state: seen.append(state.status))
    assert run.status == "succeeded" and "running" in seen
    assert run.run_dir.is_relative_to(notebook_dir / "wdl_runs")
    record = json.loads((run.run_dir / ".miniwdl_jupyter" / "launch.json").read_text())
    assert record["launcher"] == "wes" and record["wes_url"] == server.url and len(record["wes_run_id"]) == 32
    files = run.outputs["files"]
    assert all(isinstance(f, str) and f.startswith(server.url) for f in files), "remote files come back as URLs"
    assert [httpx.get(f).text for f in files] == ["hey a\n", "hey b\n"]
    calls = sorted(run.calls, key=lambda c: c.id)
    assert [(c.id, c.state, c.exit_code) for c in calls] == [("call-greet-0-a", "succeeded", 0), ("call-greet-1-b", "succeeded", 0)]
    assert all(c.start_time and c.end_time and c.end_time >= c.start_time for c in calls)
    # the same progress view as any run, from the mirrored directory
    import io

    from miniwdl_jupyter.display.text import TextLine

    out = io.StringIO()
    TextLine(mj.attach(str(run.run_dir)), stream=out).update(run.poll())
    assert "hello" in out.getvalue() and "2/2" in out.getvalue(), out.getvalue()
    # and the server's own record of it agrees
    api = WES(server.url)
    assert api.state(record["wes_run_id"]) == "COMPLETE"
    request = api.run_log(record["wes_run_id"])["request"]
    assert list(request["workflow_params"].values()) == [["a", "b"]]
    assert request["workflow_type_version"] == "1.1" and request["workflow_url"].endswith(".wdl")


def test_a_failing_task_raises_task_failed_with_the_remote_stderr(server: Server, workdir: Path):
    with pytest.raises(TaskFailed) as info:
        mj.run(FAILING.replace("IMAGE", TEST_IMAGE), wes=server.url)
    error = info.value
    assert error.exit_code == 3
    assert "oops: no such sample" in "\n".join(error.stderr_tail)
    assert error.stderr_file and error.stderr_file.read_text().startswith("about to fail")
    run = mj.attach("last")
    assert run.status == "failed" and [c.state for c in run.calls] == ["failed"]


def test_cancel_reaches_the_server(server: Server, workdir: Path):
    run = mj.run(ONE, {"seconds": 600}, wes=server.url, wait=False)
    deadline = time.monotonic() + 180
    while not any(c.state == "running" for c in run.calls):
        assert time.monotonic() < deadline, "the remote task never started"
        time.sleep(0.3)
    run.cancel()
    assert run.status == "cancelled"
    with pytest.raises(Cancelled):
        run.wait()
    record = json.loads((run.run_dir / ".miniwdl_jupyter" / "launch.json").read_text())
    assert WES(server.url).state(record["wes_run_id"]) == "CANCELED"


def test_attach_follows_a_run_submitted_elsewhere(server: Server, workdir: Path):
    run_id = WES(server.url).submit(ONE, {"word": "remote"}, url="one.wdl").json()["run_id"]
    run = mj.attach(f"wes:{server.url}#{run_id}")
    run.wait(timeout=300)
    assert run.outputs == {"said": "remote"}
    again = mj.attach(f"wes:{server.url}#{run_id}")
    assert again.run_dir == run.run_dir and again.status == "succeeded"
    with pytest.raises(RunNotFound, match="no run"):
        mj.attach(f"wes:{server.url}#{'0' * 32}")


def test_the_magic_attaches_to_a_remote_run(shell, server: Server):
    from IPython.core.error import UsageError

    run_id = WES(server.url).submit(ONE, {"word": "magic"}, url="one.wdl").json()["run_id"]
    shell.run_line_magic("wdl", f"attach wes:{server.url}#{run_id} -o remote --progress none")
    run = shell.user_ns["remote"]
    run.wait(timeout=300)
    assert run.outputs == {"said": "magic"}
    with pytest.raises(UsageError, match="no run"):
        shell.run_line_magic("wdl", f"attach wes:{server.url}#{'0' * 32} --progress none")


def test_imports_above_the_main_file_and_local_input_files_are_attached(server: Server, workdir: Path):
    (workdir / "shared").mkdir()
    (workdir / "shared" / "count.wdl").write_text(textwrap.dedent("""\
        version 1.1
        task count {
          input { File f }
          command <<< wc -l < ~{f} >>>
          output { Int n = read_int(stdout()) }
        }
        """))
    (workdir / "wf").mkdir()
    (workdir / "wf" / "main.wdl").write_text(textwrap.dedent("""\
        version 1.1
        import "../shared/count.wdl" as c
        workflow lines {
          input { File data }
          call c.count { input: f = data }
          output { Int n = count.n }
        }
        """))
    (workdir / "data.txt").write_text("1\n2\n3\n")
    run = mj.run("wf/main.wdl", {"data": "data.txt"}, wes=server.url)
    assert run.outputs == {"n": 3}


def test_a_token_protected_server(wes_base: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    tokens = wes_base / "client-tokens.txt"
    tokens.write_text("t" * 24 + " carol\n")
    srv = Server(wes_base / "client-auth", server_env(wes_base), "--backend", "local", "--token-file", str(tokens)).start()
    try:
        with pytest.raises(ConfigError, match="401.*MINIWDL__WES__TOKEN"):
            mj.run(ONE, wes=srv.url)
        assert not list((workdir / "wdl_runs").glob("2*_one")), "a refused submission leaves no run directory"
        monkeypatch.setenv("MINIWDL__WES__TOKEN", "t" * 24)
        run = mj.run(ONE, {"word": "ok"}, wes=srv.url)
        assert run.outputs == {"said": "ok"}
        assert "t" * 24 not in (run.run_dir / ".miniwdl_jupyter" / "launch.json").read_text(), "the token is not written to disk"
    finally:
        srv.stop()


def test_the_magic_runs_a_cell_on_a_wes_server(shell, server: Server, notebook_dir: Path):
    shell.run_cell_magic("wdl", f"--wes {server.url} -o remote --progress text names=x", CELL)
    run = shell.user_ns["remote"]
    assert run.status == "succeeded"
    assert [httpx.get(f).text for f in run.outputs["files"]] == ["hey x\n"]


def test_a_notebook_runs_cells_on_a_wes_server_under_papermill(server: Server, notebook_dir: Path):
    """The notebook client as users run it: papermill, a real kernel, the magic's own progress."""
    import nbformat

    from test_papermill import error_outputs, papermill, write_notebook

    src = write_notebook(
        notebook_dir / "remote.ipynb",
        "%load_ext miniwdl_jupyter",
        f"%%wdl --wes {server.url} -o remote names=$names\n" + CELL,
        "import httpx\nprint([httpx.get(f).text for f in remote.outputs['files']])",
        f"%%wdl --wes {server.url}\n" + FAILING.replace("IMAGE", TEST_IMAGE),
        parameters='names = ["p", "q"]',
    )
    proc = papermill(src, notebook_dir / "remote.out.ipynb")
    assert proc.returncode != 0, "the failing remote cell fails the notebook"
    nb = nbformat.read(notebook_dir / "remote.out.ipynb", as_version=4)
    (shown,) = [c for c in nb.cells if c.source.startswith("import httpx")]  # papermill adds a banner cell on failure
    printed = "".join(o.get("text", "") for o in shown.get("outputs", []))
    assert "['hey p\\n', 'hey q\\n']" in printed, [(c.source[:40], c.get("outputs")) for c in nb.cells]
    (error,) = error_outputs(notebook_dir / "remote.out.ipynb")
    assert error["ename"] == "TaskFailed" and "exited with status 3" in "\n".join(error["traceback"])


def test_the_client_rides_out_a_server_restart(wes_base: Path, workdir: Path):
    import signal
    import socket

    with socket.socket() as sock:  # a port for both lives of the server
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    root = wes_base / "client-restart"
    srv = Server(root, server_env(wes_base), "--backend", "local", "--port", port).start()
    try:
        run = mj.run(ONE, {"word": "survivor", "seconds": 8}, wes=srv.url, wait=False)
        deadline = time.monotonic() + 180
        while not any(c.state == "running" for c in run.calls):
            assert time.monotonic() < deadline, "the remote task never started"
            time.sleep(0.3)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        # The follower finds nobody answering (it says so and retries) and the run goes on.
        follower_log = launch_record.stderr_path(run.run_dir)
        deadline = time.monotonic() + 60
        while "(retrying)" not in follower_log.read_text():
            assert time.monotonic() < deadline, f"the follower never found the server gone: {follower_log.read_text()[-2000:]}"
            time.sleep(0.2)
        assert "did not answer" in follower_log.read_text()
        assert run.poll().status == "running", "a server that does not answer for a moment is not a failed run"
        srv = Server(root, server_env(wes_base), "--backend", "local", "--port", port).start()
        run.wait(timeout=300)
        assert run.outputs == {"said": "survivor"}
    finally:
        srv.stop()
