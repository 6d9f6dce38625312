"""SageMaker Studio as a place to run: is this process in a Studio app (its resource-metadata
file), and the rules of Studio's Docker daemon, so docker_run and image builds work in a Studio
space without configuration. No AWS API here: docker_run and image builds use it, and they sit
below the AWS code. Finding the domain's EFS, access point and Batch queue through the AWS APIs is
a separate, explicit step of the AWS code: aws/studio_discovery.py.

- Detection: `/opt/ml/metadata/resource-metadata.json` (DomainId, UserProfileName, SpaceName,
  AppType; `MINIWDL_JUPYTER_STUDIO_METADATA` names another file, for tests).
- Docker in Studio (`DockerSettings.EnableDockerAccess`): only `--network sagemaker`, no
  privileged containers, no BuildKit, Engine API 1.41 only.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

_logger = logging.getLogger("miniwdl_jupyter.studio")
METADATA_PATH = "/opt/ml/metadata/resource-metadata.json"
DOCKER_API_VERSION = "1.41"
DOCKER_NETWORK = "sagemaker"


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
