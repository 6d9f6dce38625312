"""`--submit aws`: the run's miniwdl process as a Batch head job on moto's server (a container on
the local Docker daemon, built from docker/aws-head.Dockerfile with this checkout), its tasks as
Batch jobs, the run directory on a host directory standing in for EFS. Over HTTP, no mocks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import miniwdl_jupyter as mj

from aws_fixtures import DUMMY_CREDENTIALS, batch_env, boto_client, build_head_image, make_queue, moto_answers, queue_jobs
from conftest import require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MAIN_WDL = """version 1.1
import "lib/greet.wdl" as g
workflow main {
  input { Array[String] names }
  scatter (n in names) { call g.greet { input: who = n } }
  output { Array[File] files = greet.out }
}
"""
GREET_WDL = """version 1.1
task greet {
  input { String who }
  command <<< echo "hi ~{who}" > "~{who}.txt" >>>
  output { File out = "~{who}.txt" }
  runtime { docker: "IMAGE" cpu: 1 memory: "256 MiB" }
}
"""
SLEEP_WDL = """version 1.1
workflow sleepy {
  scatter (i in range(2)) { call nap }
}
task nap {
  command <<< sleep 600 >>>
  runtime { docker: "IMAGE" cpu: 1 }
}
"""


@pytest.fixture(scope="session")
def head_image(docker, tmp_path_factory) -> str:
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    return build_head_image(docker, tmp_path_factory.mktemp("head"))


@pytest.fixture
def aws_run(docker, head_image, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    efs = workdir / "efs"
    efs.mkdir()
    tasks, workflow = make_queue(), make_queue()
    bucket = f"mj-test-{uuid.uuid4().hex[:8]}"
    boto_client("s3").create_bucket(Bucket=bucket)
    env = batch_env(efs, tasks["queue"])
    env.update(
        MINIWDL__JUPYTER__ROOT=str(efs / "wdl_runs"),
        MINIWDL__AWS__WORKFLOW_QUEUE=workflow["queue"],
        MINIWDL__AWS__HEAD_IMAGE=head_image,
        # the emulator's dummy credentials; on AWS the head job uses its job role instead
        MINIWDL__AWS__HEAD_ENV=json.dumps(DUMMY_CREDENTIALS),
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"efs": efs, "tasks": tasks["queue"], "workflow": workflow["queue"], "bucket": bucket}


def test_submit_with_s3upload_returns_at_once_then_attach_from_another_process(docker, aws_run, workdir):
    (workdir / "lib").mkdir()
    (workdir / "main.wdl").write_text(MAIN_WDL)  # not on the "EFS": staged there with its import
    (workdir / "lib" / "greet.wdl").write_text(GREET_WDL.replace("IMAGE", docker))
    s3upload = f"s3://{aws_run['bucket']}/runs"
    submitted = subprocess.run(
        [sys.executable, "-m", "miniwdl_jupyter.cli", "submit", "main.wdl", "names=x", "names=y", "--s3upload", s3upload],
        capture_output=True, text=True, timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    answer = json.loads(submitted.stdout.strip().splitlines()[-1])
    run_dir = Path(answer["run_dir"])
    assert answer["job_id"] and str(run_dir).startswith(str(aws_run["efs"]))
    assert list((run_dir / ".miniwdl_jupyter" / "staged").rglob("greet.wdl"))

    # a fresh process (as after a kernel restart) follows the run from its directory
    attach = (
        "import json, sys, miniwdl_jupyter as mj\n"
        f"run = mj.attach({str(run_dir)!r})\n"
        "run.wait(timeout=600)\n"
        "print(json.dumps({'status': run.status, 'files': [p.read_text() for p in run.outputs['files']]}))\n"
    )
    attached = subprocess.run([sys.executable, "-c", attach], capture_output=True, text=True, timeout=700)
    assert attached.returncode == 0, attached.stderr[-3000:]
    assert json.loads(attached.stdout.strip().splitlines()[-1]) == {"status": "succeeded", "files": ["hi x\n", "hi y\n"]}

    # the head job uploads after miniwdl has written outputs.json: wait for it to end
    batch = boto_client("batch")
    deadline = time.monotonic() + 300
    while (head := batch.describe_jobs(jobs=[answer["job_id"]])["jobs"][0])["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, "the head job did not end"
        time.sleep(1)
    assert head["status"] == "SUCCEEDED", head_log(head)

    # outputs.json with s3 URIs in the bucket, and the files behind them
    s3 = boto_client("s3")
    document = json.loads(s3.get_object(Bucket=aws_run["bucket"], Key=f"runs/{run_dir.name}/outputs.json")["Body"].read())
    uris = document["outputs"]["main.files"]
    assert all(uri.startswith(f"{s3upload}/{run_dir.name}/") for uri in uris)
    bucket_key = uris[0][len("s3://"):].split("/", 1)
    assert s3.get_object(Bucket=bucket_key[0], Key=bucket_key[1])["Body"].read() == b"hi x\n"
    assert json.loads((run_dir / "outputs.s3.json").read_text()) == document


def head_log(job: dict) -> str:
    """The head job's CloudWatch log (its stdout: miniwdl's stderr and the upload's messages)."""
    stream = job.get("container", {}).get("logStreamName")
    if not stream:
        return f"no log stream: {job}"
    events = boto_client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    return "\n".join(e["message"] for e in events[-40:])


