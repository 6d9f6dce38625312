"""`s3://` File and Directory inputs on aws_batch, localized onto the shared filesystem by a Batch
job in the head image (python3 + boto3; no image from a public registry), from the AWS emulator's
S3, and read by the task's own Batch job. Credentials and the S3 endpoint reach the download job
the way miniwdl's own downloader passes them: [download_awscli] host_credentials and
AWS_ENDPOINT_URL_S3 (here the emulator; on AWS, the job role does it)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import miniwdl_jupyter as mj
from aws_fixtures import MOTO, batch_env, boto_client, build_head_image, make_queue, moto_answers
from conftest import TEST_IMAGE, require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WDL = """version 1.2
workflow reads {
  input { File sample  Directory refs }
  call count { input: sample = sample, refs = refs }
  output { String said = count.said }
}
task count {
  input { File sample  Directory refs }
  command <<< echo "$(cat ~{sample}) $(ls ~{refs} | sort | tr '\\n' ' ')$(cat ~{refs}/sub/c.txt)" >>>
  output { String said = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""


@pytest.fixture(scope="module")
def head_image(docker, tmp_path_factory) -> str:
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    return build_head_image(docker, tmp_path_factory.mktemp("head"))


def s3_inputs_on_batch(workdir: Path, monkeypatch: pytest.MonkeyPatch, **settings: str):
    """A bucket with a sample and a folder of references; aws_batch against the emulator."""
    s3 = boto_client("s3")
    bucket = f"mj-inputs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="samples/s1.txt", Body=b"sample-one")
    for key, body in (("refs/a.txt", b"A"), ("refs/b.txt", b"B"), ("refs/sub/c.txt", b"deep")):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    efs = workdir / "efs"
    efs.mkdir()
    queue = make_queue()
    env = batch_env(efs, queue["queue"])
    env.update(
        MINIWDL__JUPYTER__ROOT=str(efs / "wdl_runs"),
        MINIWDL__DOWNLOAD_AWSCLI__HOST_CREDENTIALS="true",
        AWS_ENDPOINT_URL_S3=f"http://{MOTO}",
    )
    env.update(settings)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return bucket, queue, efs


def test_s3_file_and_directory_inputs_reach_a_batch_task(head_image, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    bucket, queue, efs = s3_inputs_on_batch(workdir, monkeypatch, MINIWDL__AWS__HEAD_IMAGE=head_image)
    run = mj.run(WDL.replace("IMAGE", TEST_IMAGE), {"sample": f"s3://{bucket}/samples/s1.txt", "refs": f"s3://{bucket}/refs/"},
                 backend="aws_batch", cache=False)
    assert run.status == "succeeded", run.log(tail=40)
    assert run.outputs["said"].split() == ["sample-one", "a.txt", "b.txt", "sub", "deep"]
    # the downloads were Batch jobs in the head image, writing onto the shared filesystem
    batch = boto_client("batch")
    done = batch.list_jobs(jobQueue=queue["queue"], jobStatus="SUCCEEDED")["jobSummaryList"]
    definitions = [batch.describe_jobs(jobs=[j["jobId"]])["jobs"][0]["jobDefinition"] for j in done]
    images = [batch.describe_job_definitions(jobDefinitions=[d])["jobDefinitions"][0]["containerProperties"]["image"] for d in definitions]
    assert images.count(head_image) == 2 and images.count(TEST_IMAGE) == 1, images
    downloaded = [p for p in (efs / "wdl_runs").rglob("s1.txt")]
    assert downloaded and all(str(p).startswith(str(efs)) for p in downloaded)


def test_without_an_image_of_ours_miniwdls_own_downloader_does_it(head_image, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    # [download_awscli] docker names an image without the aws CLI here: the failure shows whose
    # downloader ran (miniwdl's aws_s3_cp task), which needs that image's aws CLI
    bucket, _, _ = s3_inputs_on_batch(workdir, monkeypatch, MINIWDL__DOWNLOAD_AWSCLI__DOCKER=TEST_IMAGE)
    run = mj.run(WDL.replace("IMAGE", TEST_IMAGE), {"sample": f"s3://{bucket}/samples/s1.txt", "refs": f"s3://{bucket}/refs/"},
                 backend="aws_batch", cache=False, wait=False)
    with pytest.raises(mj.RunFailed):
        run.wait(timeout=300)
    assert "download-aws_s3_cp" in run.log(tail=400)
