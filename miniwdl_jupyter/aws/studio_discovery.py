"""SageMaker Studio discovery: the domain's EFS, the user's access point and the Batch queue,
found through the SageMaker, EFS and Batch APIs, so `%%wdl --backend aws_batch` and `--submit aws`
work in a Studio space without configuration.

An explicit step of the AWS code, not of loading configuration: `apply_defaults(cfg)` is called
where a Loader is about to be used for AWS work or for the notebook's run root (the aws_batch
backend's global_init and preflight, the aws launcher, the runs layer's entry point). Outside
Studio it costs one missing-file check.

- The user's EFS: the domain's `HomeEfsFileSystemId`; the access point whose POSIX uid and root
  directory are the profile's `HomeEfsFileSystemUid` (and `/<uid>`); mounted in new Studio
  (JupyterLab spaces) at `~/user-default-efs`, in Studio Classic at the home directory. The task
  queue is the Batch queue tagged `MiniwdlStudioEfsId=<fs id>` (as miniwdl-aws finds it).

Everything found is a *default*: a cfg file or MINIWDL__* variable still wins.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from WDL.runtime.config import Loader

from ..config import option
from ..errors import BackendError
from . import api
from ..studio import StudioInfo, detect, metadata_path

_logger = logging.getLogger("miniwdl_jupyter.studio")
QUEUE_TAG = "MiniwdlStudioEfsId"


@dataclass
class StudioSetup:
    """What `discover` found; `problem` is the paragraph to show when there is no EFS."""

    info: StudioInfo
    fs: str = ""
    uid: str = ""
    fsap: str = ""
    mount: str = ""
    task_queue: str = ""
    problem: str = ""


_found: Dict[tuple, Any] = {}  # a StudioSetup, or the BackendError that looking it up raised
_found_lock = threading.Lock()


def discover(cfg: Loader, info: Optional[StudioInfo] = None) -> Optional[StudioSetup]:
    """Find the domain's EFS, the user's access point and the task queue through the SageMaker, EFS
    and Batch APIs (once per process). None outside Studio."""
    info = info or detect()
    if info is None:
        return None
    key = (info.domain_id, info.user_profile, option(cfg, "aws", "endpoint_url"))
    with _found_lock:
        if key not in _found:
            try:
                _found[key] = _discover(cfg, info)
            except BackendError as exn:  # remembered too: configuration is loaded for every run
                _found[key] = exn
        if isinstance(_found[key], BackendError):
            raise _found[key]
        return _found[key]


def _region(cfg: Loader, info: StudioInfo) -> str:
    return option(cfg, "aws", "region") or info.region


def _call(cfg: Loader, service: str, operation: str, info: StudioInfo, what: str = "", advice: str = "", **params: Any) -> Dict[str, Any]:
    settings = {"region": _region(cfg, info), "endpoint_url": option(cfg, "aws", "endpoint_url")}
    # few retries: this runs before a notebook's first run, and must not hang a Studio without access
    return api.call(cfg, operation, service=service, settings=settings, retries=2, what=what, advice=advice, **params)


def _discover(cfg: Loader, info: StudioInfo) -> StudioSetup:
    setup = StudioSetup(info=info)
    domain = _call(
        cfg,
        "sagemaker",
        "describe_domain",
        info,
        DomainId=info.domain_id,
        what=f"SageMaker Studio domain {info.domain_id}, looking for its EFS",
        advice=(
            f"check the domain id ({info.domain_id}, DomainId in {metadata_path()}), that this app's execution role "
            f"may call sagemaker:DescribeDomain, and the region ({_region(cfg, info) or 'none'}: [aws] region); "
            "or configure [aws] fs, fsap, mount and task_queue yourself (docs/aws.md)"
        ),
    )
    setup.fs = domain.get("HomeEfsFileSystemId", "") or ""
    if not setup.fs:
        setup.problem = no_efs_paragraph(info)
        return setup
    setup.mount = str(Path.home()) if info.classic else str(Path.home() / "user-default-efs")
    setup.uid = _profile_uid(cfg, info, setup.mount)
    points = _call(cfg, "efs", "describe_access_points", info, FileSystemId=setup.fs).get("AccessPoints", [])
    for point in points:
        uid = str((point.get("PosixUser") or {}).get("Uid", ""))
        root = (point.get("RootDirectory") or {}).get("Path", "")
        if uid == setup.uid and root in (f"/{setup.uid}", f"/{setup.uid}/"):
            setup.fsap = point["AccessPointId"]
            break
    setup.task_queue = _tagged_queue(cfg, info, setup.fs)
    _logger.info("SageMaker Studio: EFS %s, uid %s, access point %s, task queue %s", setup.fs, setup.uid, setup.fsap or "-", setup.task_queue or "-")
    return setup


def _profile_uid(cfg: Loader, info: StudioInfo, mount: str) -> str:
    """The profile's HomeEfsFileSystemUid; where the API does not answer (permissions), the owner
    of the mounted EFS directory, which Studio creates as that uid."""
    try:
        profile = _call(cfg, "sagemaker", "describe_user_profile", info, DomainId=info.domain_id, UserProfileName=info.user_profile)
        if profile.get("HomeEfsFileSystemUid"):
            return str(profile["HomeEfsFileSystemUid"])
    except BackendError as exn:
        _logger.info("DescribeUserProfile failed (%s); taking the uid from %s", exn, mount)
    try:
        return str(os.stat(mount).st_uid)
    except OSError:
        return ""


def _tagged_queue(cfg: Loader, info: StudioInfo, fs: str) -> str:
    token = None
    while True:
        params: Dict[str, Any] = {"nextToken": token} if token else {}
        page = _call(cfg, "batch", "describe_job_queues", info, **params)
        for queue in page.get("jobQueues", []):
            if (queue.get("tags") or {}).get(QUEUE_TAG) == fs and queue.get("state") == "ENABLED":
                return queue["jobQueueName"]
        token = page.get("nextToken")
        if not token:
            return ""


def no_efs_paragraph(info: StudioInfo) -> str:
    return (
        f"This SageMaker Studio domain ({info.domain_id}) has no EFS file system, so AWS Batch jobs have no "
        "filesystem to share with this notebook (new domains made with quick setup get none). Fix: create an EFS "
        "file system in the domain's VPC, an access point for your user (POSIX uid = your profile's "
        "HomeEfsFileSystemUid, root directory /<uid>), mount it in the space, and set [aws] fs, fsap and mount "
        "(and [aws] task_queue, or tag the queue MiniwdlStudioEfsId=<fs id>); or use a domain with EFS. "
        "See docs/aws.md. Runs on the docker_run or local backend work without it."
    )


def aws_defaults(cfg: Loader, info: StudioInfo) -> Dict[str, Dict[str, str]]:
    """Configuration defaults for Studio: the region (from the app's metadata), and, when they
    can be found, the EFS, access point, mount and task queue, and the run root on the EFS (so
    Batch jobs can see the run directories)."""
    found: Dict[str, Dict[str, str]] = {"aws": {"region": info.region} if info.region else {}}
    try:
        setup = discover(cfg, info)
    except BackendError as exn:  # no permissions, no network: Studio still works for local runs
        _logger.warning("SageMaker Studio detected, but its EFS and queues could not be looked up: %s", exn)
        return found
    if setup is None or setup.problem:
        return found
    aws = {"fs": setup.fs, "fsap": setup.fsap, "mount": setup.mount, "task_queue": setup.task_queue}
    found["aws"].update({k: v for k, v in aws.items() if v})
    found["jupyter"] = {"root": os.path.join(setup.mount, "wdl_runs")}
    return found


def apply_defaults(cfg: Loader) -> Loader:
    """In SageMaker Studio, put what discovery found into `cfg` as defaults: in place of
    defaults.cfg's, under everything the user configured (cfg file, MINIWDL__* variables,
    overrides). A no-op outside Studio; the API calls are made once per process."""
    info = detect()
    if info is None:
        return cfg
    # miniwdl's Loader has no public way to replace a default (plugin_defaults keeps the first
    # one, here defaults.cfg's empty values); its own override() writes _defaults the same way.
    cfg._defaults.read_dict(aws_defaults(cfg, info))
    return cfg


def check(cfg: Loader) -> None:
    """Before an AWS run starts in Studio without a configured filesystem: why discovery failed
    (the DescribeDomain error and what to check), or the no-EFS paragraph."""
    info = detect()
    if info is None or option(cfg, "aws", "fs") or option(cfg, "aws", "host_path"):
        return
    setup = discover(cfg, info)
    if setup is not None and setup.problem:
        raise BackendError(setup.problem)
