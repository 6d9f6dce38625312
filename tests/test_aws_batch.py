"""The aws_batch backend against moto's server over HTTP: each task is a Batch job that moto runs
as a container on the local Docker daemon, with a host directory mounted at the same path in every
job standing in for EFS. See tests/aws_fixtures.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import protocol
from miniwdl_jupyter.aws.jobs import classify_stopped
from miniwdl_jupyter.aws.settings import BatchSettings, call_keys
from miniwdl_jupyter.errors import TaskFailed

from aws_fixtures import AwsProxy, batch_env, boto_client, make_queue, moto_answers, queue_jobs
from conftest import require, wdl

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The command's `>>>` is kept off the start of a line: IPython 9 strips a leading `>>> ` from cell
# lines as a doctest prompt before the cell magic sees them (tests/data/scatter.wdl trips on it).
SCATTER_CELL = """version 1.1
workflow hello {
  input { Array[String] names  String greeting = "hello" }
  scatter (n in names) { call greet { input: name = n, greeting = greeting } }
  output { Array[File] files = greet.out }
}
task greet {
  input { String name  String greeting }
  command <<< echo "~{greeting} ~{name}" > "~{name}.txt" >>>
  output { File out = "~{name}.txt" }
  runtime { docker: "IMAGE" cpu: 1 memory: "256 MiB" }
}
"""


@pytest.fixture
def moto(docker):
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    return docker


@pytest.fixture
def efs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared filesystem: runs live on it, every job mounts it at the same path."""
    path = workdir / "efs"
    path.mkdir()
    monkeypatch.setenv("MINIWDL__JUPYTER__ROOT", str(path / "wdl_runs"))
    return path


def use_batch(monkeypatch: pytest.MonkeyPatch, efs: Path, endpoint=None, **extra: str) -> dict:
    queue = make_queue()
    for key, value in batch_env(efs, queue["queue"], endpoint, **extra).items():
        monkeypatch.setenv(key, value)
    return queue


