"""SageMaker Studio: detect it, find its EFS, access point and Batch queue, and follow the rules of
its Docker daemon, so `%%wdl --backend aws_batch`, `--submit aws`, docker_run and image builds
work in a Studio space without configuration.

- Detection: `/opt/ml/metadata/resource-metadata.json` (DomainId, UserProfileName, SpaceName,
  AppType; `MINIWDL_JUPYTER_STUDIO_METADATA` names another file, for tests).
- The user's EFS: the domain's `HomeEfsFileSystemId`; the access point whose POSIX uid and root
  directory are the profile's `HomeEfsFileSystemUid` (and `/<uid>`); mounted in new Studio
  (JupyterLab spaces) at `~/user-default-efs`, in Studio Classic at the home directory. The task
  queue is the Batch queue tagged `MiniwdlStudioEfsId=<fs id>` (as miniwdl-aws finds it).
- Docker in Studio (`DockerSettings.EnableDockerAccess`): only `--network sagemaker`, no
  privileged containers, no BuildKit, Engine API 1.41 only.

Everything found is a *default*: a cfg file or MINIWDL__* variable still wins.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from WDL.runtime.config import Loader

from .errors import BackendError

_logger = logging.getLogger("miniwdl_jupyter.studio")
METADATA_PATH = "/opt/ml/metadata/resource-metadata.json"
DOCKER_API_VERSION = "1.41"
DOCKER_NETWORK = "sagemaker"
QUEUE_TAG = "MiniwdlStudioEfsId"


@dataclass
class StudioInfo:
    domain_id: str
    user_profile: str
    space: str
    app_type: str
    region: str
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def classic(self) -> bool:
        """Studio Classic (home on EFS) rather than new Studio (JupyterLab/Code Editor spaces)."""
        return self.app_type in ("JupyterServer", "KernelGateway")


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


def metadata_path() -> Path:
    return Path(os.environ.get("MINIWDL_JUPYTER_STUDIO_METADATA", METADATA_PATH))


def detect(path: Optional[os.PathLike] = None) -> Optional[StudioInfo]:
    """The Studio app this process runs in, or None outside Studio."""
    path = Path(path) if path else metadata_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not data.get("DomainId"):
        return None
    arn = data.get("ResourceArn", "")
    region = arn.split(":")[3] if arn.count(":") >= 5 else os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", ""))
    return StudioInfo(
        domain_id=data["DomainId"],
        user_profile=data.get("UserProfileName", ""),
        space=data.get("SpaceName", os.environ.get("SAGEMAKER_SPACE_NAME", "")),
        app_type=data.get("AppType", os.environ.get("SAGEMAKER_APP_TYPE", "")),
        region=region,
        metadata=data,
    )


_found: Dict[tuple, Any] = {}  # a StudioSetup, or the BackendError that looking it up raised
_found_lock = threading.Lock()


def discover(cfg: Loader, info: Optional[StudioInfo] = None) -> Optional[StudioSetup]:
    """Find the domain's EFS, the user's access point and the task queue through the SageMaker, EFS
    and Batch APIs (once per process). None outside Studio."""
    info = info or detect()
    if info is None:
        return None
    key = (info.domain_id, info.user_profile, cfg.get("aws", "endpoint_url", ""))
    with _found_lock:
        if key not in _found:
            try:
                _found[key] = _discover(cfg, info)
            except BackendError as exn:  # remembered too: configuration is loaded for every run
                _found[key] = exn
        if isinstance(_found[key], BackendError):
            raise _found[key]
        return _found[key]


def _call(cfg: Loader, service: str, operation: str, info: StudioInfo, **params: Any) -> Dict[str, Any]:
    from .backends import batch_api

    settings = {"region": cfg.get("aws", "region", "") or info.region, "endpoint_url": cfg.get("aws", "endpoint_url", "")}
    # few retries: this runs when configuration is loaded, and must not hang a Studio without access
    return batch_api.call(cfg, operation, service=service, settings=settings, retries=2, **params)


def _discover(cfg: Loader, info: StudioInfo) -> StudioSetup:
    setup = StudioSetup(info=info)
    domain = _call(cfg, "sagemaker", "describe_domain", info, DomainId=info.domain_id)
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


def aws_defaults(cfg: Loader) -> Dict[str, Dict[str, str]]:
    """Configuration defaults for Studio: the EFS, access point, mount, task queue and region, and
    the run root on the EFS (so Batch jobs can see the run directories). {} outside Studio."""
    info = detect()
    if info is None:
        return {}
    try:
        setup = discover(cfg, info)
    except BackendError as exn:  # no permissions, no network: Studio still works for local runs
        _logger.warning("SageMaker Studio detected, but its EFS and queues could not be looked up: %s", exn)
        return {}
    if setup is None or setup.problem:
        return {}
    aws = {"fs": setup.fs, "fsap": setup.fsap, "mount": setup.mount, "task_queue": setup.task_queue, "region": info.region}
    return {
        "aws": {k: v for k, v in aws.items() if v},
        "jupyter": {"root": os.path.join(setup.mount, "wdl_runs")},
    }


def apply_defaults(cfg: Loader) -> Loader:
    """Add the Studio defaults under everything the user configured (no-op outside Studio)."""
    defaults = aws_defaults(cfg)
    if defaults:
        cfg.plugin_defaults(defaults)
    return cfg


def check_aws(cfg: Loader) -> None:
    """Before an AWS run starts in Studio: the no-EFS paragraph, when that is the case."""
    info = detect()
    if info is None or cfg.get("aws", "fs", "") or cfg.get("aws", "host_path", ""):
        return
    setup = discover(cfg, info)
    if setup is not None and setup.problem:
        raise BackendError(setup.problem)


# ---- Docker in Studio ---------------------------------------------------------------------------


def docker_rules() -> bool:
    """Does this process's Docker daemon follow Studio's rules? (Inside Studio, or told so with
    MINIWDL_JUPYTER_STUDIO_DOCKER=1 / 0.)"""
    forced = os.environ.get("MINIWDL_JUPYTER_STUDIO_DOCKER", "")
    if forced:
        return forced.lower() in ("1", "true", "yes")
    return detect() is not None


def docker_environment() -> Dict[str, str]:
    """Variables for the docker CLI under Studio's rules: API 1.41, no BuildKit."""
    return {"DOCKER_API_VERSION": DOCKER_API_VERSION, "DOCKER_BUILDKIT": "0"} if docker_rules() else {}


