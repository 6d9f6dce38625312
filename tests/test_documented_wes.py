"""What docs/wes.md says, checked against `miniwdl-jupyter wes serve` on loopback over HTTP with real
runs on the `local` backend (every response validated as in test_wes_server.py), and the client
(`run(..., wes=URL)`) against it."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
import threading
import uuid
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

import miniwdl_jupyter as mj
from miniwdl_jupyter.errors import BackendError, ConfigError

from backend_fixtures import wait_until
from slurm_fixtures import slurm_cluster  # noqa: F401 - fixture
from wes_fixtures import ONE_TASK, SPEC_FILE, TERMINAL, WES, Server, api, server, server_env, wes_base  # noqa: F401 - fixtures

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

ONE = ONE_TASK.replace("IMAGE", "ignored")


def test_a_task_symlink_to_a_file_outside_the_run_is_not_served(api: WES, tmp_path: Path):
    """miniwdl itself refuses a File output that links outside the task's folder; a link the task
    leaves in its folder is still reachable by path under `outputs/`, and must not be served."""
    secret = tmp_path / f"secret-{uuid.uuid4().hex}.txt"
    secret.write_text("not for WES clients\n")
    wdl = f"""version 1.1
workflow leak {{
  call t
  output {{ File inside = t.inside }}
}}
task t {{
  command <<< echo fine > inside.txt; ln -s {secret} outside.txt; ln -s inside.txt link-inside.txt >>>
  output {{ File inside = "inside.txt" }}
}}
"""
    run_id = api.submit(wdl, {}, url="leak.wdl").json()["run_id"]
    assert api.wait(run_id) == "COMPLETE", api.run_log(run_id)
    url = api.run_log(run_id)["outputs"]["leak.inside"]
    assert api.http.get(url).text == "fine\n"  # the run's own file is served
    work = f"{api.url}/runs/{run_id}/outputs/call-t/work"
    assert api.http.get(f"{work}/link-inside.txt").text == "fine\n", "a link inside the run is followed"
    refused = api.http.get(f"{work}/outside.txt")
    assert refused.status_code == 404 and "not for WES clients" not in refused.text
    assert api.http.get(f"{api.url}/runs/{run_id}/outputs/call-t/work/../../../{secret.name}").status_code == 404


def test_openapi_json_is_the_description(api: WES):
    served = httpx.get(api.url + "/openapi.json")
    # the YAML document as JSON (response codes, YAML integers, become JSON's string keys)
    assert served.status_code == 200 and served.json() == json.loads(json.dumps(yaml.safe_load(SPEC_FILE.read_text())))


def test_pages_hold_50_by_default_and_1000_at_most(wes_base: Path):
    from bench_wes_listing import make_root

    root = wes_base / "many"
    make_root(root, 1005, 0)
    srv = Server(root, server_env(wes_base), "--backend", "local").start()
    try:
        wes = WES(srv.url)
        first = wes.call("GET", "/runs").json()
        assert len(first["runs"]) == 50 and first["next_page_token"]
        big = wes.call("GET", "/runs", params={"page_size": 5000}).json()
        assert len(big["runs"]) == 1000
        rest = wes.call("GET", "/runs", params={"page_size": 5000, "page_token": big["next_page_token"]}).json()
        assert len(rest["runs"]) == 5
    finally:
        srv.stop()


def test_an_http_workflow_url_is_fetched(api: WES, tmp_path: Path):
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "one.wdl").write_text(ONE)
    http = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "served")))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}/one.wdl"
        run_id = api.submit(None, {"one.word": "fetched"}, url=url).json()["run_id"]
        assert api.wait(run_id) == "COMPLETE", api.run_log(run_id)
        assert api.run_log(run_id)["outputs"] == {"one.said": "fetched"}
    finally:
        http.shutdown()
        http.server_close()
    # a path on the server is refused
    for path in ("/etc/hostname", f"file://{tmp_path}/served/one.wdl"):
        assert "workflow_url" in api.submit(None, {}, url=path, expect=400).json()["msg"]


def test_directory_outputs_name_the_folder_and_serve_its_files(api: WES):
    wdl = """version development