def test_scatter_from_a_cell_outputs_read_back_from_efs(moto, shell, efs, monkeypatch, capsys):
    queue = use_batch(monkeypatch, efs)
    shell.user_ns["samples"] = ["a", "b", "c"]
    result = shell.run_cell('%%wdl --backend aws_batch -o run names=$samples greeting="hi" --progress text\n' + SCATTER_CELL.replace("IMAGE", moto))
    assert result.success, result.error_in_exec
    run = shell.user_ns["run"]
    assert run.status == "succeeded"
    files = run.outputs["files"]
    assert [p.read_text() for p in files] == ["hi a\n", "hi b\n", "hi c\n"]
    assert all(str(p).startswith(str(efs)) for p in files)
    # each call ran as its own Batch job, all of one job definition (one shape)
    batch = boto_client("batch")
    jobs = batch.list_jobs(jobQueue=queue["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(jobs) == 3
    assert len({j["jobDefinition"] for j in batch.describe_jobs(jobs=[j["jobId"] for j in jobs])["jobs"]}) == 1
    # the job ids and log streams are in the task logs the progress view reads
    logs = "".join(p.read_text() for p in run.run_dir.glob("call-greet-*/task.log"))
    assert "aws_batch job submitted" in logs and protocol.TASK_STARTED in logs and "log_stream" in logs
    assert {j["jobId"] for j in jobs} <= {line.split('job_id: "')[1].split('"')[0] for line in logs.splitlines() if 'job_id: "' in line}
    # and in the log tail the progress view shows: job id, state, CloudWatch log stream
    tail = "\n".join(run.poll().log_tail)
    assert protocol.TASK_JOB in tail and "state=SUCCEEDED" in tail and "log_stream=" in tail and jobs[0]["jobId"] in tail
    # per call, as the views show it: its Batch job id, state and log stream
    assert {c.job["job_id"] for c in run.calls} == {j["jobId"] for j in jobs}
    assert all(c.job["state"] == "SUCCEEDED" and c.job.get("log_stream") is not None for c in run.calls)
    # each job's sampler read its container's cgroup into the call directory (docs/report.md)
    usage = [json.loads((c.dir / "usage.json").read_text()) for c in run.calls]
    assert all(u["source"] == "cgroup" and u["peak_memory_bytes"] > 0 and "cpu_seconds" in u for u in usage), usage


def test_failing_task_is_task_failed_with_exit_code_and_stderr(moto, workdir, efs, monkeypatch):
    use_batch(monkeypatch, efs)
    run = mj.run(wdl("exit3.wdl", moto), backend="aws_batch", wait=False)
    with pytest.raises(TaskFailed) as failed:
        run.wait(timeout=300)
    assert failed.value.exit_code == 3
    assert "something went wrong" in failed.value.stderr_tail


def test_cancel_terminates_every_job(moto, workdir, efs, monkeypatch):
    queue = use_batch(monkeypatch, efs)
    run = mj.run(wdl("sleep_scatter.wdl", moto), {"n": 3, "seconds": 600}, backend="aws_batch", wait=False)
    deadline = time.monotonic() + 180
    while len(queue_jobs(queue["queue"], ("RUNNING",))["RUNNING"]) < 3:
        assert time.monotonic() < deadline, "the 3 jobs did not all start"
        assert run.status in ("queued", "running"), run.status
        time.sleep(1)
    run.cancel()
    assert run.status == "cancelled"
    deadline = time.monotonic() + 60
    while any(queue_jobs(queue["queue"]).values()):
        assert time.monotonic() < deadline, f"jobs left: {queue_jobs(queue['queue'])}"
        time.sleep(1)
    batch = boto_client("batch")
    stopped = batch.list_jobs(jobQueue=queue["queue"], jobStatus="FAILED")["jobSummaryList"]
    assert len(stopped) == 3
    # by TerminateJob from the cancelled tasks (not by anything local)
    assert {j.get("statusReason") for j in batch.describe_jobs(jobs=[j["jobId"] for j in stopped])["jobs"]} == {"miniwdl task cancelled"}


def test_throttled_submit_and_describe_are_retried(moto, workdir, efs, monkeypatch):
    with AwsProxy(throttle={"submitjob", "describejobs"}, throttle_every=2) as proxy:
        use_batch(monkeypatch, efs, endpoint=proxy.endpoint)
        run = mj.run(wdl("scatter.wdl", moto), {"names": ["x", "y", "z"]}, backend="aws_batch", wait=False)
        run.wait(timeout=300)
        assert run.status == "succeeded"
        assert [p.read_text() for p in run.outputs["files"]] == ["hello x\n", "hello y\n", "hello z\n"]
        # half of each was answered 429, and every job was still submitted exactly once
        assert proxy.throttled["submitjob"] >= 2 and proxy.throttled["describejobs"] >= 1
        assert proxy.calls["submitjob"] - proxy.throttled["submitjob"] == 3


ENV_SEEN = """version 1.1
workflow envs {
  call greet
  call other
  output { String greet_saw = greet.saw  String other_saw = other.saw }
}
task greet {
  command <<< echo "X=${X:-unset}" >>>
  output { String saw = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
task other {
  command <<< echo "X=${X:-unset}" >>>
  output { String saw = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


def test_per_call_overrides_by_call_name(moto, workdir, efs, monkeypatch):
    """`greet` gets the override's queue and environment variable; `other` gets neither."""
    other = make_queue()
    default = use_batch(
        monkeypatch,
        efs,
        MINIWDL__AWS__CALL_OVERRIDES='{"greet": {"queue": "%s", "container": {"environment": [{"name": "X", "value": "1"}]}}}' % other["queue"],
    )
    main = workdir / "envs.wdl"
    main.write_text(ENV_SEEN.replace("IMAGE", moto))
    run = mj.run(str(main), backend="aws_batch", wait=True)
    assert run.status == "succeeded"
    assert run.outputs == {"greet_saw": "X=1", "other_saw": "X=unset"}
    batch = boto_client("batch")
    [on_other] = batch.list_jobs(jobQueue=other["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    [on_default] = batch.list_jobs(jobQueue=default["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert "greet" in on_other["jobName"] and "other" in on_default["jobName"]


# ---- how DescribeJobs answers are read (the JSON shapes AWS documents; moto cannot produce a
# ---- host termination or report exitCode in DescribeJobs, see docs/aws.md)


def test_classify_stopped_jobs():
    spot = {
        "status": "FAILED",
        "statusReason": "Host EC2 (instance i-0abc) terminated.",
        "attempts": [{"container": {"exitCode": None}, "statusReason": "Host EC2 (instance i-0abc) terminated."}],
    }
    assert classify_stopped(spot)[0] == "interrupted"
    assert classify_stopped({"status": "FAILED", "container": {"exitCode": 3}, "statusReason": "Essential container in task exited"})[:2] == ("exit", 3)
    assert classify_stopped({"status": "SUCCEEDED", "container": {"exitCode": 0}})[:2] == ("succeeded", 0)
    outcome, code, reason = classify_stopped(
        {"status": "FAILED", "attempts": [{"container": {"reason": "CannotPullContainerError: no such image"}}]}
    )
    assert (outcome, code) == ("failed", None) and "CannotPullContainerError" in reason


def test_call_override_keys():
    assert set(call_keys("call-greet-2")) == {"call-greet-2", "greet-2", "greet"}
    assert set(call_keys("call-greet-0-a")) == {"call-greet-0-a", "greet-0-a", "greet-0", "greet"}


def test_missing_settings_say_what_to_set(workdir, monkeypatch):
    from miniwdl_jupyter import config
    from miniwdl_jupyter.errors import BackendError

    with pytest.raises(BackendError, match=r"\[aws\] task_queue"):
        BatchSettings(config.load()).check()
    monkeypatch.setenv("MINIWDL__AWS__TASK_QUEUE", "q")
    with pytest.raises(BackendError, match=r"\[aws\] fs"):
        BatchSettings(config.load()).check()


def test_unknown_queue_is_a_backend_error_naming_it(moto, workdir, efs, monkeypatch):
    from miniwdl_jupyter.errors import BackendError

    use_batch(monkeypatch, efs)
    monkeypatch.setenv("MINIWDL__AWS__TASK_QUEUE", "no-such-queue")
    run = mj.run(wdl("exit3.wdl", moto), backend="aws_batch", wait=False)
    with pytest.raises(BackendError, match="no-such-queue.*not found.*task_queue"):
        run.wait(timeout=300)


def test_stuck_runnable_report_names_the_compute_environments(moto, workdir, efs, monkeypatch):
    from miniwdl_jupyter import config
    from miniwdl_jupyter.aws.jobs import queue_report

    queue = use_batch(monkeypatch, efs)
    report = queue_report(config.load(), queue["queue"])
    assert report == [
        {
            "name": queue["compute_environment"],
            "state": "ENABLED",
            "status": "VALID",
            "statusReason": "Compute environment is available",
            "desiredvCpus": None,
            "maxvCpus": None,
            "instanceTypes": None,
        }
    ]


def test_resources_map_to_resource_requirements(workdir, monkeypatch):
    """cpu, memory and GPUs -> the job definition's resourceRequirements; EFS through the access
    point; per-call container overrides. (No GPUs here: checked on what would be registered.)"""
    from miniwdl_jupyter import config
    from miniwdl_jupyter.aws.backend import BatchContainer

    monkeypatch.setenv("MINIWDL__AWS__FS", "fs-0abc")
    monkeypatch.setenv("MINIWDL__AWS__FSAP", "fsap-0def")
    monkeypatch.setenv("MINIWDL__AWS__JOB_ROLE_ARN", "arn:aws:iam::1:role/task")
    cfg = config.load()
    task = BatchContainer(cfg, "call-align-3", str(workdir / "call-align-3"))
    task.runtime_values = {"docker": "img:1", "cpu": 4, "memory_reservation": 3 * 1024**3 + 1, "gpu": True, "gpu_count": 2}
    props = task.container_properties({"container": {"linuxParameters": {"sharedMemorySize": 512}}})
    assert props["image"] == "img:1"
    assert props["resourceRequirements"] == [
        {"type": "VCPU", "value": "4"},
        {"type": "MEMORY", "value": "3073"},
        {"type": "GPU", "value": "2"},
    ]
    assert props["volumes"] == [
        {"name": "shared", "efsVolumeConfiguration": {"fileSystemId": "fs-0abc", "transitEncryption": "ENABLED", "authorizationConfig": {"accessPointId": "fsap-0def", "iam": "DISABLED"}}}
    ]
    assert props["mountPoints"] == [{"sourceVolume": "shared", "containerPath": "/mnt/efs", "readOnly": False}]
    assert props["jobRoleArn"] == "arn:aws:iam::1:role/task" and props["linuxParameters"] == {"sharedMemorySize": 512}
    task.runtime_values = {"docker": "img:1"}
    assert task.container_properties({})["resourceRequirements"] == [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}]


def test_jobs_of_a_killed_miniwdl_process_are_terminated(moto, workdir, efs, monkeypatch):
    import os
    import signal

    from miniwdl_jupyter import launch_record
    from miniwdl_jupyter.errors import RunFailed

    queue = use_batch(monkeypatch, efs)
    run = mj.run(wdl("sleep_scatter.wdl", moto), {"n": 2, "seconds": 600}, backend="aws_batch", wait=False)
    deadline = time.monotonic() + 180
    while len(queue_jobs(queue["queue"], ("RUNNING",))["RUNNING"]) < 2:
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(1)
    os.killpg(int(launch_record.read(run.run_dir)["pid"]), signal.SIGKILL)  # no chance to clean up
    with pytest.raises(RunFailed):
        run.wait(timeout=120)  # the runs layer sees the process gone and stops what it left
    deadline = time.monotonic() + 60
    while any(queue_jobs(queue["queue"]).values()):
        assert time.monotonic() < deadline, f"jobs left: {queue_jobs(queue['queue'])}"
        time.sleep(1)
    # terminated through the Batch API (on AWS nothing else could reach them)
    batch = boto_client("batch")
    ids = [j["jobId"] for j in batch.list_jobs(jobQueue=queue["queue"], jobStatus="FAILED")["jobSummaryList"]]
    assert len(ids) == 2
    assert {j.get("statusReason") for j in batch.describe_jobs(jobs=ids)["jobs"]} == {"run cancelled"}


@pytest.fixture
def slow_batch_states(moto):
    """moto's own state manager, over HTTP: each Batch job state lasts 3 s (so a job sits RUNNABLE)."""
    import json as _json
    import urllib.request

    from aws_fixtures import MOTO

    def post(path: str, body: dict) -> None:
        request = urllib.request.Request(f"http://{MOTO}/moto-api/state-manager/{path}", data=_json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    post("set-transition", {"model_name": "batch::job", "transition": {"progression": "time", "seconds": 3}})
    yield
    post("unset-transition", {"model_name": "batch::job"})


def test_job_stuck_runnable_is_reported_with_the_compute_environment(slow_batch_states, moto, workdir, efs, monkeypatch):
    from miniwdl_jupyter.errors import BackendError

    queue = use_batch(monkeypatch, efs, MINIWDL__AWS__RUNNABLE_TIMEOUT="1", MINIWDL__AWS__RUNNABLE_FAIL="true")
    run = mj.run(wdl("exit3.wdl", moto), backend="aws_batch", wait=False)
    with pytest.raises(BackendError) as raised:
        run.wait(timeout=300)
    assert "RUNNABLE" in str(raised.value) and queue["compute_environment"] in str(raised.value) and "maxvCpus" in str(raised.value)
    assert protocol.TASK_WAITING in run.log(tail=200) and "RUNNABLE on queue" in run.log(tail=200)
    assert "miniwdl-jupyter aws doctor" in str(raised.value)  # what to run to find out why


PREEMPTIBLE_WDL = """version 1.1
task spot {
  command <<< echo "made it" > out.txt >>>
  output { String said = read_string("out.txt") }
  runtime { docker: "IMAGE" preemptible: 1 }
}
"""


def test_host_termination_is_retried_on_the_fallback_queue(moto, workdir, efs, monkeypatch):
    """moto cannot lose a host: a loopback stand-in reports the first attempt's job the way Batch
    does when its EC2 host goes away (in DescribeJobs' own JSON); the retry goes to the fallback."""
    def host_lost(answer: dict) -> dict:
        for job in answer.get("jobs", []):
            if job.get("jobName", "").endswith("-1") and job.get("status") in ("SUCCEEDED", "FAILED"):
                job.update(status="FAILED", statusReason="Host EC2 (instance i-0123456789abcdef0) terminated.")
                job.setdefault("container", {}).pop("exitCode", None)
        return answer

    fallback = make_queue()
    with AwsProxy(rewrite={"describejobs": host_lost}) as proxy:
        use_batch(monkeypatch, efs, endpoint=proxy.endpoint, MINIWDL__AWS__TASK_QUEUE_FALLBACK=fallback["queue"])
        run = mj.run(PREEMPTIBLE_WDL.replace("IMAGE", moto), backend="aws_batch", wait=False)
        run.wait(timeout=300)
    assert run.outputs == {"said": "made it"}
    assert "interrupted task will be retried" in run.log(tail=400)
    retried = boto_client("batch").list_jobs(jobQueue=fallback["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["jobName"].rsplit("-", 1)[-1] for j in retried] == ["2"]


def test_usage_of_a_batch_job(moto, workdir, efs, monkeypatch):
    """The sampler inside the job: a task holding 300 MiB and one burning a core (docs/report.md)."""
    from test_usage import HOLD_AND_BURN_WDL, check_hold_and_burn

    use_batch(monkeypatch, efs)
    run = mj.run(HOLD_AND_BURN_WDL.replace("IMAGE", moto), backend="aws_batch")
    check_hold_and_burn(run.run_dir)
