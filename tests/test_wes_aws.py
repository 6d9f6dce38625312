"""`miniwdl-jupyter wes serve --submit aws`: each WES run's miniwdl process is an AWS Batch head job
(the Amazon Genomics CLI's architecture: the server holds no workflow process), against the AWS
emulator; state, logs and cancel go through the head job, and the server may restart meanwhile."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from aws_fixtures import DUMMY_CREDENTIALS, batch_env, boto_client, build_head_image, make_queue, moto_answers
from conftest import TEST_IMAGE, require
from wes_fixtures import WES, Server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HELLO = """version 1.1
workflow hello {
  input { String who }
  call greet { input: who = who }
  output { String said = greet.said }
}
task greet {
  input { String who }
  command <<< echo "hi ~{who}" >>>
  output { String said = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""
SLEEPY = """version 1.1
task nap {
  command <<< sleep 600 >>>
  runtime { docker: "IMAGE" }
}
"""


@pytest.fixture(scope="module")
def head_image(docker, tmp_path_factory) -> str:
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    return build_head_image(docker, tmp_path_factory.mktemp("head"))


@pytest.fixture
def aws_server(head_image, tmp_path: Path):
    efs = tmp_path / "efs"
    efs.mkdir()
    tasks, workflow = make_queue(), make_queue()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MINIWDL")}
    env.update(batch_env(efs, tasks["queue"]))
    env.update(
        MINIWDL_CFG=str(tmp_path / "no-such.cfg"),
        MINIWDL__JUPYTER__ROOT=str(efs / "cells"),
        MINIWDL__CALL_CACHE__DIR=str(efs / "call_cache"),
        MINIWDL__AWS__WORKFLOW_QUEUE=workflow["queue"],
        MINIWDL__AWS__HEAD_IMAGE=head_image,
        MINIWDL__AWS__HEAD_ENV=json.dumps(DUMMY_CREDENTIALS),  # on AWS the head job's role
    )
    server = Server(efs / "wes_runs", env, "--submit", "aws").start()
    yield server, workflow["queue"], tasks["queue"]
    server.stop()


def head_jobs(queue: str) -> list:
    batch = boto_client("batch")
    return [j for s in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
            for j in batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"]]


def test_a_wes_run_is_a_head_job_listed_after_a_restart_and_cancelled_through_it(aws_server):
    server, workflow_queue, task_queue = aws_server
    api = WES(server.url)
    run_id = api.submit(HELLO.replace("IMAGE", TEST_IMAGE), {"hello.who": "batch"}, engine={"backend": "aws_batch"}).json()["run_id"]
    assert api.wait(run_id, timeout=600) == "COMPLETE", api.run_log(run_id)
    log = api.run_log(run_id)
    assert log["outputs"]["hello.said"].strip() == "hi batch"
    # the miniwdl process was a head job on the workflow queue, not a process of the server
    assert len(head_jobs(workflow_queue)) == 1
    assert [t["exit_code"] for t in log["task_logs"] if "greet" in t["name"]] == [0], log["task_logs"]

    # a new server process over the same root lists the run with its state and outputs
    server.stop()
    server.start()
    api = WES(server.url)
    listed = {r["run_id"]: r["state"] for r in api.call("GET", "/runs").json()["runs"]}
    assert listed[run_id] == "COMPLETE"
    assert api.run_log(run_id)["outputs"]["hello.said"].strip() == "hi batch"

    # a long run, cancelled: its head job is terminated
    sleepy = api.submit(SLEEPY.replace("IMAGE", TEST_IMAGE), {}, engine={"backend": "aws_batch"}).json()["run_id"]
    api.wait(sleepy, states=("RUNNING",), timeout=300)
    api.call("POST", "/runs/{run_id}/cancel", run_id=sleepy)
    assert api.wait(sleepy, timeout=300) in ("CANCELED",)
    batch = boto_client("batch")
    deadline = time.monotonic() + 120
    while True:
        states = [batch.describe_jobs(jobs=[j["jobId"]])["jobs"][0]["status"] for j in head_jobs(workflow_queue)]
        if states.count("SUCCEEDED") == 1 and all(s in ("SUCCEEDED", "FAILED") for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(1)
    # and its task job with it
    deadline = time.monotonic() + 120
    while [j for s in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING") for j in batch.list_jobs(jobQueue=task_queue, jobStatus=s)["jobSummaryList"]]:
        assert time.monotonic() < deadline, "the task job outlived its cancelled run"
        time.sleep(1)