workflow tree {
  call t
  output { Directory d = t.d }
}
task t {
  command <<< mkdir -p d/sub; echo a > d/a.txt; echo b > d/sub/b.txt >>>
  output { Directory d = "d" }
}
"""
    run_id = api.submit(wdl, {}, url="tree.wdl", version="development").json()["run_id"]
    assert api.wait(run_id) == "COMPLETE", api.run_log(run_id)
    url = api.run_log(run_id)["outputs"]["tree.d"]
    assert url.rstrip("/").endswith("/d")
    assert api.http.get(url.rstrip("/") + "/a.txt").text == "a\n"
    assert api.http.get(url.rstrip("/") + "/sub/b.txt").text == "b\n"


FAIL_AND_SLOW = """version 1.1
workflow both {
  call boom
  call slow
}
task boom {
  command <<< exit 3 >>>
}
task slow {
  command <<< sleep 4; echo done >>>
}
"""


def _task_states(api: WES, run_id: str) -> dict:
    tasks = api.call("GET", "/runs/{run_id}/tasks", run_id=run_id).json()["task_logs"]
    return {t["name"]: next(line for line in t["system_logs"] if line.startswith("state=")) for t in tasks}


def test_fail_fast_engine_parameter(api: WES):
    """fail_fast=false lets the other call finish after one fails; the default stops it."""
    patient = api.submit(FAIL_AND_SLOW, {}, url="both.wdl", engine={"backend": "local", "fail_fast": "false"}).json()["run_id"]
    hasty = api.submit(FAIL_AND_SLOW, {}, url="both.wdl", engine={"backend": "local"}).json()["run_id"]
    assert api.wait(patient) == "EXECUTOR_ERROR" and api.wait(hasty) == "EXECUTOR_ERROR"
    assert _task_states(api, patient)["slow"] == "state=COMPLETE"
    assert _task_states(api, hasty)["slow"] != "state=COMPLETE"


def test_task_runtime_defaults_engine_parameter(api: WES, tmp_path: Path):
    """{"maxRetries": 1} as the default runtime: a task failing once succeeds on its second try."""
    marker = tmp_path / f"tried-{uuid.uuid4().hex}"
    wdl = f"version 1.1\ntask flaky {{\n  command <<< test -e {marker} || {{ touch {marker}; exit 1; }} >>>\n}}\n"
    plain = api.submit(wdl, {}, url="flaky.wdl").json()["run_id"]
    assert api.wait(plain) == "EXECUTOR_ERROR"
    marker.unlink()
    retried = api.submit(wdl, {}, url="flaky.wdl", engine={"backend": "local", "task_runtime_defaults": json.dumps({"maxRetries": 1})}).json()["run_id"]
    assert api.wait(retried) == "COMPLETE", api.run_log(retried)
    [task] = api.call("GET", "/runs/{run_id}/tasks", run_id=retried).json()["task_logs"]
    assert "attempt=2" in task["system_logs"]


SCRATCH = """version 1.1
workflow scratch {
  call t
  output { String said = t.said }
}
task t {
  command <<< echo scratch > scratch.txt; echo said >>>
  output { String said = read_string(stdout()) }
}
"""


def test_delete_work_engine_parameter(api: WES, server: Server):
    kept = api.submit(SCRATCH, {}, url="scratch.wdl", engine={"backend": "local", "cache": "false"}).json()["run_id"]
    deleted = api.submit(SCRATCH, {}, url="scratch.wdl", engine={"backend": "local", "cache": "false", "delete_work": "success"}).json()["run_id"]
    assert api.wait(kept) == "COMPLETE" and api.wait(deleted) == "COMPLETE"
    assert (server.root / kept / "run" / "call-t" / "work" / "scratch.txt").exists()
    assert not (server.root / deleted / "run" / "call-t" / "work" / "scratch.txt").exists()
    assert api.run_log(deleted)["outputs"] == {"scratch.said": "said"}


def test_serving_beyond_loopback_without_tokens_warns(wes_base: Path):
    root = wes_base / "host"
    srv = Server(root, server_env(wes_base), "--backend", "local", "--host", "127.0.0.2").start()
    try:
        assert srv.url.startswith("http://127.0.0.2:")
        assert WES(srv.url).call("GET", "/service-info").status_code == 200
    finally:
        srv.stop()
    log = (root.parent / f"server-{root.name}.log").read_text()
    assert "serving on 127.0.0.2 without --token-file: anyone who can reach it can run commands here" in log
    quiet_root = wes_base / "loopback"
    Server(quiet_root, server_env(wes_base), "--backend", "local").start().stop()
    assert "without --token-file" not in (quiet_root.parent / f"server-{quiet_root.name}.log").read_text()


# ---- the client's [wes] settings ---------------------------------------------------------------


def test_client_settings_reach_the_request(server: Server, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """[wes] backend, engine_parameters, engine and engine_version, as the server received them."""
    monkeypatch.setenv("MINIWDL__WES__BACKEND", "local")
    monkeypatch.setenv("MINIWDL__WES__ENGINE_PARAMETERS", '{"task_concurrency": "1"}')
    monkeypatch.setenv("MINIWDL__WES__ENGINE", "miniwdl")
    monkeypatch.setenv("MINIWDL__WES__ENGINE_VERSION", importlib.metadata.version("miniwdl"))
    run = mj.run(ONE, {"word": "sent"}, wes=server.url, wait=True)
    assert run.outputs == {"said": "sent"}
    request = WES(server.url).run_log(_remote_id(run))["request"]
    assert request["workflow_engine"] == "miniwdl"
    assert request["workflow_engine_version"] == importlib.metadata.version("miniwdl")
    engine = request["workflow_engine_parameters"]
    engine = json.loads(engine) if isinstance(engine, str) else engine
    assert engine["backend"] == "local" and engine["task_concurrency"] == "1"


def _remote_id(run: mj.Run) -> str:
    from miniwdl_jupyter import launch_record

    return launch_record.read(run.run_dir)["wes_run_id"]


def test_give_up_seconds_ends_a_run_whose_server_is_gone(wes_base: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MINIWDL__WES__GIVE_UP_SECONDS", "3")
    srv = Server(wes_base / "give-up", server_env(wes_base), "--backend", "local").start()
    try:
        run = mj.run(ONE, {"word": "w", "seconds": 600}, wes=srv.url, wait=False)
    finally:
        srv.proc.kill()
        srv.proc.wait()
    with pytest.raises(BackendError, match="did not answer"):
        run.wait(timeout=120)


def test_task_runs_are_refused(server: Server, workdir: Path):
    with pytest.raises(ConfigError, match="--task runs cannot be sent to a WES server"):
        mj.run(ONE, {"word": "x", "seconds": 0}, wes=server.url, task="echo_it", wait=False)


# ---- states before RUNNING, and the client's polling period -------------------------------------


class _Gate(ThreadingHTTPServer):
    """Serves one WDL document over HTTP and holds the answer to each of the first `held`
    requests until the test opens that request's gate: a fetch the test can stop and resume."""

    def __init__(self, text: str, held: int):
        self.arrived: list = []
        self.gates = [threading.Event() for _ in range(held)]
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                n = len(gate.arrived)
                gate.arrived.append(self.headers.get("User-Agent", ""))
                if n < len(gate.gates):
                    gate.gates[n].wait(300)
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/one.wdl"

    def close(self) -> None:
        for gate in self.gates:
            gate.set()
        self.shutdown()
        self.server_close()


