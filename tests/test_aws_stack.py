"""`miniwdl-jupyter aws template|deploy|destroy` and `[aws] stack`: the CloudFormation template is
linted offline (cfn-lint) and deployed into the AWS emulator's CloudFormation over HTTP; a workflow
then runs on aws_batch with `[aws] stack` as its only AWS setting.

What the emulator lacks, and how each is stood in (see docs/aws.md, "Deploy from zero"):
- EFS cannot be mounted by its jobs: the run directory is a host directory every job mounts
  (`[aws] host_path` + `mount`), as in the other aws_batch tests; the stack's EFS is checked through
  the EFS API instead.
- `Ref` of an access point returns a Python object's repr: the access point is checked through the
  EFS API (uid, root directory), not through the stack output.
- A bucket's LifecycleConfiguration is not applied: the rule is read from the deployed template.
- Job-queue Tags in a template are not applied: `aws deploy` tags the queues through the Batch API
  as well (a no-op on AWS, where the template's tags are there already).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from aws_fixtures import DUMMY_CREDENTIALS, MOTO, REGION, boto_client, moto_answers
from conftest import TEST_IMAGE, require

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = [sys.executable, "-m", "miniwdl_jupyter.cli"]


@pytest.fixture
def moto(docker):
    require("moto_server", moto_answers(), "no moto server answers (start it with .ci/provision)")
    return docker


def aws_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL__")}
    env.update(DUMMY_CREDENTIALS, MINIWDL__AWS__REGION=REGION, MINIWDL__AWS__ENDPOINT_URL=f"http://{MOTO}")
    env.update(extra)
    return env


def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(CLI + ["--log-level", "WARNING", *args], env=env or aws_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def outputs_of(stdout: str) -> dict:
    """The `key  value` lines `aws deploy` prints."""
    found = {}
    for line in stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0][:1].isupper() and not line.startswith("Use it"):
            found[parts[0]] = parts[1].strip()
    return found


@pytest.fixture
def network(moto) -> list:
    """An existing VPC with two subnets in two zones, as most accounts have: `--vpc --subnets`."""
    ec2 = boto_client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{16 * i}.0/20", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    return ["--vpc", vpc, "--subnets", ",".join(subnets)]


@pytest.fixture
def stack(network):
    name = f"mj-{uuid.uuid4().hex[:8]}"
    deployed = cli("aws", "deploy", "--stack", name, *network, "--uid", "1234")
    yield name, outputs_of(deployed.stdout), deployed
    cli("aws", "destroy", "--stack", name, "--delete-data", check=False)


def test_the_template_passes_cfn_lint(tmp_path: Path):
    template = tmp_path / "miniwdl-jupyter.yaml"
    template.write_text(cli("aws", "template", env=dict(os.environ)).stdout)
    lint = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), str(template)], capture_output=True, text=True)
    # cfn-lint's exit code is a bit field: 2 = errors, 4 = warnings, 8 = informational
    assert lint.returncode & 2 == 0, lint.stdout
    assert lint.returncode == 0, lint.stdout  # and nothing else to say either


def test_deploy_makes_what_the_backends_need_and_tags_the_queues(stack):
    name, out, deployed = stack
    assert "CREATE_COMPLETE" in deployed.stderr  # progress was shown
    assert f"[aws] stack = {name}" in deployed.stdout
    batch, efs, ec2, s3 = boto_client("batch"), boto_client("efs"), boto_client("ec2"), boto_client("s3")
    queues = {q["jobQueueArn"]: q for q in batch.describe_job_queues()["jobQueues"]}
    for key in ("TaskQueue", "TaskQueueFallback", "WorkflowQueue"):
        assert queues[out[key]]["state"] == "ENABLED"
    fs = out["FileSystemId"]
    # tagged as Studio discovery, miniwdl-aws and `--submit aws` read them
    assert queues[out["TaskQueue"]]["tags"]["MiniwdlStudioEfsId"] == fs
    workflow_tags = queues[out["WorkflowQueue"]]["tags"]
    assert workflow_tags["DefaultTaskQueue"] == out["TaskQueue"]
    assert workflow_tags["DefaultTaskQueueFallback"] == out["TaskQueueFallback"]
    assert workflow_tags["WorkflowEngineRoleArn"] == out["HeadJobRoleArn"]
    # the compute environments: EC2 spot and on-demand for tasks, Fargate for head jobs
    kinds = set()
    for arn in (out["TaskQueue"], out["TaskQueueFallback"], out["WorkflowQueue"]):
        ce = queues[arn]["computeEnvironmentOrder"][0]["computeEnvironment"]
        kinds.add(batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0]["computeResources"]["type"])
    assert kinds == {"SPOT", "EC2", "FARGATE"}
    # EFS with elastic throughput, an access point for uid 1234 rooted at /1234
    described = efs.describe_file_systems(FileSystemId=fs)["FileSystems"][0]
    assert described["ThroughputMode"] == "elastic"
    points = efs.describe_access_points(FileSystemId=fs)["AccessPoints"]
    assert [(p["PosixUser"]["Uid"], p["RootDirectory"]["Path"]) for p in points] == [(1234, "/1234")]
    # NFS (2049) admitted from the jobs' security group, and only that
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(GroupIds=[out["EfsSecurityGroup"]])["SecurityGroups"]}
    rules = groups[out["EfsSecurityGroup"]]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"], [p["GroupId"] for p in r["UserIdGroupPairs"]]) for r in rules] == [
        (2049, 2049, [out["ComputeSecurityGroup"]])
    ]
    # the upload bucket expires old runs: the emulator does not apply a template's
    # LifecycleConfiguration, so read it from the template the stack was deployed with
    from cfnlint.decode import decode_str

    deployed_template, _ = decode_str(boto_client("cloudformation").get_template(StackName=name)["TemplateBody"])
    rules = deployed_template["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == {"Ref": "UploadExpirationDays"} and r["Prefix"] == "runs/" for r in rules)
    s3.head_bucket(Bucket=out["Bucket"])


def test_a_workflow_runs_with_the_stack_as_its_only_aws_setting(stack, tmp_path: Path):
    name, out, _ = stack
    shared = tmp_path / "efs"  # the emulator's jobs cannot mount EFS: a host directory stands in
    shared.mkdir()
    wdl = tmp_path / "hello.wdl"
    wdl.write_text(
        "version 1.1\n"
        "task hello { command <<< echo hi from batch >>> output { String out = read_string(stdout()) } "
        f'runtime {{ docker: "{TEST_IMAGE}" }} }}\n'
    )
    env = aws_env(
        MINIWDL__AWS__STACK=name,
        MINIWDL__AWS__HOST_PATH=str(shared),
        MINIWDL__AWS__MOUNT=str(shared),
        MINIWDL__AWS__DESCRIBE_PERIOD="0.5",
    )
    code = (
        "import miniwdl_jupyter as mj, sys\n"
        f"run = mj.run({str(wdl)!r}, backend='aws_batch', dir={str(shared / 'runs')!r}, cache=False)\n"
        "print(run.outputs['out'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hi from batch" in proc.stdout
    # the job went to the stack's task queue
    batch = boto_client("batch")
    assert batch.list_jobs(jobQueue=out["TaskQueue"], jobStatus="SUCCEEDED")["jobSummaryList"]


def test_deploying_again_updates_in_place(stack, network):
    name, out, _ = stack
    again = cli("aws", "deploy", "--stack", name, *network, "--uid", "1234")
    assert outputs_of(again.stdout)["TaskQueue"] == out["TaskQueue"]


def test_destroy_keeps_the_efs_and_the_bucket_unless_asked(network):
    name = f"mj-{uuid.uuid4().hex[:8]}"
    out = outputs_of(cli("aws", "deploy", "--stack", name, *network).stdout)
    kept = cli("aws", "destroy", "--stack", name)
    assert out["FileSystemId"] in kept.stdout and out["Bucket"] in kept.stdout
    efs, s3 = boto_client("efs"), boto_client("s3")
    assert efs.describe_file_systems(FileSystemId=out["FileSystemId"])["FileSystems"]
    s3.head_bucket(Bucket=out["Bucket"])
    # a second stack, destroyed with its data
    name2 = f"mj-{uuid.uuid4().hex[:8]}"
    out2 = outputs_of(cli("aws", "deploy", "--stack", name2, *network).stdout)
    s3.put_object(Bucket=out2["Bucket"], Key="runs/x/outputs.json", Body=b"{}")
    cli("aws", "destroy", "--stack", name2, "--delete-data")
    assert out2["FileSystemId"] not in {f["FileSystemId"] for f in efs.describe_file_systems()["FileSystems"]}
    assert out2["Bucket"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    # tidy up what the first destroy kept
    efs.delete_file_system(FileSystemId=out["FileSystemId"])


def test_new_vpc_makes_the_network_too(moto):
    # (the emulator cannot delete a stack that made its own VPC: DependencyViolation; on AWS
    # CloudFormation deletes in dependency order)
    name = f"mj-{uuid.uuid4().hex[:8]}"
    deployed = cli("aws", "deploy", "--stack", name, "--new-vpc")
    out = outputs_of(deployed.stdout)
    ec2 = boto_client("ec2")
    vpc = ec2.describe_security_groups(GroupIds=[out["ComputeSecurityGroup"]])["SecurityGroups"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    targets = boto_client("efs").describe_mount_targets(FileSystemId=out["FileSystemId"])["MountTargets"]
    assert sorted(t["SubnetId"] for t in targets) == sorted(s["SubnetId"] for s in subnets)


def test_bad_arguments_and_a_missing_stack_say_what_to_do(moto, tmp_path: Path):
    proc = cli("aws", "deploy", "--stack", "x", check=False)
    assert proc.returncode == 2
    assert "--vpc ID --subnets A,B" in proc.stderr and "--new-vpc" in proc.stderr
    assert "Traceback" not in proc.stderr
    missing = f"mj-missing-{uuid.uuid4().hex[:6]}"
    code = "import miniwdl_jupyter as mj\nmj.run('version 1.1\\ntask t { command <<< true >>> }', backend='aws_batch')\n"
    env = aws_env(MINIWDL__AWS__STACK=missing, MINIWDL__AWS__HOST_PATH=str(tmp_path), MINIWDL__AWS__MOUNT=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert missing in last and "miniwdl-jupyter aws deploy --stack" in last, last


def test_settings_you_give_win_over_the_stacks_outputs(stack, monkeypatch):
    name, out, _ = stack
    for key, value in aws_env(MINIWDL__AWS__STACK=name, MINIWDL__AWS__TASK_QUEUE="my-own-queue").items():
        monkeypatch.setenv(key, value)
    from miniwdl_jupyter import config
    from miniwdl_jupyter.aws import discovery

    cfg = discovery.apply_defaults(config.load())
    assert config.option(cfg, "aws", "task_queue") == "my-own-queue"  # yours
    assert config.option(cfg, "aws", "fs") == out["FileSystemId"]  # the stack's, where you gave none


def test_deploy_for_a_studio_domain_and_user(network):
    """`--studio-domain` uses the domain's EFS; `--studio-user` gives the access point that user's
    EFS uid (DescribeUserProfile -> HomeEfsFileSystemUid); `destroy --delete-data` keeps the
    domain's EFS. The emulator lacks DescribeUserProfile and gives its domains a made-up
    HomeEfsFileSystemId that its EFS API does not know: a loopback proxy (tests/aws_fixtures.py)
    answers the first in SageMaker's wire format and rewrites the second to a file system made here;
    every other call, CloudFormation's included, goes through to the emulator."""
    from aws_fixtures import AwsProxy

    name = f"mj-{uuid.uuid4().hex[:8]}"
    domain_id = boto_client("sagemaker").create_domain(
        DomainName=name, AuthMode="IAM", DefaultUserSettings={}, SubnetIds=["subnet-1"], VpcId="vpc-1"
    )["DomainArn"].split("/")[-1]
    efs = boto_client("efs")
    fs = efs.create_file_system(CreationToken=name)["FileSystemId"]
    uids = {"bob": "200123"}
    proxy = AwsProxy(
        rewrite={"DescribeDomain": lambda answer: {**answer, "HomeEfsFileSystemId": fs}},
        answer={"DescribeUserProfile": lambda request: {
            **request, "HomeEfsFileSystemUid": uids[request["UserProfileName"]], "Status": "InService"}},
    )
    with proxy:
        env = aws_env(MINIWDL__AWS__ENDPOINT_URL=proxy.endpoint)
        deployed = cli("aws", "deploy", "--stack", name, *network, "--studio-domain", domain_id, "--studio-user", "bob", env=env)
        assert proxy.bodies["DescribeUserProfile"] == [{"DomainId": domain_id, "UserProfileName": "bob"}]
        out = outputs_of(deployed.stdout)
        assert out["FileSystemId"] == fs
        points = efs.describe_access_points(FileSystemId=fs)["AccessPoints"]
        assert [(p["PosixUser"]["Uid"], p["RootDirectory"]["Path"]) for p in points] == [(200123, "/200123")]
        queues = boto_client("batch").describe_job_queues(jobQueues=[out["TaskQueue"]])["jobQueues"]
        assert queues[0]["tags"]["MiniwdlStudioEfsId"] == fs  # as Studio discovery finds the queue
        destroyed = cli("aws", "destroy", "--stack", name, "--delete-data", env=env)
    assert efs.describe_file_systems(FileSystemId=fs)["FileSystems"], destroyed.stdout  # never a domain's EFS
    efs.delete_file_system(FileSystemId=fs)