def test_cancel_terminates_head_and_task_jobs(docker, aws_run, workdir):
    run = mj.run(SLEEP_WDL.replace("IMAGE", docker), submit="aws", backend="aws_batch", wait=False)
    deadline = time.monotonic() + 300
    while len(queue_jobs(aws_run["tasks"], ("RUNNING",))["RUNNING"]) < 2:
        assert time.monotonic() < deadline, f"the task jobs did not start: {run.log(tail=20)}"
        assert run.status in ("queued", "running"), run.log(tail=20)
        time.sleep(2)
    assert queue_jobs(aws_run["workflow"], ("RUNNING",))["RUNNING"]
    mj.attach(run.run_dir).cancel()
    deadline = time.monotonic() + 120
    while any(queue_jobs(aws_run["tasks"]).values()) or any(queue_jobs(aws_run["workflow"]).values()):
        assert time.monotonic() < deadline, "jobs left RUNNABLE/RUNNING"
        time.sleep(1)
    assert run.poll().status == "cancelled"
    batch = boto_client("batch")
    tasks = [j["jobId"] for j in batch.list_jobs(jobQueue=aws_run["tasks"], jobStatus="FAILED")["jobSummaryList"]]
    heads = [j["jobId"] for j in batch.list_jobs(jobQueue=aws_run["workflow"], jobStatus="FAILED")["jobSummaryList"]]
    assert len(tasks) == 2 and len(heads) == 1
    reasons = {j["jobId"]: j.get("statusReason") for j in batch.describe_jobs(jobs=tasks + heads)["jobs"]}
    assert reasons[heads[0]] == "cancelled from miniwdl-jupyter"
    assert {reasons[t] for t in tasks} <= {"run cancelled", "miniwdl task cancelled"}


def test_submit_without_a_workflow_queue_says_what_to_set(docker, workdir, monkeypatch):
    efs = workdir / "efs"
    efs.mkdir()
    for key, value in batch_env(efs, "q").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MINIWDL__JUPYTER__ROOT", str(efs / "wdl_runs"))
    from miniwdl_jupyter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[aws\] workflow_queue"):
        mj.run(SLEEP_WDL.replace("IMAGE", docker), submit="aws", backend="aws_batch", wait=False)
    assert not list((efs / "wdl_runs").glob("*_sleepy"))  # nothing half-made is left


def test_self_test_with_follow(docker, aws_run, workdir):
    done = subprocess.run(
        [sys.executable, "-m", "miniwdl_jupyter.cli", "submit", "--self-test", "--self-test-image", docker, "--follow"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("\n{") + 1:])
    assert result["status"] == "succeeded" and len(result["outputs"]["files"]) == 2
    assert "miniwdl run exited with status 0" in done.stderr  # the head job's CloudWatch log, followed


