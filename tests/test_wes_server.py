"""The WES 1.1.0 server against real runs: `miniwdl-jupyter wes serve` on loopback over HTTP, runs
on the `local` backend (one on docker_run), every response validated against the official
OpenAPI description (schemathesis; see wes_fixtures.WES)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance

import miniwdl_jupyter as mj
from conftest import TEST_IMAGE
from miniwdl_jupyter.errors import TaskFailed
from miniwdl_jupyter.wes import attachments
from wes_fixtures import (  # noqa: F401 - fixtures
    _schemathesis_schema,
    FAILING,
    ONE_TASK,
    OUT_OF_MEMORY,
    SCATTER_LIB,
    SCATTER_MAIN,
    SPEC_FILE,
    TERMINAL,
    WES,
    Server,
    api,
    server,
    server_env,
    wes_base,
)

LIB = SCATTER_LIB.replace("IMAGE", TEST_IMAGE)
ONE = ONE_TASK.replace("IMAGE", TEST_IMAGE)
FAIL = FAILING.replace("IMAGE", TEST_IMAGE)


def test_service_info_tells_the_truth_and_the_description_is_served(api: WES):
    info = api.call("GET", "/service-info").json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"}
    assert info["supported_wes_versions"] == ["1.1.0"]
    assert {"1.0", "1.1", "1.2", "draft-2"} <= set(info["workflow_type_versions"]["WDL"]["workflow_type_version"])
    import importlib.metadata

    assert info["workflow_engine_versions"] == {"miniwdl": {"workflow_engine_version": [importlib.metadata.version("miniwdl")]}}
    params = {p["name"]: p for p in info["default_workflow_engine_parameters"]}
    assert params["backend"]["default_value"] == "local" and {"cache", "task_concurrency"} <= set(params)
    assert info["tags"]["backends"] == "local,docker_run"
    assert set(info["system_state_counts"]) >= {"COMPLETE", "RUNNING", "EXECUTOR_ERROR"}
    served = httpx.get(api.url + "/openapi.yaml")
    assert served.status_code == 200 and served.content == SPEC_FILE.read_bytes()
    packaged = Path(__import__("miniwdl_jupyter.wes.app", fromlist=["x"]).OPENAPI_FILE)
    assert packaged.read_bytes() == SPEC_FILE.read_bytes(), "the package serves the same 1.1.0 description the tests use"


def test_scatter_with_an_imported_file_as_attachment(api: WES):
    run_id = api.submit(SCATTER_MAIN, {"names": ["a", "b", "c"]}, files=[("lib/greet.wdl", LIB.encode())], tags={"project": "demo"}).json()["run_id"]
    assert api.wait(run_id) == "COMPLETE"
    log = api.run_log(run_id)
    assert log["state"] == "COMPLETE" and log["run_id"] == run_id
    assert log["request"]["workflow_url"] == "main.wdl" and log["request"]["tags"] == {"project": "demo"}
    assert log["request"]["workflow_params"] == {"names": ["a", "b", "c"]}
    assert log["run_log"]["name"] == "hello" and log["run_log"]["exit_code"] == 0
    assert log["run_log"]["start_time"].endswith("Z") and log["run_log"]["end_time"].endswith("Z")
    assert log["outputs"]["hello.count"] == 3
    contents = [api.http.get(url).text for url in log["outputs"]["hello.files"]]
    assert contents == ["hi a\n", "hi b\n", "hi c\n"]
    stderr = api.http.get(log["run_log"]["stderr"])
    assert stderr.status_code == 200 and "hello" in stderr.text
    report = api.http.get(f"{api.url}/runs/{run_id}/report")  # the run report (docs/report.md)
    assert report.status_code == 200 and "<h4>Timeline</h4>" in report.text and "call-greet-2-c" in report.text
    assert report.headers["content-security-policy"].startswith("default-src 'none'")

    tasks = api.call("GET", "/runs/{run_id}/tasks", run_id=run_id).json()
    assert tasks["next_page_token"] == ""
    assert sorted(t["name"] for t in tasks["task_logs"]) == ["greet[0-a]", "greet[1-b]", "greet[2-c]"]
    assert log["task_logs_url"].endswith(f"/runs/{run_id}/tasks")
    for task in tasks["task_logs"]:
        assert task["exit_code"] == 0 and task["start_time"] <= task["end_time"]
        assert "state=COMPLETE" in task["system_logs"]
        one = api.call("GET", "/runs/{run_id}/tasks/{task_id}", run_id=run_id, task_id=task["id"]).json()
        assert one == task
        name = task["name"][len("greet[0-"):-1]
        assert api.http.get(task["stderr"]).text == f"said {name}\n"
        assert api.http.get(task["stdout"]).status_code == 200
        assert "echo \"~{greeting}" not in task["cmd"][0] and f"hi {name}" in task["cmd"][0]

    # a task page of 2, then the rest
    first = api.call("GET", "/runs/{run_id}/tasks", run_id=run_id, params={"page_size": 2}).json()
    assert len(first["task_logs"]) == 2 and first["next_page_token"]
    rest = api.call("GET", "/runs/{run_id}/tasks", run_id=run_id, params={"page_size": 2, "page_token": first["next_page_token"]}).json()
    assert len(rest["task_logs"]) == 1 and rest["next_page_token"] == ""
    assert [t["id"] for t in first["task_logs"] + rest["task_logs"]] == [t["id"] for t in tasks["task_logs"]]
    api.call("GET", "/runs/{run_id}/tasks/{task_id}", run_id=run_id, task_id="call-nope", expect=404)
    # output file URLs reach nothing outside the run directory
    for escape in ("%2E%2E/wes.json", "..%2Fwes.json", "out/%2E%2E/%2E%2E/wes.json", "%2Fetc%2Fpasswd", "%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd"):
        response = api.http.get(f"{api.url}/runs/{run_id}/outputs/{escape}")
        assert response.status_code == 404 and "root:" not in response.text and "owner" not in response.text, escape


def test_paging_runs_is_stable_and_newest_first(api: WES):
    ids = [api.submit(ONE, {"word": f"w{i}"}, url="one.wdl").json()["run_id"] for i in range(5)]
    seen, token, pages = [], "", 0
    while True:
        params = {"page_size": 2, **({"page_token": token} if token else {})}
        page = api.call("GET", "/runs", params=params).json()
        assert len(page["runs"]) <= 2
        seen += [r["run_id"] for r in page["runs"]]
        for r in page["runs"]:
            assert isinstance(r["tags"], dict) and r["state"] in ("QUEUED", "INITIALIZING", "RUNNING", *TERMINAL)
        pages += 1
        if pages == 1:
            api.submit(ONE, {"word": "late"}, url="one.wdl")  # submitted while paging: not in this listing
        token = page["next_page_token"]
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert seen[:5] == ids[::-1], "newest first"
    for run_id in ids:
        assert api.wait(run_id) == "COMPLETE"
        assert api.run_log(run_id)["outputs"] == {"one.said": f"w{ids.index(run_id)}"}
    api.call("GET", "/runs", params={"page_token": "not-a-token"}, expect=400)
    api.call("GET", "/runs", params={"page_size": 0}, expect=400)
    api.call("GET", "/runs", params={"page_size": "many"}, expect=400)


def test_cancel_stops_a_running_run(api: WES):
    run_id = api.submit(ONE, {"seconds": 600}, url="one.wdl").json()["run_id"]
    api.wait(run_id, ("RUNNING",), timeout=120)
    deadline = time.monotonic() + 120
    while not api.call("GET", "/runs/{run_id}/tasks", run_id=run_id).json()["task_logs"]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert api.call("POST", "/runs/{run_id}/cancel", run_id=run_id).json() == {"run_id": run_id}
    assert api.state(run_id) in ("CANCELING", "CANCELED")
    assert api.wait(run_id, timeout=120) == "CANCELED"
    task = api.call("GET", "/runs/{run_id}/tasks", run_id=run_id).json()["task_logs"][0]
    assert "state=CANCELED" in task["system_logs"]
    assert api.call("POST", "/runs/{run_id}/cancel", run_id=run_id).json() == {"run_id": run_id}  # again: no-op
    api.call("POST", "/runs/{run_id}/cancel", run_id="0" * 32, expect=404)


def test_failing_task_is_an_executor_error_with_its_log(api: WES):
    run_id = api.submit(FAIL, {}, url="fails.wdl").json()["run_id"]
    assert api.wait(run_id) == "EXECUTOR_ERROR"
    log = api.run_log(run_id)
    assert log["outputs"] == {}
    assert any("TaskFailed" in line and "exited with status 3" in line for line in log["run_log"]["system_logs"])
    assert any("oops: no such sample" in line for line in log["run_log"]["system_logs"])
    (task,) = log["task_logs"]
    assert task["exit_code"] == 3 and "state=EXECUTOR_ERROR" in task["system_logs"]
    assert "oops: no such sample" in api.http.get(task["stderr"]).text


def test_bad_requests_get_error_responses(api: WES, server: Server):
    cases = [
        (dict(version="9.9"), "workflow_type_version"),
        (dict(engine={"backend": "local", "shell": "rm -rf /"}), "not allowed"),
        (dict(engine={"backend": "slurm_of_mars"}), "not offered"),
        (dict(engine={"task_concurrency": "lots"}), "not a valid integer"),
        (dict(url="missing.wdl", name="one.wdl"), "names no attached file"),
        (dict(url="/etc/passwd", name="one.wdl"), "local paths on the server are not accepted"),
        (dict(url="file:///etc/passwd", name="one.wdl"), "local paths"),
    ]
    for kwargs, words in cases:
        response = api.submit(ONE, {}, expect=400, **{"url": "one.wdl", **kwargs})
        assert words in response.json()["msg"], (kwargs, response.json())
    # the WDL's own problems come back before anything runs
    response = api.submit(ONE.replace("workflow one", "workflow one oops"), {}, url="one.wdl", expect=400)
    assert "WDLSourceError" in response.json()["msg"]
    response = api.submit(ONE, {"wrod": "x"}, url="one.wdl", expect=400)
    assert "no input 'wrod'" in response.json()["msg"]
    response = api.http.post(api.url + "/runs", data={"workflow_type": "CWL", "workflow_type_version": "v1.2", "workflow_url": "x.cwl"})
    api.check("POST", "/runs", response)
    assert response.status_code == 400 and "WDL" in response.json()["msg"]
    response = api.http.post(api.url + "/runs", data={"workflow_type": "WDL", "workflow_type_version": "1.1", "workflow_url": "https://x/y.wdl", "workflow_params": "{not json"})
    api.check("POST", "/runs", response)
    assert response.status_code == 400 and "not valid JSON" in response.json()["msg"]
    for template in ("/runs/{run_id}", "/runs/{run_id}/status", "/runs/{run_id}/tasks"):
        api.call("GET", template, run_id="f" * 32, expect=404)
        api.call("GET", template, run_id="..%2F..%2Fetc", expect=404)
    missing = api.http.get(api.url + "/no-such-endpoint")
    assert missing.status_code == 404 and missing.json()["status_code"] == 404
    assert not [p for p in server.root.iterdir() if p.is_dir() and not (p / "wes.json").exists()], "refused runs leave no folder"


def test_attachment_names_cannot_escape_the_run_folder(api: WES, server: Server):
    before = set(server.root.iterdir())
    outside = server.root.parent
    for name in ["../evil.wdl", "../../evil.wdl", "/tmp/evil.wdl", "a/../../evil.wdl", "..\\evil.wdl", "C:evil.wdl", "a//../evil.wdl"]:
        response = api.submit(ONE, {}, url="one.wdl", files=[(name, b"version 1.1\n")], expect=400)
        assert "attachment name" in response.json()["msg"], (name, response.json())
    for files, words in (
        ([("one.wdl", ONE.encode())], "both named"),
        ([("lib", b"x"), ("lib/x.wdl", b"y")], "both a file and a folder"),
        ([("LIB.wdl", b"x"), ("lib.wdl", b"y")], "both named"),
    ):
        response = api.submit(ONE, {}, url="one.wdl", files=files, expect=400)
        assert words in response.json()["msg"]
    # workflow_url and inputs naming paths outside the attachments
    response = api.submit(ONE, {}, url="../one.wdl", name="one.wdl", expect=400)
    assert "attachment name" in response.json()["msg"] or "refers to a parent" in response.json()["msg"]
    assert not list(outside.glob("evil*")) and not Path("/tmp/evil.wdl").exists()
    assert set(server.root.iterdir()) == before, "nothing was left behind by refused runs"


def test_a_symlinked_folder_inside_the_attachments_is_refused(tmp_path: Path):
    # Uploads cannot create symlinks; this checks the guard that would stop one planted there.
    root = tmp_path / "attachments"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "lib")
    with pytest.raises(attachments.AttachmentError, match="not a folder inside"):
        attachments._create_parents(root.resolve(), "lib/x.wdl")
    assert not list((tmp_path / "elsewhere").iterdir())
    for name in ("evil\x00.wdl", "", "./", "a/" * 40 + "x"):  # names an HTTP client would escape or never send
        with pytest.raises(attachments.AttachmentError):
            attachments.safe_name(name)


def test_upload_limits(wes_base: Path):
    srv = Server(wes_base / "limited", server_env(wes_base), "--backend", "local", "--max-upload-mb", "1", "--max-attachments", "3").start()
    try:
        api = WES(srv.url)
        big = api.submit(ONE, {}, url="one.wdl", files=[("data.bin", b"x" * (3 << 20))], expect=413)
        assert "upload limit" in big.json()["msg"]
        many = api.submit(ONE, {}, url="one.wdl", files=[(f"f{i}.txt", b"x") for i in range(5)], expect=413)
        assert "3" in many.json()["msg"]
        # a chunked body without Content-Length is counted as it streams
        def chunks():
            yield b"--b\r\nContent-Disposition: form-data; name=\"workflow_attachment\"; filename=\"big.bin\"\r\n\r\n"
            for _ in range(40):
                yield b"y" * (64 << 10)
            yield b"\r\n--b--\r\n"
        streamed = api.http.post(srv.url + "/runs", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        api.check("POST", "/runs", streamed)
        assert streamed.status_code == 413
        ok = api.submit(ONE, {}, url="one.wdl", files=[("data.bin", b"x" * 1000)])
        assert api.wait(ok.json()["run_id"]) == "COMPLETE"
        assert len([p for p in srv.root.iterdir() if p.is_dir()]) == 1, "refused uploads left nothing behind"
    finally:
        srv.stop()


def test_tokens_isolate_users(wes_base: Path):
    tokens = wes_base / "tokens.txt"
    alice_token, bob_token = "a" * 20 + "alice", "b" * 20 + "bob"
    tokens.write_text(f"# token user\n{alice_token} alice\n{bob_token} bob\n")
    srv = Server(wes_base / "authroot", server_env(wes_base), "--backend", "local", "--token-file", str(tokens)).start()
    try:
        alice, bob, nobody, forged = WES(srv.url, alice_token), WES(srv.url, bob_token), WES(srv.url), WES(srv.url, "c" * 25)
        assert nobody.call("GET", "/service-info").json()["supported_wes_versions"] == ["1.1.0"]  # public
        for client in (nobody, forged):
            response = client.call("GET", "/runs", expect=401)
            assert response.headers["www-authenticate"].startswith("Bearer")
            client.submit(ONE, {}, url="one.wdl", expect=401)
        run_id = alice.submit(ONE, {"seconds": 600}, url="one.wdl").json()["run_id"]
        alice.wait(run_id, ("RUNNING",), timeout=120)
        assert [r["run_id"] for r in alice.call("GET", "/runs").json()["runs"]] == [run_id]
        assert bob.call("GET", "/runs").json()["runs"] == []
        for template in ("/runs/{run_id}", "/runs/{run_id}/status", "/runs/{run_id}/tasks"):
            bob.call("GET", template, run_id=run_id, expect=403)
            nobody.call("GET", template, run_id=run_id, expect=401)
        bob.call("POST", "/runs/{run_id}/cancel", run_id=run_id, expect=403)
        for suffix in ("/stdout", "/stderr", "/outputs/outputs.json"):
            assert bob.http.get(f"{srv.url}/runs/{run_id}{suffix}").status_code == 403
        assert alice.state(run_id) == "RUNNING", "bob's cancel did nothing"
        assert bob.call("GET", "/service-info").json()["system_state_counts"]["RUNNING"] == 0
        assert alice.call("GET", "/service-info").json()["system_state_counts"]["RUNNING"] == 1
        alice.call("POST", "/runs/{run_id}/cancel", run_id=run_id)
        assert alice.wait(run_id, timeout=120) == "CANCELED"
        # each user has their own call cache: bob's identical run reuses nothing of alice's
        def cached_run(user: WES) -> bool:
            same = user.submit(ONE, {"word": "same"}, url="one.wdl", engine={"backend": "local", "cache": "true"}).json()["run_id"]
            assert user.wait(same) == "COMPLETE"
            return "cached=true" in user.run_log(same)["task_logs"][0]["system_logs"]

        assert [cached_run(alice), cached_run(alice), cached_run(bob)] == [False, True, False]
    finally:
        srv.stop()


def test_fifty_concurrent_submissions_all_run(api: WES):
    def submit(i: int) -> str:
        client = WES(api.url)
        return client.submit(ONE, {"word": f"c{i}"}, url="one.wdl", tags={"batch": "fifty", "i": str(i)}).json()["run_id"]

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        ids = list(pool.map(submit, range(50)))
    assert len(set(ids)) == 50
    listed = []
    token = ""
    while True:
        page = api.call("GET", "/runs", params={"page_size": 100, **({"page_token": token} if token else {})}).json()
        listed += [r["run_id"] for r in page["runs"] if r["tags"].get("batch") == "fifty"]
        token = page["next_page_token"]
        if not token:
            break
    assert sorted(listed) == sorted(ids), "every submission is listed"
    for i, run_id in enumerate(ids):
        assert api.wait(run_id, timeout=900) == "COMPLETE"
        assert api.run_log(run_id)["outputs"] == {"one.said": f"c{i}"}


def test_a_restarted_server_loses_no_run(wes_base: Path):
    root = wes_base / "restart"
    srv = Server(root, server_env(wes_base), "--backend", "local").start()
    api = WES(srv.url)
    done = api.submit(ONE, {"word": "before"}, url="one.wdl").json()["run_id"]
    assert api.wait(done) == "COMPLETE"
    going = api.submit(ONE, {"word": "during", "seconds": 6}, url="one.wdl").json()["run_id"]
    api.wait(going, ("RUNNING",), timeout=120)
    srv.proc.send_signal(signal.SIGKILL)  # the hardest stop: no shutdown handler runs
    srv.proc.wait()
    # a submission the killed server had recorded but not yet started
    orphan = "e" * 32
    (root / orphan).mkdir()
    (root / orphan / "wes.json").write_text(json.dumps({"run_id": orphan, "owner": "", "created": time.time(),
                                                   "request": {"workflow_type": "WDL", "workflow_type_version": "1.1", "workflow_url": "one.wdl", "tags": {}}}))
    again = Server(root, server_env(wes_base), "--backend", "local").start()
    try:
        api = WES(again.url)
        listed = {r["run_id"]: r["state"] for r in api.call("GET", "/runs").json()["runs"]}
        assert listed[done] == "COMPLETE" and listed[going] in ("RUNNING", "COMPLETE")
        assert listed[orphan] == "SYSTEM_ERROR", "a run that never started is not left QUEUED forever"
        assert "submit it again" in api.run_log(orphan)["run_log"]["system_logs"][0]
        assert api.wait(going) == "COMPLETE"
        assert api.run_log(going)["outputs"] == {"one.said": "during"}
        assert api.run_log(done)["outputs"] == {"one.said": "before"}
    finally:
        again.stop()


def test_a_run_on_docker_run(api: WES, server: Server, docker):
    run_id = api.submit(SCATTER_MAIN, {"names": ["d"]}, files=[("lib/greet.wdl", LIB.encode())], engine={"backend": "docker_run", "cache": "false"}).json()["run_id"]
    assert api.wait(run_id) == "COMPLETE"
    log = api.run_log(run_id)
    assert [api.http.get(u).text for u in log["outputs"]["hello.files"]] == ["hi d\n"]
    assert log["request"]["workflow_engine_parameters"] == {"backend": "docker_run", "cache": "false"}
    launch = json.loads((server.root / run_id / "run" / ".miniwdl_jupyter" / "launch.json").read_text())
    assert launch["backend"] == "docker_run"
    # the machinery failing (an image that is neither here nor pullable) is a SYSTEM_ERROR
    missing = ONE.replace(TEST_IMAGE, "miniwdl-jupyter-no-such-image:0.0")
    run_id = api.submit(missing, {}, url="one.wdl", engine={"backend": "docker_run", "cache": "false"}).json()["run_id"]
    assert api.wait(run_id) == "SYSTEM_ERROR"
    log = api.run_log(run_id)
    assert any(line.startswith("BackendError") and "miniwdl-jupyter-no-such-image" in line for line in log["run_log"]["system_logs"])
    assert "state=SYSTEM_ERROR" in log["task_logs"][0]["system_logs"]


def test_every_response_is_validated_and_a_wrong_one_is_refused(api: WES):
    """The validation behind every call in this module is live: each real response counts, and a
    response that differs from the 1.1.0 description fails the call."""
    before = WES.validated
    run_id = api.submit(ONE, {"one.word": "v"}).json()["run_id"]
    api.wait(run_id)
    api.call("GET", "/runs")
    api.call("GET", "/runs/{run_id}", run_id="no-such-run", expect=404)
    assert WES.validated >= before + 4
    real = api.call("GET", "/runs/{run_id}/status", run_id=run_id)
    wrong = httpx.Response(200, json={"run_id": run_id, "state": "FINISHED_NICELY"}, request=real.request)
    wrong.elapsed = real.elapsed
    with pytest.raises(Exception, match="FINISHED_NICELY"):
        api.check("GET", "/runs/{run_id}/status", wrong)
    bad_error = httpx.Response(404, json={"message": "no"}, request=real.request)
    bad_error.elapsed = real.elapsed
    with pytest.raises(Exception):
        api.check("GET", "/runs/{run_id}/status", bad_error)


FUZZ_SCHEMA = _schemathesis_schema()


@FUZZ_SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_generated_requests(case, server: Server):
    """Requests generated from the 1.1.0 description (valid and invalid), with schemathesis's
    checks: no server error, responses and status codes as described, invalid input refused,
    405 with Allow for undeclared methods..."""
    excluded = [
        # The description's multipart form marks no field required, so an empty run request is
        # "schema-valid"; it must still be refused (400 naming workflow_type).
        positive_data_acceptance,
    ]
    if case.operation.path.startswith("/runs/{run_id}/tasks"):
        # ListTasks/GetTask document no 400; a malformed page_size there is a 400 all the same.
        excluded.append(status_code_conformance)
    case.call_and_validate(base_url=server.url, excluded_checks=excluded)


def test_a_cached_rerun_serves_its_outputs(api: WES):
    ids = []
    for _ in range(2):
        run_id = api.submit(SCATTER_MAIN, {"names": ["cache-me"]}, files=[("lib/greet.wdl", LIB.encode())], engine={"backend": "local", "cache": "true"}).json()["run_id"]
        assert api.wait(run_id) == "COMPLETE"
        ids.append(run_id)
    second = api.run_log(ids[1])
    assert any("cached=true" in t["system_logs"] for t in second["task_logs"]), "the second run reused the first's task"
    assert [api.http.get(u).text for u in second["outputs"]["hello.files"]] == ["hi cache-me\n"]
    # The cache hit ran nothing: its task log is the original call's, and says where that is.
    (original,), (cached,) = api.run_log(ids[0])["task_logs"], second["task_logs"]
    assert cached["exit_code"] == original["exit_code"] == 0
    assert api.http.get(cached["stderr"]).text == api.http.get(original["stderr"]).text == "said cache-me\n"
    assert cached["cmd"] == original["cmd"]
    (origin,) = [line for line in cached["system_logs"] if line.startswith("cached_from=")]
    assert ids[0] in origin and "call-greet-0" in origin, origin  # the first run's call directory


def test_a_backend_explanation_reaches_the_task_log(wes_base: Path, docker, workdir: Path):
    env = {**server_env(wes_base), "MINIWDL__TASK_RUNTIME__MEMORY_LIMIT_MULTIPLIER": "1"}  # docker_run --memory
    srv = Server(wes_base / "memroot", env, "--backend", "docker_run", "--backends", "docker_run").start()
    try:
        api = WES(srv.url)
        run_id = api.submit(OUT_OF_MEMORY.replace("IMAGE", docker), {}, url="hungry.wdl", engine={"cache": "false"}).json()["run_id"]
        assert api.wait(run_id) == "EXECUTOR_ERROR"
        log = api.run_log(run_id)
        (task,) = log["task_logs"]
        assert task["exit_code"] == 137
        explanation = "task ran out of memory: the kernel killed it at its memory limit of 64 MB"
        assert any(line.startswith("reason=" + explanation) for line in task["system_logs"]), task["system_logs"]
        assert any(explanation in line for line in log["run_log"]["system_logs"]), log["run_log"]["system_logs"]
        # and a notebook following such a run on the server raises a TaskFailed that says so
        with pytest.raises(TaskFailed, match=explanation):
            mj.run(OUT_OF_MEMORY.replace("IMAGE", docker), {}, wes=srv.url)
    finally:
        srv.stop()


def test_serve_refuses_bad_options_in_one_line(tmp_path: Path):
    import subprocess
    import sys

    short = tmp_path / "tokens.txt"
    short.write_text("abc alice\n")
    for args, words in (
        (["--token-file", str(short)], "token too short"),
        (["--token-file", str(tmp_path / "missing.txt")], "cannot read the token file"),
        (["--backends", "local,no_such_backend"], "unknown backend 'no_such_backend'"),
    ):
        proc = subprocess.run([sys.executable, "-m", "miniwdl_jupyter.cli", "wes", "serve", "--port", "0", "--root", str(tmp_path / "r"), *args],
                              capture_output=True, text=True, timeout=60, env=server_env(tmp_path))
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