def prepare_docker_cli() -> None:
    """Set docker_environment() in this process (the miniwdl process of a docker_run run)."""
    for key, value in docker_environment().items():
        os.environ.setdefault(key, value)


def docker_run_args(args: List[str], logger: Optional[logging.Logger] = None) -> List[str]:
    """`docker run` options under Studio's rules: `--network sagemaker` (replacing any other
    network), never `--privileged`."""
    if not docker_rules():
        return args
    out: List[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--privileged":
            (logger or _logger).warning("SageMaker Studio refuses privileged containers: runtime.privileged ignored")
            continue
        if arg in ("--network", "--net"):
            skip = True
            continue
        if arg.startswith(("--network=", "--net=")):
            continue
        out.append(arg)
    run_at = out.index("run") + 1 if "run" in out else len(out)
    return out[:run_at] + ["--network", DOCKER_NETWORK] + out[run_at:]


def docker_client_kwargs() -> Dict[str, Any]:
    """Docker SDK client arguments: Studio answers Engine API 1.41 only (an unversioned /version
    gets a redirect, so the SDK must not auto-detect)."""
    return {"version": DOCKER_API_VERSION} if docker_rules() else {}


def docker_build_kwargs() -> Dict[str, Any]:
    """Docker SDK `api.build` arguments: builds must use the sagemaker network (the SDK's builder
    is the classic one, never BuildKit)."""
    return {"network_mode": DOCKER_NETWORK} if docker_rules() else {}