# Runs until the test creates the file named by `release` (the server's backend is `local`).
HELD = """version 1.1
workflow held {
  input { String release }
  call wait_for { input: release = release }
  output { String said = wait_for.said }
}
task wait_for {
  input { String release }
  command <<< while [ ! -e ~{release} ]; do sleep 0.1; done; echo released >>>
  output { String said = read_string(stdout()) }
}
"""


def test_queued_then_initializing_then_running(api: WES, tmp_path: Path):
    """QUEUED: accepted, waiting while the server starts another submission (held here in its
    fetch of an http workflow_url); INITIALIZING: the miniwdl process started and is loading the
    WDL (held here in its own fetch of the same URL); then RUNNING and COMPLETE."""
    gate = _Gate(HELD, held=2)
    release = tmp_path / "release"
    before = {r["run_id"] for r in api.call("GET", "/runs", params={"page_size": 1000}).json()["runs"]}
    submitted: dict = {}
    first = threading.Thread(target=lambda: submitted.update(first=api.submit(None, {"held.release": str(release)}, url=gate.url)))
    second = threading.Thread(target=lambda: submitted.update(second=api.submit(ONE, {"one.word": "b"}, url="one.wdl")))

    def new_runs() -> dict:
        listed = api.call("GET", "/runs", params={"page_size": 1000}).json()["runs"]
        return {r["run_id"]: r["state"] for r in listed if r["run_id"] not in before}

    try:
        first.start()
        wait_until(lambda: gate.arrived, 120, "the server fetching the first run's workflow_url")
        second.start()
        queued = wait_until(lambda: len(new_runs()) == 2 and new_runs(), 120, "both submissions listed")
        assert set(queued.values()) == {"QUEUED"}, queued
        assert {api.state(run_id) for run_id in queued} == {"QUEUED"}
        gate.gates[0].set()  # the server may start the first run's process now
        wait_until(lambda: len(gate.arrived) >= 2, 120, "the first run's miniwdl process fetching its WDL")
        first.join(120)
        a = submitted["first"].json()["run_id"]
        assert api.state(a) == "INITIALIZING"
        gate.gates[1].set()
        assert api.wait(a, ("RUNNING", *TERMINAL)) == "RUNNING", api.run_log(a)
        release.touch()
        assert api.wait(a) == "COMPLETE", api.run_log(a)
        second.join(120)
        assert api.wait(submitted["second"].json()["run_id"]) == "COMPLETE"
    finally:
        release.touch()  # never leave the held task looping
        gate.close()


