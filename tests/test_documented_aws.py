"""What docs/aws.md says about settings and `miniwdl-jupyter submit`, checked on what reaches AWS
Batch: real runs and submissions against moto's server over HTTP, every request seen by a loopback
proxy (tests/aws_fixtures.py), the job definitions and jobs read back from the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter.errors import BackendError

from aws_fixtures import DUMMY_CREDENTIALS, MOTO, REGION, AwsProxy, boto_client, make_queue
from test_aws_batch import efs, moto, use_batch  # noqa: F401 - fixtures

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NO_MEMORY_TASK = """version 1.1
task plain {
  command <<< echo "E=${E:-unset}" >>>
  output { String said = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""
SCATTER = """version 1.1
workflow many {
  scatter (i in range(5)) { call one { input: i = i } }
}
task one {
  input { Int i }
  command <<< echo ~{i} >>>
  runtime { docker: "IMAGE" }
}
"""


def job_definition(arn: str) -> dict:
    [found] = boto_client("batch").describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    return found


def resources(properties: dict) -> dict:
    return {r["type"]: r["value"] for r in properties.get("resourceRequirements", [])}


def test_task_settings_reach_the_job_definition_and_the_job_and_definitions_are_reused(moto, workdir, efs, monkeypatch):
    """execution_role_arn, job_role_arn, default_memory_mb, timeout and container_properties; then
    a second run of the same shape registers no job definition."""
    settings = dict(
        MINIWDL__AWS__EXECUTION_ROLE_ARN="arn:aws:iam::123456789012:role/exec-role",
        MINIWDL__AWS__JOB_ROLE_ARN="arn:aws:iam::123456789012:role/task-role",
        MINIWDL__AWS__DEFAULT_MEMORY_MB="300",
        MINIWDL__AWS__TIMEOUT="120",
        MINIWDL__AWS__CONTAINER_PROPERTIES='{"environment": [{"name": "E", "value": "from-properties"}]}',
    )
    main = workdir / "plain.wdl"
    main.write_text(NO_MEMORY_TASK.replace("IMAGE", moto))
    with AwsProxy() as proxy:
        use_batch(monkeypatch, efs, endpoint=proxy.endpoint, **settings)
        run = mj.run(str(main), backend="aws_batch", cache=False, wait=True)
        assert run.outputs == {"said": "E=from-properties"}  # container_properties reached the container
        [submitted] = proxy.bodies["submitjob"]
        assert submitted["timeout"] == {"attemptDurationSeconds": 120}
        [registered] = proxy.bodies["registerjobdefinition"]
        properties = registered["containerProperties"]
        assert properties["executionRoleArn"] == settings["MINIWDL__AWS__EXECUTION_ROLE_ARN"]
        assert properties["jobRoleArn"] == settings["MINIWDL__AWS__JOB_ROLE_ARN"]
        assert resources(properties)["MEMORY"] == "300"  # the task gives no memory
        assert {"name": "E", "value": "from-properties"} in properties["environment"]
        [job] = boto_client("batch").describe_jobs(jobs=[run.calls[0].job["job_id"]])["jobs"]
        assert job_definition(job["jobDefinition"])["containerProperties"]["executionRoleArn"] == settings["MINIWDL__AWS__EXECUTION_ROLE_ARN"]

        # Another run, another process, the same shape: looked up, not registered again.
        proxy.reset()
        again = mj.run(str(main), backend="aws_batch", cache=False, wait=True)
        assert again.status == "succeeded"
        assert proxy.calls["registerjobdefinition"] == 0 and proxy.calls["describejobdefinitions"] >= 1
        assert proxy.bodies["submitjob"][0]["jobDefinition"] == submitted["jobDefinition"]


def test_api_retries_bounds_the_retries_of_a_throttled_call(moto, workdir, efs, monkeypatch):
    with AwsProxy(throttle={"submitjob"}, throttle_every=1) as proxy:
        use_batch(monkeypatch, efs, endpoint=proxy.endpoint, MINIWDL__AWS__API_RETRIES="2")
        run = mj.run(NO_MEMORY_TASK.replace("IMAGE", moto), backend="aws_batch", cache=False, wait=False)
        with pytest.raises(BackendError, match=r"lower \[aws\] submit_rate or raise \[aws\] api_retries"):
            run.wait(timeout=300)
        assert proxy.calls["submitjob"] == 3, "the first try and api_retries = 2 retries"


def test_submit_rate_spaces_submissions(moto, workdir, efs, monkeypatch):
    with AwsProxy() as proxy:
        use_batch(monkeypatch, efs, endpoint=proxy.endpoint, MINIWDL__AWS__SUBMIT_RATE="2")
        run = mj.run(SCATTER.replace("IMAGE", moto), backend="aws_batch", cache=False, wait=True)
        assert run.status == "succeeded"
        stamps = proxy.stamps["submitjob"]
        assert len(stamps) == 5
        # 5 calls at 2 per second span at least 2 s (less a little for each call's own trip)
        assert stamps[-1] - stamps[0] >= 1.7, f"5 SubmitJob calls within {stamps[-1] - stamps[0]:.2f} s; submit_rate = 2 per second"


# ---- `miniwdl-jupyter submit`: what reaches the head job --------------------------------------


def submit(*args: str, env_extra: Optional[dict] = None) -> dict:
    """Run `miniwdl-jupyter submit`; returns the head job as Batch describes it, after stopping it
    (what it would run is not the point here: its definition and overrides are)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", "miniwdl_jupyter.cli", "submit", *args], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    batch = boto_client("batch")
    [job] = batch.describe_jobs(jobs=[answer["job_id"]])["jobs"]
    batch.terminate_job(jobId=answer["job_id"], reason="test done")
    job["run_dir"] = answer["run_dir"]
    return job


def overrides_env(job: dict) -> dict:
    return {e["name"]: e["value"] for e in job["container"].get("environment", [])}


@pytest.fixture
def submit_env(moto, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Credentials, and the emulator's region and endpoint in a cfg file: everything else comes
    from the flags or from MINIWDL__* variables the test sets."""
    for key in list(os.environ):
        if key.startswith("MINIWDL__"):
            monkeypatch.delenv(key)
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    cfg = workdir / "emulator.cfg"
    cfg.write_text(f"[aws]\nregion = {REGION}\nendpoint_url = http://{MOTO}\n")
    monkeypatch.setenv("MINIWDL_CFG", str(cfg))
    mount = workdir / "efs"
    mount.mkdir()
    return {"mount": mount, "workflow": make_queue()["queue"], "tasks": make_queue()["queue"], "image": moto}


def test_the_docs_submit_example_flags_reach_the_head_job(submit_env, workdir):
    """The doc's example command's flags: --workflow-queue, --task-queue, --fsap, --mount, --image,
    plus --cpu, --memory-GiB, --workflow-role, --no-env and --env."""
    e = submit_env
    job = submit(
        "--self-test", "--self-test-image", e["image"],
        "--workflow-queue", e["workflow"], "--task-queue", e["tasks"], "--fs", "fs-0123", "--fsap", "fsap-0123",
        "--mount", str(e["mount"]), "--image", e["image"], "--cpu", "2", "--memory-GiB", "3",
        "--workflow-role", "arn:aws:iam::123456789012:role/head", "--no-env", "--env", "EXTRA=yes",
        env_extra={"MINIWDL__DEBUG_ONLY__SOMETHING": "1"},
    )
    assert job["jobQueue"].endswith("/" + e["workflow"]) or job["jobQueue"] == e["workflow"]
    assert job["run_dir"].startswith(str(e["mount"] / "wdl_runs"))
    properties = job_definition(job["jobDefinition"])["containerProperties"]
    assert properties["image"] == e["image"]
    assert resources(properties) == {"VCPU": "2", "MEMORY": str(3 * 1024)}
    assert properties["jobRoleArn"] == "arn:aws:iam::123456789012:role/head"
    [volume] = properties["volumes"]
    assert volume["efsVolumeConfiguration"]["fileSystemId"] == "fs-0123"
    assert volume["efsVolumeConfiguration"]["authorizationConfig"]["accessPointId"] == "fsap-0123"
    assert properties["mountPoints"][0]["containerPath"] == str(e["mount"])
    env = overrides_env(job)
    assert env["EXTRA"] == "yes"  # --env
    assert env["MINIWDL__AWS__TASK_QUEUE"] == e["tasks"] and env["MINIWDL__AWS__FSAP"] == "fsap-0123"
    assert "MINIWDL__DEBUG_ONLY__SOMETHING" not in env  # --no-env


def test_head_job_settings_forwarding_and_the_backend_swap(submit_env, workdir):
    """[aws] head_vcpu, head_memory_mb, head_job_role_arn, head_task_concurrency and head_env from
    the configuration; MINIWDL__* forwarded; a Docker backend swapped for aws_batch; the call
    cache moved onto the shared filesystem."""
    e = submit_env
    job = submit(
        "--self-test", "--self-test-image", e["image"],
        env_extra={
            "MINIWDL__AWS__WORKFLOW_QUEUE": e["workflow"], "MINIWDL__AWS__TASK_QUEUE": e["tasks"],
            "MINIWDL__AWS__HOST_PATH": str(e["mount"]), "MINIWDL__AWS__MOUNT": str(e["mount"]),
            "MINIWDL__AWS__HEAD_IMAGE": e["image"], "MINIWDL__AWS__HEAD_VCPU": "3", "MINIWDL__AWS__HEAD_MEMORY_MB": "5000",
            "MINIWDL__AWS__HEAD_JOB_ROLE_ARN": "arn:aws:iam::123456789012:role/engine",
            "MINIWDL__AWS__HEAD_TASK_CONCURRENCY": "7", "MINIWDL__AWS__HEAD_ENV": '{"FROM_HEAD_ENV": "1"}',
            "MINIWDL__SCHEDULER__CONTAINER_BACKEND": "docker_run", "MINIWDL__CALL_CACHE__DIR": "/tmp/not-shared-cache",
            "MINIWDL__TASK_RUNTIME__DEFAULTS": '{"maxRetries": 1}',
        },
    )
    properties = job_definition(job["jobDefinition"])["containerProperties"]
    assert resources(properties) == {"VCPU": "3", "MEMORY": "5000"}
    assert properties["jobRoleArn"] == "arn:aws:iam::123456789012:role/engine"
    env = overrides_env(job)
    assert env["MINIWDL__TASK_RUNTIME__DEFAULTS"] == '{"maxRetries": 1}'  # forwarded as set
    assert env["FROM_HEAD_ENV"] == "1"
    assert env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] == "aws_batch"
    assert env["MINIWDL__SCHEDULER__TASK_CONCURRENCY"] == "7"
    assert env["MINIWDL__CALL_CACHE__DIR"] == str(e["mount"] / ".miniwdl_call_cache")


def test_workflow_queue_tags_fill_what_is_not_configured(submit_env, workdir):
    e = submit_env
    batch = boto_client("batch")
    arn = batch.describe_job_queues(jobQueues=[e["workflow"]])["jobQueues"][0]["jobQueueArn"]
    batch.tag_resource(resourceArn=arn, tags={
        "DefaultTaskQueue": e["tasks"], "DefaultFsap": "fsap-tagged",
        "WorkflowEngineRoleArn": "arn:aws:iam::123456789012:role/tagged",
    })
    job = submit("--self-test", "--self-test-image", e["image"], "--workflow-queue", e["workflow"], "--fs", "fs-0123",
                 "--mount", str(e["mount"]), "--image", e["image"])
    properties = job_definition(job["jobDefinition"])["containerProperties"]
    assert properties["jobRoleArn"] == "arn:aws:iam::123456789012:role/tagged"
    assert properties["volumes"][0]["efsVolumeConfiguration"]["authorizationConfig"]["accessPointId"] == "fsap-tagged"
    assert overrides_env(job)["MINIWDL__AWS__TASK_QUEUE"] == e["tasks"]


def test_more_submit_flags_reach_the_head_job(submit_env, workdir):
    """--host-path (instead of EFS), --dir, --task-queue-fallback, --region."""
    e = submit_env
    job = submit(
        "--self-test", "--self-test-image", e["image"], "--workflow-queue", e["workflow"], "--task-queue", e["tasks"],
        "--task-queue-fallback", "fallback-q", "--host-path", str(e["mount"]), "--mount", str(e["mount"]),
        "--dir", f"{e['mount']}/exactly-here/.", "--region", REGION, "--image", e["image"],
    )
    assert job["run_dir"] == str(e["mount"] / "exactly-here")
    properties = job_definition(job["jobDefinition"])["containerProperties"]
    assert properties["volumes"][0]["host"]["sourcePath"] == str(e["mount"])
    env = overrides_env(job)
    assert env["MINIWDL__AWS__TASK_QUEUE_FALLBACK"] == "fallback-q" and env["MINIWDL__AWS__REGION"] == REGION


CAT_INPUT = """version 1.1
task show {
  input { File data }
  command <<< cat "~{data}" >>>
  output { String content = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


def test_inputs_off_the_shared_filesystem_are_copied_onto_it(moto, workdir, efs, monkeypatch):
    use_batch(monkeypatch, efs)
    local = workdir / "local-data.txt"  # workdir is not the shared filesystem (efs is under it)
    local.write_text("from this machine\n")
    run = mj.run(CAT_INPUT.replace("IMAGE", moto), {"data": str(local)}, backend="aws_batch", cache=False, wait=True)
    assert run.outputs == {"content": "from this machine"}
    copies = [p for p in efs.rglob("local-data.txt") if not p.is_symlink()]
    assert copies and all(p.read_text() == "from this machine\n" for p in copies)


def test_an_image_that_cannot_be_pulled_is_a_backend_error(moto, workdir, efs, monkeypatch):
    """(moto gives no reason for the failed pull, where Batch says CannotPullContainerError: the
    message then says what to check.)"""
    use_batch(monkeypatch, efs)
    run = mj.run(NO_MEMORY_TASK.replace("IMAGE", "127.0.0.1:5055/miniwdl-jupyter-no-such-image:1"), backend="aws_batch", cache=False, wait=False)
    with pytest.raises(BackendError) as raised:
        run.wait(timeout=300)
    message = str(raised.value)
    assert "FAILED without running the task" in message and "check the image exists and is pullable" in message, message
