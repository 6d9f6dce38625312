"""`miniwdl-jupyter aws doctor` / `%wdl doctor aws`: is the AWS setup able to run tasks? One row per
check, each failing row with its fix, before a run hangs RUNNABLE or EFS throttles. Read-only: it
only describes (and writes one probe file on the shared filesystem, removed at once).

Checks, in order: credentials and region; each task/workflow queue ENABLED and VALID, with its
compute environments' state and max vCPUs; the shared filesystem mounted here and writable, and the
one the queue is tagged with; the access point's uid and root directory against this user; the
mount targets' security groups admitting NFS (2049) from the compute environments; the roles'
permissions (IAM policy simulation: SubmitJob, PassRole, image reads); EFS throughput mode and, when
bursting, its burst credits (CloudWatch); SubmitJob headroom.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

from WDL.runtime.config import Loader

from ..config import option
from ..errors import BackendError
from . import api, discovery, studio_discovery
from .settings import BatchSettings

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
SUBMIT_QUOTA_PER_SECOND = 50  # AWS Batch's default SubmitJob rate quota per account and region
LOW_BURST_CREDITS = 200 * 2**30  # bytes; a new file system starts with 2.1 TiB


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class Doctor:
    """Runs the checks against one configuration; `rows` is the table."""

    cfg: Loader
    rows: List[Check] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        self.rows.append(Check(name, status, detail, fix if status in (FAIL, WARN) else ""))

    def call(self, operation: str, service: str = "batch", **params: Any) -> Dict[str, Any]:
        # few retries: a doctor answers in seconds, and reports what does not answer
        return api.call(self.cfg, operation, service=service, retries=1, **params)

    def guarded(self, name: str, check: Callable[[], None]) -> None:
        """A check whose API call fails becomes its own failing row, and the others still run."""
        try:
            check()
        except BackendError as exn:
            self.add(name, FAIL, str(exn).split(". Fix: ")[0], str(exn).split(". Fix: ")[-1] if ". Fix: " in str(exn) else "")


def diagnose(cfg: Loader) -> List[Check]:
    doctor = Doctor(cfg)
    try:
        discovery.apply_defaults(cfg)
    except BackendError as exn:
        doctor.add("settings", FAIL, str(exn))
        return doctor.rows
    settings = BatchSettings(cfg)
    if not _credentials(doctor):
        return doctor.rows  # nothing else can answer
    queues = doctor_queues(doctor, settings)
    doctor.guarded("shared filesystem", lambda: _filesystem(doctor, settings, queues))
    doctor.guarded("access point", lambda: _access_point(doctor, settings))
    doctor.guarded("NFS from the jobs", lambda: _security_groups(doctor, settings, queues))
    doctor.guarded("permissions", lambda: _permissions(doctor, settings, queues))
    doctor.guarded("EFS throughput", lambda: _throughput(doctor, settings))
    doctor.guarded("SubmitJob headroom", lambda: _headroom(doctor, settings, queues))
    return doctor.rows


def _credentials(doctor: Doctor) -> bool:
    try:
        who = doctor.call("get_caller_identity", service="sts")
    except BackendError as exn:
        doctor.add("credentials", FAIL, str(exn).split(". Fix: ")[0], "configure AWS credentials (aws configure, AWS_PROFILE, an instance or Studio role) and [aws] region")
        return False
    region = api.client(doctor.cfg, "sts").meta.region_name
    doctor.add("credentials", OK, f"{who['Arn']} in {region}")
    return True


def doctor_queues(doctor: Doctor, settings: BatchSettings) -> Dict[str, Dict[str, Any]]:
    """Each configured queue: a row with its state and its compute environments'; returns the
    queues found, by the name they were configured with."""
    named = {"task queue": settings.task_queue, "fallback queue": settings.task_queue_fallback, "workflow queue": option(doctor.cfg, "aws", "workflow_queue")}
    if not settings.task_queue:
        doctor.add("task queue", FAIL, "no task queue configured", "set [aws] task_queue, or [aws] stack to a stack from `miniwdl-jupyter aws deploy`")
    wanted = [q for q in named.values() if q]
    found: Dict[str, Dict[str, Any]] = {}
    if not wanted:
        return found
    try:
        described = doctor.call("describe_job_queues", jobQueues=wanted)["jobQueues"]
    except BackendError as exn:
        doctor.add("queues", FAIL, str(exn).split(". Fix: ")[0], "check [aws] task_queue / workflow_queue and batch:DescribeJobQueues")
        return found
    by_key = {q["jobQueueName"]: q for q in described}
    by_key.update({q["jobQueueArn"]: q for q in described})
    environments = {
        ce["computeEnvironmentArn"]: ce
        for ce in doctor.call(
            "describe_compute_environments",
            computeEnvironments=sorted({o["computeEnvironment"] for q in described for o in q.get("computeEnvironmentOrder", [])}),
        )["computeEnvironments"]
    } if described else {}
    for label, name in named.items():
        if not name:
            continue
        queue = by_key.get(name)
        if queue is None:
            doctor.add(label, FAIL, f"{name} does not exist in this region", f"check [aws] {_setting(label)} and [aws] region")
            continue
        found[name] = queue
        ces = [environments.get(o["computeEnvironment"], {"computeEnvironmentName": o["computeEnvironment"]}) for o in queue.get("computeEnvironmentOrder", [])]
        ce_text = "; ".join(_describe_ce(ce) for ce in ces) or "no compute environment"
        broken = [ce for ce in ces if ce.get("state") != "ENABLED" or ce.get("status") != "VALID"]
        short = queue["jobQueueName"]
        if queue.get("state") != "ENABLED":
            doctor.add(label, FAIL, f"{short} is {queue.get('state')} ({ce_text})", f"enable it: aws batch update-job-queue --job-queue {short} --state ENABLED")
        elif queue.get("status") not in ("VALID", "UPDATING", None):
            doctor.add(label, FAIL, f"{short} is {queue.get('status')}: {queue.get('statusReason', '')}", "fix the queue's compute environments (see its statusReason), or deploy the stack again")
        elif broken or not ces:
            doctor.add(label, FAIL, f"{short}: {ce_text}", "enable the compute environment and fix what its statusReason says")
        else:
            doctor.add(label, OK, f"{short} ENABLED, VALID; {ce_text}")
    return found


def _setting(label: str) -> str:
    return {"task queue": "task_queue", "fallback queue": "task_queue_fallback", "workflow queue": "workflow_queue"}[label]


def _describe_ce(ce: Dict[str, Any]) -> str:
    resources = ce.get("computeResources") or {}
    size = f", max {resources['maxvCpus']} vCPUs" if "maxvCpus" in resources else ""
    kind = resources.get("type") or ce.get("type", "")
    return f"{ce.get('computeEnvironmentName', '?')} ({kind} {ce.get('state', '?')} {ce.get('status', '?')}{size})"


def _filesystem(doctor: Doctor, settings: BatchSettings, queues: Dict[str, Dict[str, Any]]) -> None:
    where = settings.host_path or settings.mount
    if not os.path.isdir(settings.mount):
        doctor.add("shared filesystem", FAIL, f"[aws] mount {settings.mount} is not a directory here", f"mount the EFS ({settings.fs or '[aws] fs'}) at {settings.mount}, or set [aws] mount")
        return
    if settings.fs and not settings.host_path and not os.path.ismount(settings.mount):
        doctor.add("shared filesystem", FAIL, f"nothing is mounted at {settings.mount}", f"mount {settings.fs} there (mount -t efs {settings.fs}:/ {settings.mount})")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=settings.mount, prefix=".miniwdl-jupyter-doctor-"):
            pass
    except OSError as exn:
        doctor.add("shared filesystem", FAIL, f"{settings.mount} is not writable here: {exn.strerror}", "check the access point's uid against yours (below) and the directory's permissions")
        return
    tagged = {q.get("tags", {}).get("MiniwdlStudioEfsId") for q in queues.values()} - {None}
    if settings.fs and tagged and settings.fs not in tagged:
        doctor.add(
            "shared filesystem", FAIL, f"the queues are tagged MiniwdlStudioEfsId={', '.join(sorted(tagged))}, not {settings.fs}",
            "set [aws] fs to the file system the queues' compute environments mount, or tag the queues with yours",
        )
        return
    doctor.add("shared filesystem", OK, f"{settings.mount} writable" + (f" (EFS {settings.fs})" if settings.fs else f" (host path {where})"))


def _access_point(doctor: Doctor, settings: BatchSettings) -> None:
    if not settings.fsap:
        doctor.add("access point", SKIP if settings.host_path or not settings.fs else WARN, "none configured",
                   "set [aws] fsap: jobs then write as your uid, so the notebook can read and delete their files")
        return
    points = doctor.call("describe_access_points", service="efs", AccessPointId=settings.fsap)["AccessPoints"]
    if not points:
        doctor.add("access point", FAIL, f"{settings.fsap} does not exist", "check [aws] fsap")
        return
    point = points[0]
    uid = str((point.get("PosixUser") or {}).get("Uid", ""))
    root = (point.get("RootDirectory") or {}).get("Path", "/")
    mine = _my_uid(doctor)
    if settings.fs and point.get("FileSystemId") != settings.fs:
        doctor.add("access point", FAIL, f"{settings.fsap} belongs to {point.get('FileSystemId')}, not {settings.fs}", "use an access point of [aws] fs")
    elif uid != mine:
        doctor.add("access point", FAIL, f"{settings.fsap} writes as uid {uid or 'none'}, you are uid {mine}",
                   f"use an access point with POSIX uid {mine} and root /{mine} (miniwdl-jupyter aws deploy --uid {mine}), or set [aws] fsap to yours")
    elif root.rstrip("/") != f"/{mine}":
        doctor.add("access point", WARN, f"{settings.fsap} is rooted at {root}, not /{mine}", f"root it at /{mine}, as Studio and miniwdl-aws expect")
    else:
        doctor.add("access point", OK, f"{settings.fsap}: uid {uid}, root {root}")


def _my_uid(doctor: Doctor) -> str:
    """The uid jobs should write as: in SageMaker Studio the profile's EFS uid (which differs from
    the space's own user), else this process's."""
    setup = studio_discovery.discover(doctor.cfg)
    return setup.uid if setup is not None and setup.uid else str(os.getuid())


def _security_groups(doctor: Doctor, settings: BatchSettings, queues: Dict[str, Dict[str, Any]]) -> None:
    if not settings.fs:
        doctor.add("NFS from the jobs", SKIP, "no EFS configured")
        return
    ce_arns = sorted({o["computeEnvironment"] for q in queues.values() for o in q.get("computeEnvironmentOrder", [])})
    job_groups = set()
    for ce in doctor.call("describe_compute_environments", computeEnvironments=ce_arns)["computeEnvironments"] if ce_arns else []:
        job_groups.update((ce.get("computeResources") or {}).get("securityGroupIds", []))
    targets = doctor.call("describe_mount_targets", service="efs", FileSystemId=settings.fs)["MountTargets"]
    if not targets:
        doctor.add("NFS from the jobs", FAIL, f"{settings.fs} has no mount target", "create a mount target in each subnet of the compute environments")
        return
    target_groups = set()
    for target in targets:
        target_groups.update(doctor.call("describe_mount_target_security_groups", service="efs", MountTargetId=target["MountTargetId"])["SecurityGroups"])
    admitted = set()
    anyone = False
    for group in doctor.call("describe_security_groups", service="ec2", GroupIds=sorted(target_groups))["SecurityGroups"]:
        for rule in group.get("IpPermissions", []):
            if not (rule.get("IpProtocol") == "-1" or (rule.get("IpProtocol") == "tcp" and rule.get("FromPort", 0) <= 2049 <= rule.get("ToPort", 0))):
                continue
            admitted.update(pair["GroupId"] for pair in rule.get("UserIdGroupPairs", []))
            anyone = anyone or bool(rule.get("IpRanges"))
    if job_groups and job_groups & admitted or (not job_groups and admitted) or anyone:
        doctor.add("NFS from the jobs", OK, f"mount targets' groups {', '.join(sorted(target_groups))} admit 2049 from {', '.join(sorted(job_groups & admitted) or ['an address range'])}")
    else:
        doctor.add(
            "NFS from the jobs", FAIL,
            f"the mount targets' security groups ({', '.join(sorted(target_groups))}) do not admit NFS (tcp 2049) from the jobs' ({', '.join(sorted(job_groups)) or 'none'})",
            f"aws ec2 authorize-security-group-ingress --group-id {sorted(target_groups)[0]} --protocol tcp --port 2049 --source-group {sorted(job_groups)[0] if job_groups else '<jobs group>'}",
        )


def _permissions(doctor: Doctor, settings: BatchSettings, queues: Dict[str, Dict[str, Any]]) -> None:
    """IAM policy simulation of what each role must be allowed: the head-job role (or, without
    one, this caller) submits task jobs and passes the task roles; an ECR head image is read by
    the execution role, which pulls images for Batch (or, without one, by the head-job role)."""
    head_role = option(doctor.cfg, "aws", "head_job_role_arn")
    who = head_role or _caller_role(doctor)
    if not who:
        doctor.add("permissions", SKIP, "the caller is not an IAM role or user that can be simulated")
        return
    task_queue = queues.get(settings.task_queue, {}).get("jobQueueArn", "*")
    wanted = [(who, "batch:SubmitJob", task_queue)]
    if settings.job_role_arn:
        wanted.append((who, "iam:PassRole", settings.job_role_arn))
    if settings.execution_role_arn:
        wanted.append((who, "iam:PassRole", settings.execution_role_arn))
    image = option(doctor.cfg, "aws", "head_image")
    if image and ".dkr.ecr." in image:
        wanted.append((settings.execution_role_arn or who, "ecr:BatchGetImage", _ecr_repository_arn(image)))
    denied: Dict[str, List[str]] = {}
    for principal, action, resource in wanted:
        result = doctor.call("simulate_principal_policy", service="iam", PolicySourceArn=principal, ActionNames=[action], ResourceArns=[resource])
        decisions = [r["EvalDecision"] for r in result.get("EvaluationResults", [])]
        if decisions != ["allowed"]:
            denied.setdefault(principal.rsplit("/", 1)[-1], []).append(f"{action} on {resource.rsplit(':', 1)[-1]}")
    if denied:
        roles = sorted(denied)
        doctor.add(
            "permissions", FAIL, "; ".join(f"{role} may not: {'; '.join(denied[role])}" for role in roles),
            f"add these actions to {' and '.join(roles)}'s policy (the stack's roles have them: miniwdl-jupyter aws deploy)",
        )
    else:
        doctor.add("permissions", OK, "; ".join(
            f"{principal.rsplit('/', 1)[-1]} may " + ", ".join(a for p, a, _ in wanted if p == principal)
            for principal in dict.fromkeys(p for p, _, _ in wanted)
        ))


def _caller_role(doctor: Doctor) -> str:
    arn = doctor.call("get_caller_identity", service="sts")["Arn"]
    if ":assumed-role/" in arn:  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION -> the role
        account, rest = arn.split(":")[4], arn.split(":assumed-role/")[1]
        return f"arn:aws:iam::{account}:role/{rest.split('/')[0]}"
    return arn if ":user/" in arn or ":role/" in arn else ""


def _ecr_repository_arn(image: str) -> str:
    registry, _, path = image.partition("/")
    account, region = registry.split(".")[0], registry.split(".")[3]
    return f"arn:aws:ecr:{region}:{account}:repository/{path.split(':')[0].split('@')[0]}"


def _throughput(doctor: Doctor, settings: BatchSettings) -> None:
    if not settings.fs:
        doctor.add("EFS throughput", SKIP, "no EFS configured")
        return
    fs = doctor.call("describe_file_systems", service="efs", FileSystemId=settings.fs)["FileSystems"][0]
    mode = fs.get("ThroughputMode", "bursting")
    if mode != "bursting":
        doctor.add("EFS throughput", OK, f"{settings.fs}: {mode}")
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    points = doctor.call(
        "get_metric_statistics", service="cloudwatch", Namespace="AWS/EFS", MetricName="BurstCreditBalance",
        Dimensions=[{"Name": "FileSystemId", "Value": settings.fs}], StartTime=now - datetime.timedelta(hours=1),
        EndTime=now, Period=300, Statistics=["Minimum"],
    )["Datapoints"]
    if not points:
        doctor.add("EFS throughput", WARN, f"{settings.fs}: bursting, no burst-credit figures in the last hour", "switch to elastic throughput (aws efs update-file-system --throughput-mode elastic)")
        return
    credits = min(p["Minimum"] for p in points)
    if credits < LOW_BURST_CREDITS:
        doctor.add("EFS throughput", WARN, f"{settings.fs}: bursting with {credits / 2**30:.0f} GiB of burst credits left",
                   "switch to elastic throughput (aws efs update-file-system --throughput-mode elastic) before a big run")
    else:
        doctor.add("EFS throughput", OK, f"{settings.fs}: bursting, {credits / 2**40:.1f} TiB of burst credits")


def _headroom(doctor: Doctor, settings: BatchSettings, queues: Dict[str, Dict[str, Any]]) -> None:
    waiting = 0
    for queue in settings.task_queues():
        for status in ("SUBMITTED", "PENDING", "RUNNABLE"):
            waiting += len(doctor.call("list_jobs", jobQueue=queue, jobStatus=status, maxResults=100).get("jobSummaryList", []))
    rate = settings.submit_rate
    detail = f"[aws] submit_rate {rate:g}/s of Batch's {SUBMIT_QUOTA_PER_SECOND}/s SubmitJob quota; {waiting}{'+' if waiting >= 100 else ''} jobs waiting on the task queue(s)"
    if rate > SUBMIT_QUOTA_PER_SECOND:
        doctor.add("SubmitJob headroom", WARN, detail, f"lower [aws] submit_rate to {SUBMIT_QUOTA_PER_SECOND} or less, or ask AWS to raise the quota")
    else:
        doctor.add("SubmitJob headroom", OK, detail)


def failed(rows: List[Check]) -> bool:
    return any(r.status == FAIL for r in rows)


HEADERS = ["", "check", "found", "fix"]


def as_table_rows(rows: List[Check]) -> List[List[str]]:
    return [[r.status, r.name, r.detail, r.fix] for r in rows]


def format_text(rows: List[Check]) -> str:
    """The table for a terminal: status, check and what was found aligned, the fix under a
    failing row."""
    width = max([len(r.name) for r in rows] + [5])
    lines = []
    for r in rows:
        lines.append(f"{r.status:<4}  {r.name:<{width}}  {r.detail}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    return "\n".join(lines)
