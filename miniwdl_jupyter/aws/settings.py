"""`[aws]` settings shared by the aws_batch backend and the aws launcher, each read with an explicit
default (any miniwdl Loader works); per-call overrides; the job properties every job shares. In
SageMaker Studio or with `[aws] stack`, what is not configured comes from discovery.apply_defaults, which the
callers run first (an explicit step, see there)."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from WDL.runtime import config

from ..config import option
from ..errors import BackendError
from . import discovery, studio_discovery


class BatchSettings:
    """`[aws]` settings, each read with an explicit default (any miniwdl Loader works)."""

    def __init__(self, cfg: config.Loader):
        self.cfg = cfg
        get = lambda key: option(cfg, "aws", key)  # noqa: E731
        self.task_queue = get("task_queue")
        self.task_queue_fallback = get("task_queue_fallback")
        self.fs = get("fs")
        self.fsap = get("fsap")
        self.mount = os.path.abspath(os.path.expanduser(get("mount"))).rstrip("/") or "/"
        self.host_path = get("host_path")
        self.job_role_arn = get("job_role_arn")
        self.execution_role_arn = get("execution_role_arn")
        self.submit_rate = option(cfg, "aws", "submit_rate", "float")
        self.timeout = option(cfg, "aws", "timeout", "int")
        self.default_memory_mb = option(cfg, "aws", "default_memory_mb", "int")
        self.runnable_timeout = option(cfg, "aws", "runnable_timeout", "float")
        self.runnable_fail = option(cfg, "aws", "runnable_fail", "bool")
        self.container_properties: Dict[str, Any] = option(cfg, "aws", "container_properties", "dict")
        self._call_overrides: Dict[str, Any] = option(cfg, "aws", "call_overrides", "dict")

    def check(self) -> None:
        studio_discovery.check(self.cfg)  # in Studio: why its EFS was not found, and the fix
        if not self.task_queue:
            raise BackendError(
                "the aws_batch backend needs a job queue: set [aws] task_queue (MINIWDL__AWS__TASK_QUEUE); "
                "in SageMaker Studio, tag the queue MiniwdlStudioEfsId=<your EFS id> (docs/aws.md)"
            )
        if not (self.fs or self.host_path):
            raise BackendError(
                "the aws_batch backend needs the shared filesystem its jobs mount: set [aws] fs (and fsap) to "
                "your EFS file system (and access point), or [aws] host_path to a directory every job host mounts; "
                "[aws] mount is where it is mounted, here and in the jobs (docs/aws.md)"
            )
        if not os.path.isdir(self.mount):
            raise BackendError(f"[aws] mount {self.mount} is not a directory here: mount the shared filesystem there, or set [aws] mount")

    def on_mount(self, path: str) -> bool:
        path = os.path.abspath(path)
        return path == self.mount or path.startswith(self.mount + os.sep)

    def check_on_mount(self, host_dir: str) -> None:
        if not self.on_mount(host_dir):
            raise BackendError(
                f"the run directory {host_dir} is not on the shared filesystem mounted at {self.mount}, so AWS Batch "
                f"jobs cannot see it. Fix: put runs under it ([jupyter] root = {self.mount}/wdl_runs, or --dir)"
            )

    def volume(self) -> Dict[str, Any]:
        # host_path, when set, wins: it says the job hosts mount the filesystem themselves (also
        # where EFS was found in Studio but the compute environment mounts it another way)
        if self.fs and not self.host_path:
            efs: Dict[str, Any] = {"fileSystemId": self.fs, "transitEncryption": "ENABLED"}
            if self.fsap:
                efs["authorizationConfig"] = {"accessPointId": self.fsap, "iam": "DISABLED"}
            return {"name": "shared", "efsVolumeConfiguration": efs}
        return {"name": "shared", "host": {"sourcePath": self.host_path}}

    def task_queues(self) -> List[str]:
        return [q for q in (self.task_queue, self.task_queue_fallback) if q]

    def job_properties(self, image: str, vcpus: int, memory_mib: int, job_role_arn: str, gpus: int = 0) -> Dict[str, Any]:
        """containerProperties of a job that mounts the shared filesystem where this process does:
        task jobs and head jobs alike."""
        resources = [{"type": "VCPU", "value": str(vcpus)}, {"type": "MEMORY", "value": str(memory_mib)}]
        if gpus:
            resources.append({"type": "GPU", "value": str(gpus)})
        props: Dict[str, Any] = {
            "image": image,
            "resourceRequirements": resources,
            "volumes": [self.volume()],
            "mountPoints": [{"sourceVolume": "shared", "containerPath": self.mount, "readOnly": False}],
        }
        if job_role_arn:
            props["jobRoleArn"] = job_role_arn
        if self.execution_role_arn:
            props["executionRoleArn"] = self.execution_role_arn
        return props

    def call_overrides(self, run_id: str) -> Dict[str, Any]:
        """`[aws] call_overrides` entries that apply to a call, by its name: the call id
        (`call-greet-2` / `greet-2`), or the call name without its scatter index (`greet`).
        More specific keys win."""
        merged: Dict[str, Any] = {}
        for key in sorted(call_keys(run_id), key=len):
            entry = self._call_overrides.get(key)
            if isinstance(entry, dict):
                merged = {**merged, **entry, "container": {**merged.get("container", {}), **entry.get("container", {})}}
        return merged


def preflight(cfg: config.Loader) -> None:
    """Checks for the runs layer to make before a run starts: the queue and shared filesystem are
    configured (or, in SageMaker Studio, found: the one step here that calls AWS) and mounted here."""
    BatchSettings(discovery.apply_defaults(cfg)).check()


def call_keys(run_id: str) -> List[str]:
    """Names a call answers to in [aws] call_overrides: `call-greet-2-x`, `greet-2-x` (miniwdl's
    call id, with scatter index and value tag), `greet-2` and `greet` (WDL call names have no '-')."""
    bare = run_id[len("call-"):] if run_id.startswith("call-") else run_id
    parts = bare.split("-")
    keys = {run_id, bare, parts[0]}
    if len(parts) > 1 and parts[1].isdigit():
        keys.add("-".join(parts[:2]))
    return list(keys)
