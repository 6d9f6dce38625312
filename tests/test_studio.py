"""SageMaker Studio without configuration: detection from a resource-metadata.json file, the
domain's EFS, the user's access point and the tagged Batch queue found through the SageMaker, EFS
and Batch APIs of moto's server (over HTTP, through a loopback proxy that answers what moto 5.2.5
lacks: DescribeUserProfile, and a domain EFS id that EFS's API knows); and Studio's Docker rules
enforced by a loopback stand-in for its Docker proxy, through which docker_run and an image build
succeed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from miniwdl_jupyter import config, runs, studio
from miniwdl_jupyter.aws import studio_discovery
from miniwdl_jupyter.errors import BackendError

from aws_fixtures import DUMMY_CREDENTIALS, MOTO, AwsProxy, boto_client, make_queue, moto_answers, queue_jobs
from conftest import require
from studio_docker_proxy import StudioDockerProxy

pytestmark = [pytest.mark.docker, pytest.mark.slow]
UID = 200005
CELL = """version 1.1
workflow hello {
  input { Array[String] names }
  scatter (n in names) { call greet { input: name = n } }
  output { Array[File] files = greet.out }
}
task greet {
  input { String name }
  command <<< echo "hi ~{name}" > "~{name}.txt" >>>
  output { File out = "~{name}.txt" }
  runtime { docker: "IMAGE" cpu: 1 memory: "256 MiB" }
}
"""


@pytest.fixture
def studio_domain(docker, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """A Studio domain with EFS in the emulator, this process posing as a JupyterLab space in it."""
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    name = f"d{uuid.uuid4().hex[:8]}"
    domain_id = boto_client("sagemaker").create_domain(
        DomainName=name, AuthMode="IAM", DefaultUserSettings={}, SubnetIds=["subnet-1"], VpcId="vpc-1"
    )["DomainArn"].split("/")[-1]
    efs = boto_client("efs")
    fs = efs.create_file_system(CreationToken=name)["FileSystemId"]
    efs.create_access_point(FileSystemId=fs, PosixUser={"Uid": UID - 1, "Gid": 1001}, RootDirectory={"Path": f"/{UID - 1}"})
    fsap = efs.create_access_point(FileSystemId=fs, PosixUser={"Uid": UID, "Gid": 1001}, RootDirectory={"Path": f"/{UID}"})["AccessPointId"]
    queue = make_queue()
    batch = boto_client("batch")
    arn = batch.describe_job_queues(jobQueues=[queue["queue"]])["jobQueues"][0]["jobQueueArn"]
    batch.tag_resource(resourceArn=arn, tags={studio_discovery.QUEUE_TAG: fs})

    home = workdir / "home"
    (home / "user-default-efs").mkdir(parents=True)
    metadata = workdir / "resource-metadata.json"
    metadata.write_text(json.dumps({
        "AppType": "JupyterLab",
        "DomainId": domain_id,
        "UserProfileName": "alice",
        "SpaceName": "alice-space",
        "ResourceArn": f"arn:aws:sagemaker:us-east-1:123456789012:app/{domain_id}/alice-space/jupyterlab/default",
    }))
    domain = {"fs": fs}
    proxy = AwsProxy(
        rewrite={"DescribeDomain": lambda answer: {**answer, "HomeEfsFileSystemId": domain["fs"]} if domain["fs"] else {k: v for k, v in answer.items() if k != "HomeEfsFileSystemId"}},
        answer={"DescribeUserProfile": lambda request: {**request, "HomeEfsFileSystemUid": str(UID), "Status": "InService"}},
    )
    with proxy:
        for key, value in DUMMY_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("MINIWDL_JUPYTER_STUDIO_METADATA", str(metadata))
        monkeypatch.setenv("MINIWDL__AWS__ENDPOINT_URL", proxy.endpoint)  # the emulator, not AWS
        monkeypatch.delenv("MINIWDL__JUPYTER__ROOT", raising=False)
        studio_discovery._found.clear()
        yield {"domain": domain, "fs": fs, "fsap": fsap, "queue": queue["queue"], "mount": home / "user-default-efs", "proxy": proxy}
        studio_discovery._found.clear()


def test_studio_settings_found_from_metadata_and_apis(studio_domain):
    info = studio.detect()
    assert info and info.user_profile == "alice" and info.region == "us-east-1" and not info.classic
    cfg = runs.load_config()  # the runs layer's entry point: Studio discovery is its explicit step
    assert cfg.get("aws", "fs") == studio_domain["fs"]
    assert cfg.get("aws", "fsap") == studio_domain["fsap"]
    assert cfg.get("aws", "task_queue") == studio_domain["queue"]
    assert cfg.get("aws", "mount") == str(studio_domain["mount"])
    assert cfg.get("jupyter", "root") == str(studio_domain["mount"] / "wdl_runs")
    assert config.origin(cfg, "aws", "task_queue") != "override"
    assert config.load().get("aws", "task_queue") == ""  # loading configuration alone calls no AWS API  # a default: configuration still wins


def test_scatter_in_studio_with_no_configuration(studio_domain, shell, monkeypatch, docker):
    # moto cannot mount EFS into its job containers: the found mount is given to them as a host
    # directory, the one setting this test adds
    monkeypatch.setenv("MINIWDL__AWS__HOST_PATH", str(studio_domain["mount"]))
    monkeypatch.setenv("MINIWDL__AWS__DESCRIBE_PERIOD", "0.5")
    monkeypatch.setenv("MINIWDL__SCHEDULER__TASK_CONCURRENCY", "10")
    shell.user_ns["names"] = ["s", "t"]
    result = shell.run_cell("%%wdl --backend aws_batch -o run names=$names --progress none\n" + CELL.replace("IMAGE", docker))
    assert result.success, result.error_in_exec
    run = shell.user_ns["run"]
    assert str(run.run_dir).startswith(str(studio_domain["mount"] / "wdl_runs"))
    assert [p.read_text() for p in run.outputs["files"]] == ["hi s\n", "hi t\n"]
    jobs = boto_client("batch").list_jobs(jobQueue=studio_domain["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert len(jobs) == 2


def test_studio_classic_mounts_the_home_directory_and_takes_the_uid_from_its_owner(studio_domain, monkeypatch, docker):
    """Studio Classic (a KernelGateway app): the EFS is the home directory, and when
    DescribeUserProfile gives no HomeEfsFileSystemUid, the uid is the home directory's owner; the
    access point of that uid is found and a Batch task writes its run under the home directory.
    (The emulator lacks DescribeUserProfile: the fixture's proxy answers it, here without a uid.)"""
    import os

    metadata = Path(os.environ["MINIWDL_JUPYTER_STUDIO_METADATA"])
    classic = json.loads(metadata.read_text())
    classic.update(AppType="KernelGateway", ResourceArn=classic["ResourceArn"].replace("jupyterlab", "kernelgateway"))
    metadata.write_text(json.dumps(classic))
    proxy = studio_domain["proxy"]
    proxy.answer["DescribeUserProfile"] = lambda request: {**request, "Status": "InService"}  # no HomeEfsFileSystemUid
    home = Path.home()
    owner = UID + 7  # as Studio Classic creates the home directory: owned by the profile's EFS uid
    os.chown(home, owner, 1001)
    fsap = boto_client("efs").create_access_point(
        FileSystemId=studio_domain["fs"], PosixUser={"Uid": owner, "Gid": 1001}, RootDirectory={"Path": f"/{owner}"}
    )["AccessPointId"]

    assert studio.detect().classic
    cfg = runs.load_config()
    assert proxy.calls["DescribeUserProfile"] == 1
    assert cfg.get("aws", "mount") == str(home)
    assert cfg.get("aws", "fsap") == fsap  # not the fixture's access point of the uid a profile would give
    assert cfg.get("jupyter", "root") == str(home / "wdl_runs")

    # moto cannot mount EFS into its job containers: the home directory is given to them as a host directory
    monkeypatch.setenv("MINIWDL__AWS__HOST_PATH", str(home))
    monkeypatch.setenv("MINIWDL__AWS__DESCRIBE_PERIOD", "0.5")
    run = mj.run(CELL.replace("IMAGE", docker), {"names": ["c"]}, backend="aws_batch", cache=False)
    assert run.status == "succeeded" and str(run.run_dir).startswith(str(home / "wdl_runs"))
    assert [p.read_text() for p in run.outputs["files"]] == ["hi c\n"]
    assert boto_client("batch").list_jobs(jobQueue=studio_domain["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]


def test_domain_without_efs_says_so_before_anything_starts(studio_domain, workdir, docker):
    studio_domain["domain"]["fs"] = ""  # DescribeDomain answers without HomeEfsFileSystemId
    with pytest.raises(BackendError, match="has no EFS file system") as raised:
        mj.run(CELL.replace("IMAGE", docker), {"names": ["x"]}, backend="aws_batch", wait=False)
    assert "Fix:" in str(raised.value)
    # Nothing started: no run directory anywhere (default root or the Studio mount), no Batch job.
    assert not [p for p in workdir.rglob("*_hello") if p.is_dir()]
    assert studio_domain["proxy"].calls["submitjob"] == 0
    assert not any(queue_jobs(studio_domain["queue"], ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")).values())


def test_unknown_domain_says_which_call_failed_and_what_to_check(workdir, monkeypatch):
    """DescribeDomain fails (here: a domain id the emulator does not know, as with a wrong
    metadata file or another region): the run stops before anything starts, naming the call, the
    domain, AWS's answer, and what to check; not the AWS Batch hint of other API failures."""
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    metadata = workdir / "resource-metadata.json"
    metadata.write_text(json.dumps({
        "AppType": "JupyterLab",
        "DomainId": "d-nosuchdomain0",
        "UserProfileName": "alice",
        "ResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:app/d-nosuchdomain0/alice-space/jupyterlab/default",
    }))
    for key, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MINIWDL_JUPYTER_STUDIO_METADATA", str(metadata))
    monkeypatch.setenv("MINIWDL__AWS__ENDPOINT_URL", f"http://{MOTO}")
    studio_discovery._found.clear()
    try:
        with pytest.raises(BackendError) as raised:
            mj.run(CELL.replace("IMAGE", "debian:bookworm-slim"), {"names": ["x"]}, backend="aws_batch", wait=False)
        # local runs still work in such a Studio: loading configuration there raised nothing
        assert runs.load_config().get("aws", "region") == "us-east-1"
    finally:
        studio_discovery._found.clear()
    message = str(raised.value)
    assert "SageMaker DescribeDomain failed" in message and "d-nosuchdomain0" in message
    assert "ValidationException" in message and "Could not find domain" in message  # AWS's own answer
    fix = message.split("Fix:", 1)[1]
    assert str(metadata) in fix and "sagemaker:DescribeDomain" in fix and "us-east-1" in fix
    assert "AWS Batch setup" not in message and ".." not in message
    assert not (workdir / "wdl_runs").exists() or not list((workdir / "wdl_runs").glob("*_hello"))


@pytest.fixture
def studio_docker(docker, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    import docker as docker_sdk

    real = docker_sdk.from_env()
    if not real.networks.list(names=[studio.DOCKER_NETWORK]):
        real.networks.create(studio.DOCKER_NETWORK, driver="bridge")
    with StudioDockerProxy() as proxy:
        monkeypatch.setenv("DOCKER_HOST", proxy.docker_host)
        monkeypatch.setenv("MINIWDL_JUPYTER_STUDIO_DOCKER", "1")
        monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
        monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
        yield proxy


def test_the_stand_in_enforces_studio_rules(studio_docker, docker):
    import docker as docker_sdk

    # (this machine's dockerd speaks 1.41 itself, so an unpinned client happens to comply here)
    with pytest.raises(docker_sdk.errors.APIError, match="only"):
        docker_sdk.DockerClient(base_url=studio_docker.docker_host, version="1.40").containers.list()
    client = docker_sdk.DockerClient(base_url=studio_docker.docker_host, version="1.41")
    with pytest.raises(docker_sdk.errors.APIError, match="privileged"):
        client.containers.run(docker, "true", privileged=True, network_mode="sagemaker", remove=True)
    with pytest.raises(docker_sdk.errors.APIError, match="network"):
        client.containers.run(docker, "true", remove=True)
    assert client.containers.run(docker, "echo ok", network_mode="sagemaker", remove=True) == b"ok\n"


def test_docker_run_complies_with_studio_docker(studio_docker, workdir, docker):
    run = mj.run(CELL.replace("IMAGE", docker), {"names": ["u", "v"]}, backend="docker_run", cache=False)
    assert [p.read_text() for p in run.outputs["files"]] == ["hi u\n", "hi v\n"]
    creates = [target for method, target in studio_docker.passed if "/containers/create" in target]
    assert len(creates) == 2 and all(target.startswith("/v1.41/") for target in creates)
    assert not [r for r in studio_docker.refused if "/containers/create" in r[1]]


def test_image_build_complies_with_studio_docker(studio_docker, workdir, docker, monkeypatch):
    from miniwdl_jupyter import images

    monkeypatch.setenv("MINIWDL__NOTEBOOK_STEPS__REPOSITORY", f"mj-studio-test-{uuid.uuid4().hex[:8]}")
    tag = images.build_image([], base_image=docker)
    builds = [target for method, target in studio_docker.passed if "/build" in target]
    assert builds and all("networkmode=sagemaker" in target and target.startswith("/v1.41/") for target in builds)
    import docker as docker_sdk

    docker_sdk.from_env(environment={}).images.remove(tag)


def test_studio_notebook_runs_under_papermill(studio_domain, workdir, monkeypatch, docker):
    """notebooks/sagemaker_studio.ipynb, headless, in the emulated Studio: a scatter on aws_batch and
    a submitted run."""
    import subprocess
    import sys

    from aws_fixtures import build_head_image

    monkeypatch.setenv("MINIWDL__AWS__HOST_PATH", str(studio_domain["mount"]))  # moto cannot mount EFS
    monkeypatch.setenv("MINIWDL__AWS__DESCRIBE_PERIOD", "0.5")
    monkeypatch.setenv("MINIWDL__AWS__WORKFLOW_QUEUE", make_queue()["queue"])
    monkeypatch.setenv("MINIWDL__AWS__HEAD_IMAGE", build_head_image(docker, workdir))
    monkeypatch.setenv("MINIWDL__AWS__HEAD_ENV", json.dumps(DUMMY_CREDENTIALS))
    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "sagemaker_studio.ipynb"
    out = workdir / "studio.out.ipynb"
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", str(notebook), str(out), "--kernel", "python3", "-p", "image", docker, "-p", "submit", "aws"],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "hello alpha" in text and "STUDIO" in text and studio_domain["fs"] in text


def test_detection_from_the_metadata_file(tmp_path):
    assert studio.detect(tmp_path / "absent.json") is None
    classic = tmp_path / "classic.json"
    classic.write_text(json.dumps({"AppType": "KernelGateway", "DomainId": "d-1", "UserProfileName": "bo", "ResourceArn": "arn:aws:sagemaker:eu-west-1:1:app/d-1/bo/kernelgateway/x"}))
    info = studio.detect(classic)
    assert info.classic and info.region == "eu-west-1" and info.user_profile == "bo"
    (tmp_path / "broken.json").write_text("{")
    assert studio.detect(tmp_path / "broken.json") is None


def test_docker_run_arguments_under_studio_rules(monkeypatch):
    monkeypatch.setenv("MINIWDL_JUPYTER_STUDIO_DOCKER", "1")
    args = studio.docker_run_args(["docker", "run", "--rm", "--privileged", "--network", "host", "--net=none", "--name", "x"])
    assert args == ["docker", "run", "--network", "sagemaker", "--rm", "--name", "x"]
    assert studio.docker_environment() == {"DOCKER_API_VERSION": "1.41", "DOCKER_BUILDKIT": "0"}
    monkeypatch.setenv("MINIWDL_JUPYTER_STUDIO_DOCKER", "0")
    assert studio.docker_run_args(["docker", "run", "--privileged"]) == ["docker", "run", "--privileged"]
