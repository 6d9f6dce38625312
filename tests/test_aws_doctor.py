"""`miniwdl-jupyter aws doctor` and `%wdl doctor aws` against a stack deployed into the AWS emulator:
healthy, then with one problem planted at a time; each shows as its own failing row with its fix,
and nothing else fails.

The emulator does not implement IAM's SimulatePrincipalPolicy: a loopback proxy in front of it
answers that one call in IAM's XML wire format, deciding from the role's inline policies as stored
in the emulator (Allow statements, `*` wildcards); every other call goes through to the emulator.
"""

from __future__ import annotations

import ast
import datetime
import fnmatch
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List

import pytest

from aws_fixtures import AwsProxy, boto_client
from test_aws_stack import aws_env, cli, moto, network, outputs_of  # noqa: F401  (moto, network: fixtures)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def simulate_principal_policy(request: Dict[str, str]) -> str:
    """IAM SimulatePrincipalPolicy for a role, from its inline policies in the emulator."""
    iam = boto_client("iam")
    role = request["PolicySourceArn"].rsplit("/", 1)[-1]
    action, resource = request["ActionNames.member.1"], request.get("ResourceArns.member.1", "*")
    statements: List[dict] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            # the emulator keeps a policy given in a template as the repr of a Python dict
            document = json.loads(document) if document.lstrip().startswith('{"') else ast.literal_eval(document)
        found = document["Statement"]
        statements += found if isinstance(found, list) else [found]

    def matches(patterns, value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))

    allowed = any(s["Effect"] == "Allow" and matches(s["Action"], action) and matches(s.get("Resource", "*"), resource) for s in statements)
    return (
        '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults><member>"
        f"<EvalActionName>{action}</EvalActionName><EvalResourceName>{resource}</EvalResourceName>"
        f"<EvalDecision>{'allowed' if allowed else 'implicitDeny'}</EvalDecision>"
        "<MatchedStatements/><MissingContextValues/></member></EvaluationResults></SimulatePrincipalPolicyResult>"
        "<ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>"
    )


@pytest.fixture
def deployed(network, tmp_path: Path):
    """A stack for this user (the access point's uid is ours), the shared filesystem stood in by a
    host directory, and the proxy; yields (stack outputs, environment for the doctor)."""
    name = f"mj-{uuid.uuid4().hex[:8]}"
    out = outputs_of(cli("aws", "deploy", "--stack", name, *network).stdout)
    shared = tmp_path / "efs"
    shared.mkdir()
    # the emulator's stack output for the access point is no id (Ref gap): take it from EFS
    fsap = boto_client("efs").describe_access_points(FileSystemId=out["FileSystemId"])["AccessPoints"][0]["AccessPointId"]
    with AwsProxy(answer={"SimulatePrincipalPolicy": simulate_principal_policy}) as proxy:
        env = aws_env(
            MINIWDL__AWS__STACK=name,
            MINIWDL__AWS__HOST_PATH=str(shared),
            MINIWDL__AWS__MOUNT=str(shared),
            MINIWDL__AWS__ENDPOINT_URL=proxy.endpoint,
            MINIWDL__AWS__FSAP=fsap,
        )
        yield out, env
    cli("aws", "destroy", "--stack", name, "--delete-data", check=False)


def doctor(env: dict) -> tuple:
    """(exit code, {check: (status, the row's text with its fix)})."""
    proc = subprocess.run([sys.executable, "-m", "miniwdl_jupyter.cli", "--log-level", "ERROR", "aws", "doctor"],
                          env=env, capture_output=True, text=True, timeout=120)
    rows: Dict[str, tuple] = {}
    last = ""
    for line in proc.stdout.splitlines():
        status = line[:4].strip()
        if status in ("ok", "warn", "FAIL", "skip"):
            last = line[6:].split("  ")[0].strip()
            rows[last] = (status, line)
        elif line.strip().startswith("fix:") and last:
            rows[last] = (rows[last][0], rows[last][1] + "\n" + line.strip())
    assert rows, proc.stdout + proc.stderr
    return proc.returncode, rows


def failing(rows: dict) -> List[str]:
    return sorted(name for name, (status, _) in rows.items() if status == "FAIL")


def test_a_healthy_stack_passes_every_check(deployed):
    _, env = deployed
    code, rows = doctor(env)
    assert failing(rows) == [], "\n".join(r[1] for r in rows.values())
    assert code == 0
    for check in ("credentials", "task queue", "fallback queue", "workflow queue", "shared filesystem",
                  "access point", "NFS from the jobs", "permissions", "EFS throughput", "SubmitJob headroom"):
        assert rows[check][0] == "ok", rows[check]
    assert "max 256 vCPUs" in rows["task queue"][1] and "SPOT" in rows["task queue"][1]


def test_a_disabled_queue(deployed):
    out, env = deployed
    boto_client("batch").update_job_queue(jobQueue=out["TaskQueue"], state="DISABLED")
    code, rows = doctor(env)
    assert code == 1 and failing(rows) == ["task queue"], rows
    assert "DISABLED" in rows["task queue"][1] and "update-job-queue" in rows["task queue"][1]


def test_an_access_point_of_another_uid(deployed):
    out, env = deployed
    other = boto_client("efs").create_access_point(
        FileSystemId=out["FileSystemId"], PosixUser={"Uid": 4242, "Gid": 4242}, RootDirectory={"Path": "/4242"}
    )["AccessPointId"]
    code, rows = doctor(dict(env, MINIWDL__AWS__FSAP=other))
    assert failing(rows) == ["access point"], rows
    assert "uid 4242" in rows["access point"][1] and "--uid" in rows["access point"][1]