def test_delete_after_success_keeps_only_what_says_what_happened(docker, aws_run, workdir):
    s3upload = f"s3://{aws_run['bucket']}/kept"
    done = subprocess.run(
        [sys.executable, "-m", "miniwdl_jupyter.cli", "submit", "--self-test", "--self-test-image", docker,
         "--s3upload", s3upload, "--delete-after", "success"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    batch = boto_client("batch")
    deadline = time.monotonic() + 300
    while (head := batch.describe_jobs(jobs=[answer["job_id"]])["jobs"][0])["status"] not in ("SUCCEEDED", "FAILED"):
        assert time.monotonic() < deadline, "the head job did not end"
        time.sleep(1)
    assert head["status"] == "SUCCEEDED", head_log(head)
    run_dir = Path(answer["run_dir"])
    assert not list(run_dir.glob("call-*")) and not (run_dir / "out").exists()
    assert {"outputs.json", "outputs.s3.json", "workflow.log"} <= {p.name for p in run_dir.iterdir()}
    uris = json.loads((run_dir / "outputs.s3.json").read_text())["outputs"]["self_test.files"]
    bucket, key = uris[1][len("s3://"):].split("/", 1)
    assert boto_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello b\n"
    assert mj.attach(run_dir).status == "succeeded"


def test_bad_delete_after_without_s3upload_is_refused_up_front(docker, aws_run, workdir):
    from miniwdl_jupyter.errors import ConfigError

    with pytest.raises(ConfigError, match="s3upload"):
        mj.run(SLEEP_WDL.replace("IMAGE", docker), submit="aws", backend="aws_batch", wait=False, cfg={"aws": {"delete_after": "always"}})


def test_submit_from_a_cell_follows_the_run_to_its_outputs(docker, aws_run, shell, capsys):
    shell.user_ns["names"] = ["p", "q"]
    cell = MAIN_WDL.replace('import "lib/greet.wdl" as g\n', "").replace("g.greet", "greet") + GREET_WDL.split("\n", 1)[1].replace("IMAGE", docker)
    result = shell.run_cell("%%wdl --submit aws -o r names=$names --progress text\n" + cell)
    assert result.success, result.error_in_exec
    run = shell.user_ns["r"]
    assert run.status == "succeeded" and [p.read_text() for p in run.outputs["files"]] == ["hi p\n", "hi q\n"]
    record = json.loads((run.run_dir / ".miniwdl_jupyter" / "launch.json").read_text())
    assert record["launcher"] == "aws" and record["job_id"] and record["backend"] == "aws_batch"


def test_follow_a_submitted_run_whose_directory_is_not_visible(docker, aws_run, workdir, tmp_path):
    """A laptop: only the head job id is known; the mirror brings the log and the S3 outputs."""
    s3upload = f"s3://{aws_run['bucket']}/far"
    done = subprocess.run(
        [sys.executable, "-m", "miniwdl_jupyter.cli", "submit", "--self-test", "--self-test-image", docker, "--s3upload", s3upload],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    job_id = json.loads(done.stdout.strip().splitlines()[-1])["job_id"]
    from miniwdl_jupyter.aws import mirror

    run = mirror.follow(job_id, tmp_path / "mirror")
    run.wait(timeout=600)
    assert run.status == "succeeded"
    files = run.outputs["files"]
    assert len(files) == 2 and all(str(f).startswith(f"{s3upload}/") for f in files)
    assert sorted(c.state for c in run.calls) == ["succeeded", "succeeded"]  # from the head job's log
    # the same through the runs API, as for a WES run: attach("aws:<head job id>")
    again = mj.attach(f"aws:{job_id}", root=tmp_path / "attached")
    assert again.run_dir.parent == (tmp_path / "attached").resolve()
    assert again.wait(timeout=300).status == "succeeded" and again.outputs["files"] == files


TWO_TASKS = """version 1.1
workflow both {
  call shout { input: who = "the workflow", times = 1 }
  call boom
}
task shout {
  input { String who  Int times }
  command <<< for i in $(seq ~{times}); do echo "~{who}"; done >>>
  output { Array[String] said = read_lines(stdout()) }
  runtime { docker: "IMAGE" }
}
task boom {
  command <<< echo "boom: no such sample" >&2; exit 5 >>>
  runtime { docker: "IMAGE" }
}
"""


def submit_cli(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "miniwdl_jupyter.cli", "submit", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def task_jobs(queue: str, run_dir: str) -> list:
    """The task jobs of one run, found by the job-name prefix the aws_batch backend gives them."""
    from miniwdl_jupyter.aws.jobs import run_prefix

    batch = boto_client("batch")
    found = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [f"{run_prefix(run_dir)}*"]}])["jobSummaryList"]
    return batch.describe_jobs(jobs=[j["jobId"] for j in found])["jobs"] if found else []


def test_submit_a_task_with_an_inputs_file_a_cfg_file_and_wait_then_without_the_cache(docker, aws_run, workdir):
    """`miniwdl-jupyter submit` with `--task`, `-i` (name=value pairs override the file), `--cfg`
    (read by the head job's miniwdl: its [aws] default_memory_mb sizes the task job) and `--wait`
    (returns once the run has ended: exit 0 with its status and outputs, exit 1 with the failure);
    then the same submission again, taken from the call cache, and with `--no-cache`, run again."""
    (workdir / "two.wdl").write_text(TWO_TASKS.replace("IMAGE", docker))  # not on the "EFS": staged
    (workdir / "inputs.json").write_text(json.dumps({"who": "from the file", "times": 1}))
    (workdir / "run.cfg").write_text("[aws]\ndefault_memory_mb = 333\n")
    shout = ["two.wdl", "times=2", "--task", "shout", "-i", "inputs.json", "--cfg", "run.cfg", "--wait"]
    first = submit_cli(*shout, cwd=workdir)
    failing = submit_cli("two.wdl", "--task", "boom", "--wait", cwd=workdir)

    code, out, err = finished(first)
    assert code == 0, err[-3000:]
    run_dir = json.loads(out.splitlines()[0])["run_dir"]
    assert json.loads(out[out.index("\n{") + 1:]) == {"status": "succeeded", "outputs": {"said": ["from the file", "from the file"]}}
    assert mj.attach(run_dir).status == "succeeded"  # --wait returned once the run had ended
    [job] = task_jobs(aws_run["tasks"], run_dir)  # the task alone, not the workflow's two calls
    [definition] = boto_client("batch").describe_job_definitions(jobDefinitions=[job["jobDefinition"]])["jobDefinitions"]
    memory = {r["type"]: r["value"] for r in definition["containerProperties"]["resourceRequirements"]}["MEMORY"]
    assert memory == "333"  # from --cfg, in the head job (the default is 1024)
    assert list(Path(run_dir, ".miniwdl_jupyter", "staged").rglob("run.cfg"))

    code, out, err = finished(failing)
    assert code == 1, out + err[-3000:]
    assert "boom: no such sample" in err and "exit" in err, err[-3000:]
    failed_dir = json.loads(out.splitlines()[0])["run_dir"]
    assert mj.attach(failed_dir).status == "failed"
    assert [j["jobName"] for j in task_jobs(aws_run["tasks"], failed_dir)] and all("boom" in j["jobName"] for j in task_jobs(aws_run["tasks"], failed_dir))

    # the pair after the options too, as `miniwdl run` takes it
    cached, uncached = submit_cli(*shout, cwd=workdir), submit_cli("two.wdl", *shout[2:], "--no-cache", "times=2", cwd=workdir)
    for proc, jobs_expected in ((cached, 0), (uncached, 1)):
        code, out, err = finished(proc)
        assert code == 0, err[-3000:]
        again = json.loads(out.splitlines()[0])["run_dir"]
        assert json.loads(out[out.index("\n{") + 1:])["outputs"] == {"said": ["from the file", "from the file"]}
        assert len(task_jobs(aws_run["tasks"], again)) == jobs_expected, (proc.args, again)
