"""The AWS infrastructure as one CloudFormation stack (cloudformation.yaml beside this file):
deploy it, destroy it, and read its outputs back as `[aws]` settings.

`[aws] stack = NAME` is then the only AWS setting a run needs: `apply_defaults` (an explicit step,
called by aws.discovery where the AWS code loads its settings) fills the queues, EFS, access point
and roles from the stack's outputs, as defaults under anything configured.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from WDL.runtime.config import Loader

from ..config import option
from ..errors import BackendError, ConfigError
from . import api

TEMPLATE = Path(__file__).with_name("cloudformation.yaml")
# [aws] setting -> the stack output that fills it
SETTING_OUTPUTS = {
    "task_queue": "TaskQueue",
    "task_queue_fallback": "TaskQueueFallback",
    "workflow_queue": "WorkflowQueue",
    "fs": "FileSystemId",
    "fsap": "AccessPointId",
    "job_role_arn": "TaskJobRoleArn",
    "head_job_role_arn": "HeadJobRoleArn",
    "execution_role_arn": "ExecutionRoleArn",
}
# Tags the template gives each queue; deploy applies them again through the Batch API, because
# not every CloudFormation implementation applies job-queue tags (seen: the AWS emulator).
QUEUE_TAGS = {
    "TaskQueue": {"MiniwdlStudioEfsId": "FileSystemId"},
    "WorkflowQueue": {
        "MiniwdlStudioEfsId": "FileSystemId",
        "DefaultTaskQueue": "TaskQueue",
        "DefaultTaskQueueFallback": "TaskQueueFallback",
        "DefaultFsap": "AccessPointId",
        "WorkflowEngineRoleArn": "HeadJobRoleArn",
    },
}
_DONE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE", "IMPORT_COMPLETE")
_POLL_SECONDS = 3.0
_logger = logging.getLogger("miniwdl_jupyter.aws.stack")

Progress = Callable[[str], None]


def template_text() -> str:
    return TEMPLATE.read_text()


def _cfn(cfg: Loader, operation: str, what: str, **params: Any) -> Dict[str, Any]:
    return api.call(cfg, operation, service="cloudformation", what=what, **params)


def outputs(cfg: Loader, stack: str) -> Dict[str, str]:
    """The stack's outputs by key; a clear error when the stack is not there or not usable."""
    found = _cfn(
        cfg,
        "describe_stacks",
        f"CloudFormation stack {stack!r}",
        advice=f"check [aws] stack = {stack} and the region ([aws] region), or deploy it: miniwdl-jupyter aws deploy --stack {stack}",
        StackName=stack,
    )["Stacks"][0]
    if found["StackStatus"] not in _DONE and not found["StackStatus"].endswith("_IN_PROGRESS"):
        raise BackendError(
            f"CloudFormation stack {stack!r} is {found['StackStatus']}: deploy it again "
            f"(miniwdl-jupyter aws deploy --stack {stack}) or destroy it"
        )
    return {o["OutputKey"]: str(o["OutputValue"]) for o in found.get("Outputs", [])}


_cache: Dict[tuple, Dict[str, str]] = {}
_cache_lock = threading.Lock()


def settings_from_stack(cfg: Loader) -> Dict[str, str]:
    """`[aws]` settings from the outputs of `[aws] stack` (once per process and stack); {} when
    no stack is configured."""
    stack = option(cfg, "aws", "stack")
    if not stack:
        return {}
    key = (stack, option(cfg, "aws", "region"), option(cfg, "aws", "endpoint_url"))
    with _cache_lock:
        if key not in _cache:
            found = outputs(cfg, stack)
            _cache[key] = {setting: found[out] for setting, out in SETTING_OUTPUTS.items() if found.get(out)}
        return dict(_cache[key])


def apply_defaults(cfg: Loader) -> Loader:
    """Put the stack's outputs into `cfg` as defaults (under the cfg file, MINIWDL__* variables and
    overrides). A no-op without `[aws] stack`."""
    found = settings_from_stack(cfg)
    if found:
        # as studio_discovery: miniwdl's Loader has no public way to replace a default
        cfg._defaults.read_dict({"aws": found})
    return cfg


# ---- deploy and destroy -------------------------------------------------------------------------