def test_a_security_group_without_nfs(deployed):
    out, env = deployed
    boto_client("ec2").revoke_security_group_ingress(
        GroupId=out["EfsSecurityGroup"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [{"GroupId": out["ComputeSecurityGroup"]}]}],
    )
    code, rows = doctor(env)
    assert failing(rows) == ["NFS from the jobs"], rows
    assert "authorize-security-group-ingress" in rows["NFS from the jobs"][1]


def test_a_role_without_pass_role(deployed):
    out, env = deployed
    iam = boto_client("iam")
    role = out["HeadJobRoleArn"].rsplit("/", 1)[-1]
    policy = iam.get_role_policy(RoleName=role, PolicyName="workflow-engine")["PolicyDocument"]
    policy = ast.literal_eval(policy) if isinstance(policy, str) else policy
    policy["Statement"] = [s for s in policy["Statement"] if s["Action"] != "iam:PassRole"]
    iam.put_role_policy(RoleName=role, PolicyName="workflow-engine", PolicyDocument=json.dumps(policy))
    code, rows = doctor(env)
    assert failing(rows) == ["permissions"], rows
    assert "iam:PassRole" in rows["permissions"][1]


def test_doctor_aws_from_a_notebook(deployed, shell, monkeypatch, capsys):
    _, env = deployed
    for key, value in env.items():
        if key.startswith(("MINIWDL__", "AWS_")):
            monkeypatch.setenv(key, value)
    result = shell.run_cell("%wdl doctor aws")
    assert result.success, result.error_in_exec
    shown = capsys.readouterr().out
    assert "task queue" in shown and "permissions" in shown and "FAIL" not in shown, shown


ECR_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/miniwdl-jupyter-head:0.1"


def test_an_ecr_head_image_must_be_readable_by_the_role_that_pulls_it(deployed):
    """An ECR head image adds ecr:BatchGetImage on its repository, simulated for the execution role
    (it pulls images for Batch); an image elsewhere adds nothing. On AWS the stack's execution role
    has it through AWS's AmazonECSTaskExecutionRolePolicy; the emulator's CloudFormation attaches no
    managed policy, so here the role first has none, then gets the action as an inline policy.
    SimulatePrincipalPolicy: the stand-in above (the emulator lacks it)."""
    out, env = deployed
    execution_role = out["ExecutionRoleArn"].rsplit("/", 1)[-1]
    with_ecr_image = dict(env, MINIWDL__AWS__HEAD_IMAGE=ECR_IMAGE)
    code, rows = doctor(with_ecr_image)
    assert code == 1 and failing(rows) == ["permissions"], rows
    assert f"{execution_role} may not: ecr:BatchGetImage on repository/miniwdl-jupyter-head" in rows["permissions"][1]
    assert f"add these actions to {execution_role}'s policy" in rows["permissions"][1]

    code, rows = doctor(dict(env, MINIWDL__AWS__HEAD_IMAGE="debian:bookworm-slim"))
    assert code == 0 and "ecr:BatchGetImage" not in rows["permissions"][1], rows["permissions"]

    boto_client("iam").put_role_policy(RoleName=execution_role, PolicyName="pull", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:BatchGetImage", "Resource": "arn:aws:ecr:*:*:repository/*"}],
    }))
    code, rows = doctor(with_ecr_image)
    assert code == 0 and failing(rows) == [], rows
    assert f"{execution_role} may ecr:BatchGetImage" in rows["permissions"][1], rows["permissions"]


def test_efs_burst_credits(deployed):
    """Under bursting throughput the lowest BurstCreditBalance of the last hour, from CloudWatch:
    a warning below 200 GiB, with the fix; ok above. (The stack's EFS is elastic and the emulator
    answers EFS UpdateFileSystem with an HTTP 500, so bursting file systems are made directly; the
    emulator's CloudWatch keeps the figures put here.)"""
    out, env = deployed
    efs, cloudwatch = boto_client("efs"), boto_client("cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc)

    def bursting(credits_gib):
        fs = efs.create_file_system(CreationToken=uuid.uuid4().hex, ThroughputMode="bursting")["FileSystemId"]
        if credits_gib is not None:
            cloudwatch.put_metric_data(Namespace="AWS/EFS", MetricData=[
                {"MetricName": "BurstCreditBalance", "Dimensions": [{"Name": "FileSystemId", "Value": fs}],
                 "Timestamp": now - datetime.timedelta(minutes=minutes), "Value": value * 2**30, "Unit": "Bytes"}
                for minutes, value in ((40, 2048), (10, credits_gib))
            ])
        return fs

    def throughput(fs):
        _, rows = doctor(dict(env, MINIWDL__AWS__FS=fs))
        return rows["EFS throughput"]

    low = bursting(50)
    status, text = throughput(low)
    assert status == "warn" and f"{low}: bursting with 50 GiB of burst credits left" in text, text
    assert "fix: switch to elastic throughput (aws efs update-file-system --throughput-mode elastic)" in text

    plenty = bursting(1536)
    status, text = throughput(plenty)
    assert status == "ok" and "bursting, 1.5 TiB of burst credits" in text, text

    status, text = throughput(bursting(None))
    assert status == "warn" and "no burst-credit figures in the last hour" in text, text

    status, text = throughput(out["FileSystemId"])
    assert status == "ok" and text.endswith(f"{out['FileSystemId']}: elastic"), text