class _CountingProxy(ThreadingHTTPServer):
    """A pass-through HTTP proxy in front of the server that notes when each request came."""

    def __init__(self, target: str):
        self.seen: list = []
        proxy = self
        origin = httpx.URL(target)

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                proxy.seen.append((time.monotonic(), self.command, self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                answer = httpx.request(self.command, str(origin.copy_with(raw_path=self.path.encode())), content=body,
                                       headers=headers, timeout=120)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward  # noqa: N815 - http.server's names

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}{origin.path}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_the_client_polls_every_poll_seconds(server: Server, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """[wes] poll_seconds: the follower's status requests, counted by a proxy, for a run of about
    20 s: at the default 1 s there are 20 or more; at 6 s (the period grows to it from 0.25 s)
    about a dozen, with gaps of 6 s."""
    monkeypatch.setenv("MINIWDL__WES__POLL_SECONDS", "6")
    proxy = _CountingProxy(server.url)
    try:
        run = mj.run(ONE, {"word": "polled", "seconds": 20}, wes=proxy.url, wait=True)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert run.outputs == {"said": "polled"}
    polls = [t for t, method, path in proxy.seen if method == "GET" and path.endswith(f"/runs/{_remote_id(run)}/status")]
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    assert 4 <= len(polls) <= 15, f"{len(polls)} status requests"
    assert max(gaps) >= 5, gaps  # the default 1 s period never leaves such a gap


def test_a_preempted_task_ends_the_run_preempted(slurm_cluster, wes_base: Path, tmp_path: Path):
    """PREEMPTED: a server whose backend is `slurm`; the task's job is preempted by a job of a
    higher-priority partition (.ci/provision's test cluster), miniwdl raises Interrupted, and
    with no `preemptible` retries left the run (and its task) end PREEMPTED."""
    from slurm_fixtures import preemptable_task_memory, jobs_in_queue, urgent_job

    env = {**server_env(wes_base), "MINIWDL__SLURM__RUNTIME": "none", "MINIWDL__SLURM__PARTITION": "preemptable",
           "MINIWDL__SCHEDULER__TASK_CONCURRENCY": "4"}
    srv = Server(wes_base / "preempted", env, "--backends", "slurm", "--backend", "slurm").start()
    try:
        wes = WES(srv.url)
        mark = tmp_path / "running"
        wdl = f"""version 1.1
workflow bumped {{
  call nap
}}
task nap {{
  command <<< touch {mark}; sleep 300 >>>
  runtime {{ memory: "{preemptable_task_memory()}" }}
}}
"""
        run_id = wes.submit(wdl, {}, url="bumped.wdl", engine={"backend": "slurm"}).json()["run_id"]
        wait_until(mark.exists, 180, "the task's job running")
        with urgent_job():
            state = wes.wait(run_id, timeout=180)
        assert state == "PREEMPTED", wes.run_log(run_id)
        [task] = wes.call("GET", "/runs/{run_id}/tasks", run_id=run_id).json()["task_logs"]
        assert "state=PREEMPTED" in task["system_logs"], task
        assert jobs_in_queue(wes_base / "preempted" / run_id / "run") == []
    finally:
        srv.stop()
