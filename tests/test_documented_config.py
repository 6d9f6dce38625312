"""README's configuration table and "Where runs live", end to end: `[jupyter] root`, `[jupyter]
cache = false`, `[jupyter] progress` (in a real kernel, where the default would be the html board),
the `.cells/` store of cell sources; and loading a WDL from an HTTP URL (a local http.server on a
free port) with relative imports and File inputs given as URLs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import ipaddress
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import launch_record

from conftest import image_present, require, wdl


@pytest.fixture
def fast(docker, workdir, monkeypatch) -> str:
    monkeypatch.setenv("MINIWDL__JUPYTER__BACKEND", "docker_run")
    return docker


def test_root_from_a_cfg_file_and_from_the_environment(fast, shell, workdir, monkeypatch, capsys):
    (workdir / "miniwdl.cfg").write_text("[jupyter]\nroot = project_runs\n")
    monkeypatch.setenv("MINIWDL_CFG", str(workdir / "miniwdl.cfg"))
    body = wdl("scatter.wdl", fast)
    assert shell.run_cell("%%wdl -o r --progress none names=a\n" + body).success
    run = shell.user_ns["r"]
    assert run.run_dir.parent == workdir / "project_runs"
    assert not (workdir / "wdl_runs").exists(), "nothing under the default root"
    assert [r.run_dir for r in mj.list_runs()] == [run.run_dir]
    capsys.readouterr()
    assert shell.run_cell("%wdl runs").success and run.run_dir.name in capsys.readouterr().out

    monkeypatch.setenv("MINIWDL__JUPYTER__ROOT", str(workdir / "env_runs"))  # the variable wins over the file
    assert shell.run_cell("%%wdl -o e --progress none names=b\n" + body).success
    assert shell.user_ns["e"].run_dir.parent == workdir / "env_runs"
    assert [r.run_dir for r in mj.list_runs()] == [shell.user_ns["e"].run_dir]


def test_cache_false_runs_every_task_again(fast, shell, monkeypatch):
    body = wdl("scatter.wdl", fast)
    assert shell.run_cell("%%wdl -o first --progress none names=a names=b\n" + body).success
    assert shell.run_cell("%%wdl -o cached --progress none names=a names=b\n" + body).success
    assert sorted(c.state for c in shell.user_ns["cached"].calls) == ["cached"] * 2, "the default reuses tasks"

    monkeypatch.setenv("MINIWDL__JUPYTER__CACHE", "false")
    assert shell.run_cell("%%wdl -o fresh --progress none names=a names=b\n" + body).success
    fresh = shell.user_ns["fresh"]
    assert sorted(c.state for c in fresh.calls) == ["succeeded"] * 2
    stamps = [c for c in fresh.outputs["files"]]
    assert all(p.read_text() for p in stamps)
    assert launch_record.read(fresh.run_dir)["cache"] is False


def test_cell_sources_are_kept_content_addressed_under_the_root(fast, shell, workdir):
    body = wdl("scatter.wdl", fast)
    assert shell.run_cell("%%wdl -o one --progress none names=a\n" + body).success
    assert shell.run_cell("%%wdl -o two --progress none names=b\n" + body).success
    cells = workdir / "wdl_runs" / ".cells"
    stored = sorted(cells.iterdir())
    assert stored == [cells / (hashlib.sha256(body.encode()).hexdigest()[:16] + ".wdl")], "one file for one source"
    assert stored[0].read_text() == body, "kept verbatim (the command block's closing >>> included)"
    for name in ("one", "two"):
        assert launch_record.read(shell.user_ns[name].run_dir)["source_path"] == str(stored[0])
    changed = body.replace('echo "~{greeting} ~{name}"', 'echo "~{greeting}, ~{name}"')
    assert shell.run_cell("%%wdl -o three --progress none names=c\n" + changed).success
    assert len(list(cells.iterdir())) == 2
    assert [p.read_text() for p in shell.user_ns["three"].outputs["files"]] == ["hello, c\n"]
    assert "wdl_runs/.cells" not in str([r.run_dir for r in mj.list_runs()]), "the store is not a run"


def test_progress_setting_is_the_default_view_in_a_kernel(fast, workdir, monkeypatch):
    from display_fixtures import KernelSession
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("MINIWDL__JUPYTER__PROGRESS", "text")  # the kernel inherits it
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(workdir))
    kernel = KernelSession(km, kc)
    try:
        kernel.run("%load_ext miniwdl_jupyter")
        # allow_stdin=False is how papermill executes: `auto` would give the html board there.
        messages = kernel.run("%%wdl -o r names=a names=b\n" + wdl("scatter.wdl", fast), timeout=300)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    lines = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream").splitlines()
    assert lines and "succeeded" in lines[-1] and "2/2 calls" in lines[-1], lines
    # docs/display.md: in a kernel the text view's lines go to stdout
    stdout = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
    assert lines[-1] in stdout.splitlines(), messages
    boards = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data") and "calls" in m["content"]["data"].get("text/plain", "")]
    assert boards == [], "no html board: the configured text view instead"
    assert len(lines) <= 12


# -- loading from a URL -----------------------------------------------------------------------------


ARIA2C_IMAGE = os.environ.get("MINIWDL_JUPYTER_TEST_ARIA2C_IMAGE", "miniwdl-jupyter-test/aria2c:bookworm")


def docker_bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from the host and from task
    containers (which have their own loopback), and from nowhere else."""
    out = subprocess.run(["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"], capture_output=True, text=True)
    config = json.loads(out.stdout)[0]
    # Docker 20.10 lists only the subnet; the gateway is its first address.
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture
def served(tmp_path_factory, docker):
    """A directory served over HTTP by a local http.server on a free port; yields (dir, base URL)."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((docker_bridge_gateway(), 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://{server.server_address[0]}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


URL_TASK = """version 1.1
task read_it {
  input { File data }
  command <<< tr a-z A-Z < ~{data} >>>
  output { String upper = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


def test_file_inputs_given_as_urls_are_downloaded(fast, workdir, served, monkeypatch):
    # miniwdl downloads with aria2c in [download_aria2c] docker (an image on ghcr.io, which cannot
    # be pulled here): use the one .ci/provision builds from the base image.
    require("the aria2c image", image_present(ARIA2C_IMAGE), f"image {ARIA2C_IMAGE} is missing (build it with .ci/provision)")
    monkeypatch.setenv("MINIWDL__DOWNLOAD_ARIA2C__DOCKER", ARIA2C_IMAGE)
    root, base = served
    (root / "in.txt").write_text("from the web\n")
    run = mj.run(URL_TASK.replace("IMAGE", fast), {"data": f"{base}/in.txt"})
    assert run.outputs == {"upper": "FROM THE WEB"}


def test_a_wdl_from_a_url_with_relative_imports(fast, shell, workdir, served):
    root, base = served
    (root / "lib").mkdir()
    for name in ("main.wdl", "greet.wdl"):
        (root / "lib" / name).write_text(wdl(f"lib/{name}", fast))
    run = mj.run(f"{base}/lib/main.wdl", {"who": "web"})
    assert run.outputs == {"message": "hi web"}
    assert shell.run_cell(f"%wdl run -f {base}/lib/main.wdl -o r --progress none who=cell").success
    assert shell.user_ns["r"].outputs == {"message": "hi cell"}


NOTE_TASK = """version 1.1
task note {
  command <<< echo hello > note.txt >>>
  output { File note = "note.txt" }
  runtime { docker: "IMAGE" }
}
"""



def test_a_cached_task_run_gives_file_outputs_as_paths(fast, workdir):
    first = mj.run(NOTE_TASK.replace("IMAGE", fast))
    again = mj.run(NOTE_TASK.replace("IMAGE", fast))
    assert [c.state for c in again.calls] == ["cached"]
    assert isinstance(first.outputs["note"], Path)
    assert isinstance(again.outputs["note"], Path) and again.outputs["note"].read_text() == "hello\n"