def parameters(
    cfg: Loader,
    *,
    vpc: str = "",
    subnets: Sequence[str] = (),
    new_vpc: bool = False,
    studio_domain: str = "",
    studio_user: str = "",
    uid: Optional[int] = None,
    task_max_vcpus: Optional[int] = None,
) -> Dict[str, str]:
    """The template's parameters from the command's options. A Studio domain gives its VPC, subnets
    and EFS (and, with a user profile, the access point's uid) unless they are given."""
    fs = ""
    if studio_domain:
        domain = api.call(
            cfg, "describe_domain", service="sagemaker", what=f"SageMaker Studio domain {studio_domain}",
            advice="check the domain id (aws sagemaker list-domains) and the region", DomainId=studio_domain,
        )
        fs = domain.get("HomeEfsFileSystemId", "") or ""
        if not (vpc or new_vpc):
            vpc, subnets = domain.get("VpcId", ""), subnets or domain.get("SubnetIds", [])
        if studio_user and uid is None:
            profile = api.call(
                cfg, "describe_user_profile", service="sagemaker", what=f"Studio user profile {studio_user}",
                DomainId=studio_domain, UserProfileName=studio_user,
            )
            if profile.get("HomeEfsFileSystemUid"):
                uid = int(profile["HomeEfsFileSystemUid"])
    if new_vpc and (vpc or subnets):
        raise ConfigError("give either --new-vpc or --vpc with --subnets, not both")
    if not new_vpc and not (vpc and subnets):
        raise ConfigError("say where the stack goes: --vpc ID --subnets A,B (one or two subnets of that VPC), or --new-vpc")
    if len(subnets) > 2:
        raise ConfigError(f"--subnets takes one or two subnets (got {len(subnets)}): EFS mount targets and jobs go there")
    params = {
        "VpcId": "" if new_vpc else vpc,
        "Subnet1": subnets[0] if subnets else "",
        "Subnet2": subnets[1] if len(subnets) > 1 else "",
        "ExistingFileSystemId": fs,
        "UserUid": str(os.getuid() if uid is None else uid),
    }
    if task_max_vcpus:
        params["TaskMaxVcpus"] = str(task_max_vcpus)
    return params


def deploy(cfg: Loader, stack: str, params: Dict[str, str], progress: Progress = _logger.info) -> Dict[str, str]:
    """Create the stack, or update it when it exists; wait for it, reporting each resource event
    through `progress`; return its outputs."""
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    common = dict(StackName=stack, TemplateBody=template_text(), Parameters=given, Capabilities=["CAPABILITY_IAM"])
    since = time.time() - 1
    if _exists(cfg, stack):
        try:
            _cfn(cfg, "update_stack", f"CloudFormation stack {stack!r}", **common)
        except BackendError as exn:
            if "No updates are to be performed" not in str(exn):
                raise
            progress(f"{stack}: already up to date")
            return _tag_queues(cfg, outputs(cfg, stack))
    else:
        _cfn(cfg, "create_stack", f"CloudFormation stack {stack!r}", Tags=[{"Key": "miniwdl-jupyter", "Value": stack}], **common)
    status = _wait(cfg, stack, since, progress)
    if status not in _DONE:
        raise BackendError(f"CloudFormation stack {stack!r} ended {status}: {_first_failure(cfg, stack, since)}")
    return _tag_queues(cfg, outputs(cfg, stack))


def destroy(cfg: Loader, stack: str, delete_data: bool = False, progress: Progress = _logger.info) -> List[str]:
    """Delete the stack. Its EFS file system and S3 bucket are kept (the template retains them),
    unless `delete_data`: then they go too, after the stack (a Studio domain's EFS never does).
    Returns what was kept."""
    found = outputs(cfg, stack)
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in _describe(cfg, stack).get("Parameters", [])}
    since = time.time() - 1
    _cfn(cfg, "delete_stack", f"CloudFormation stack {stack!r}", StackName=stack)
    status = _wait(cfg, stack, since, progress)
    if status not in ("DELETE_COMPLETE", "GONE"):
        raise BackendError(f"CloudFormation stack {stack!r} ended {status}: {_first_failure(cfg, stack, since)}")
    fs, bucket = found.get("FileSystemId", ""), found.get("Bucket", "")
    owned_fs = fs if fs and not params.get("ExistingFileSystemId") else ""
    if not delete_data:
        return [f"EFS {owned_fs}" for _ in [1] if owned_fs] + [f"S3 bucket {bucket}" for _ in [1] if bucket]
    if owned_fs:
        _delete_file_system(cfg, owned_fs, progress)
    if bucket:
        _delete_bucket(cfg, bucket, progress)
    return []


def _describe(cfg: Loader, stack: str) -> Dict[str, Any]:
    return _cfn(cfg, "describe_stacks", f"CloudFormation stack {stack!r}", StackName=stack)["Stacks"][0]


def _exists(cfg: Loader, stack: str) -> bool:
    try:
        return _describe(cfg, stack)["StackStatus"] != "DELETE_COMPLETE"
    except BackendError as exn:
        if "does not exist" in str(exn):
            return False
        raise


def _wait(cfg: Loader, stack: str, since: float, progress: Progress) -> str:
    """Poll the stack's events until it settles; report each new event once. "GONE" when a
    deleted stack can no longer be described."""
    seen: set = set()
    while True:
        try:
            events = _cfn(cfg, "describe_stack_events", f"CloudFormation stack {stack!r}", StackName=stack)["StackEvents"]
        except BackendError as exn:
            if "does not exist" in str(exn):
                return "GONE"
            raise
        for event in reversed(events):
            when = event["Timestamp"].timestamp() if hasattr(event["Timestamp"], "timestamp") else since
            if event["EventId"] in seen or when < since:
                continue
            seen.add(event["EventId"])
            reason = f": {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
            progress(f"{event['LogicalResourceId']} ({event['ResourceType']}) {event['ResourceStatus']}{reason}")
        status = _describe_status(cfg, stack)
        if status == "GONE" or not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(_POLL_SECONDS)


def _describe_status(cfg: Loader, stack: str) -> str:
    try:
        return _describe(cfg, stack)["StackStatus"]
    except BackendError as exn:
        if "does not exist" in str(exn):
            return "GONE"
        raise


def _first_failure(cfg: Loader, stack: str, since: float) -> str:
    try:
        events = _cfn(cfg, "describe_stack_events", f"CloudFormation stack {stack!r}", StackName=stack)["StackEvents"]
    except BackendError:
        return "its events could not be read"
    failed = [e for e in reversed(events) if e["ResourceStatus"].endswith("_FAILED") and e.get("ResourceStatusReason")]
    if not failed:
        return "no resource reported a reason (aws cloudformation describe-stack-events)"
    first = failed[0]
    return f"{first['LogicalResourceId']} ({first['ResourceType']}): {first['ResourceStatusReason']}"


def _tag_queues(cfg: Loader, found: Dict[str, str]) -> Dict[str, str]:
    for queue_output, tags in QUEUE_TAGS.items():
        queue = found.get(queue_output, "")
        if not queue:
            continue
        described = api.call(cfg, "describe_job_queues", what=f"job queue {queue}", jobQueues=[queue])["jobQueues"]
        if not described:
            continue
        wanted = {tag: found[out] for tag, out in tags.items() if found.get(out)}
        if {k: described[0].get("tags", {}).get(k) for k in wanted} != wanted:
            api.call(cfg, "tag_resource", what=f"job queue {queue}", resourceArn=described[0]["jobQueueArn"], tags=wanted)
    return found


def _delete_file_system(cfg: Loader, fs: str, progress: Progress) -> None:
    """An EFS file system goes only once its mount targets and access points are gone."""
    call = lambda op, **kw: api.call(cfg, op, service="efs", what=f"EFS {fs}", **kw)  # noqa: E731
    for point in call("describe_access_points", FileSystemId=fs).get("AccessPoints", []):
        call("delete_access_point", AccessPointId=point["AccessPointId"])
    for target in call("describe_mount_targets", FileSystemId=fs).get("MountTargets", []):
        call("delete_mount_target", MountTargetId=target["MountTargetId"])
    for _ in range(100):
        if not call("describe_mount_targets", FileSystemId=fs).get("MountTargets"):
            break
        time.sleep(_POLL_SECONDS)
    call("delete_file_system", FileSystemId=fs)
    progress(f"EFS {fs} deleted")


def _delete_bucket(cfg: Loader, bucket: str, progress: Progress) -> None:
    call = lambda op, **kw: api.call(cfg, op, service="s3", what=f"S3 bucket {bucket}", **kw)  # noqa: E731
    while True:
        listed = call("list_object_versions", Bucket=bucket)
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]
        if not doomed:
            break
        call("delete_objects", Bucket=bucket, Delete={"Objects": doomed[:1000], "Quiet": True})
    call("delete_bucket", Bucket=bucket)
    progress(f"S3 bucket {bucket} deleted")
