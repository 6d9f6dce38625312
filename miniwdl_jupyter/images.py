"""Content-addressed container images for notebook steps.

An image is a base image + the step tooling (papermill, ipykernel, nbconvert) + the step's
requirements. Its tag is a hash of everything that goes in (base image id, requirements, the
Dockerfile template, the tooling versions), so an unchanged step never rebuilds: a cache hit is
two `docker image inspect` calls.

Builds honour the host's pip configuration (index-url, extra-index-url, trusted-host, cert...) so
they work behind a private index or a TLS-inspecting proxy. Those settings are copied into a
throw-away *builder* stage only; the final image gets the virtual environment from it and nothing
else, so no credential or certificate lands in a layer of the tagged (or pushed) image. Index
settings are deliberately not part of the tag: they say where packages come from, not what they are,
and reading them costs a pip subprocess that a cache hit should not pay.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from . import config, studio
from .errors import BackendError, ConfigError

if TYPE_CHECKING:  # the Docker SDK is imported when first used: importing it costs ~0.1 s
    from docker import DockerClient
    from WDL.runtime.config import Loader

_logger = logging.getLogger("miniwdl_jupyter.images")
# Our version goes into the tag (a new release may change how images are made). Read from the
# installed metadata, not the package's __init__, so importing this module never cycles.
__version__ = importlib.metadata.version("miniwdl-jupyter")

# What every step image gets besides the user's requirements: the papermill engine, a Python
# kernel, and nbconvert for the HTML rendering (notebook.wdl uses all three).
STEP_TOOLS = ("papermill>=2.4,<3", "ipykernel>=6", "nbconvert>=7", "pyyaml>=6")
VENV = "/opt/notebook-step"
LABEL_PREFIX = "org.miniwdl-jupyter.step"

# Three stages. `runtime` adds python3 + venv when the base lacks them (Debian/Ubuntu bases via
# apt). `builder` holds the forwarded pip settings and installs into a venv; the tooling layer comes
# before the requirements layer so every step image shares it in Docker's layer cache. The final
# stage copies only the venv: the pip settings stay behind in the builder's (local, untagged) layers.
DOCKERFILE_TEMPLATE = """\
FROM {base} AS runtime
RUN if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then \\
      apt-get update -qq \\
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv \\
      && rm -rf /var/lib/apt/lists/*; \\
    fi

FROM runtime AS builder
COPY pip-settings/ /tmp/pip-settings/
ENV PIP_CONFIG_FILE=/tmp/pip-settings/pip.conf PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv {venv}
COPY tools.txt /tmp/tools.txt
RUN {venv}/bin/pip install --progress-bar off -r /tmp/tools.txt
COPY requirements.txt /tmp/requirements.txt
RUN {venv}/bin/pip install --progress-bar off -r /tmp/requirements.txt

FROM runtime
COPY --from=builder {venv} {venv}
ENV PATH={venv}/bin:$PATH
"""

# pip options forwarded into builds. URLs that name the host's own filesystem (file://, paths)
# cannot be reached from inside a build and are skipped; file-valued options are copied in.
_URL_OPTIONS = ("index-url", "extra-index-url", "find-links")
_FILE_OPTIONS = ("cert", "client-cert")
_PLAIN_OPTIONS = ("trusted-host", "proxy", "timeout", "retries")
_OPTION_ALIASES = {"default-timeout": "timeout"}

LogCallback = Callable[[str], None]
# Docker colours a build step's stderr; the log file and the error lines want plain text.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def build_image(
    requirements: Sequence[str] = (),
    *,
    base_image: Optional[str] = None,
    push: Optional[str] = None,
    log: Optional[LogCallback] = None,
    cfg: Optional["Loader"] = None,
) -> str:
    """Build (or find) the step image for `requirements` on `base_image`; return its tag.

    `requirements` are pip requirement lines. `push=REGISTRY` (e.g. `127.0.0.1:5000`) also tags the
    image as REGISTRY/<repository>:<hash>, pushes it, and returns that name, for backends whose
    nodes pull from a registry. Build output goes line by line to `log` (default: this module's
    logger) and to a log file. A failed build raises BackendError with the failing pip line.
    `cfg`: the configuration (`[notebook_steps]`); loaded if not given (this is an entry point of
    the public API).
    """
    loader = cfg or config.load()
    base_image = base_image or config.option(loader, "notebook_steps", "base_image")
    push = push if push is not None else (config.option(loader, "notebook_steps", "push") or None)
    lines = normalize_requirements(requirements)
    client = _docker_client()
    base_id = _base_image_id(client, base_image)
    tag = f"{config.option(loader, 'notebook_steps', 'repository')}:{image_hash(base_id, lines)}"
    if _image_exists(client, tag):
        _logger.info("step image %s is up to date (cache hit)", tag)
    else:
        _build(client, tag, base_image, base_id, lines, log or _logger.info, build_log_path(tag, loader))
    return _push(client, tag, push, log or _logger.info) if push else tag


def build_from_magic_args(
    requirements: Optional[List[str]],
    requirements_file: Optional[str],
    base_image: Optional[str],
    push: Optional[str],
    log: Optional[LogCallback] = None,
    cfg: Optional["Loader"] = None,
) -> str:
    """`%wdl build [-r FILE] [--base IMAGE] [--push REGISTRY] [REQUIREMENT ...]` -> the image tag."""
    lines = list(requirements or [])
    if requirements_file:
        path = Path(requirements_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"requirements file not found: {requirements_file}")
        lines += path.read_text().splitlines()
    return build_image(lines, base_image=base_image, push=push, log=log, cfg=cfg)


def normalize_requirements(requirements: Iterable[str]) -> List[str]:
    """Requirement lines without comments, blanks or duplicates, sorted: the order pip gets them in
    does not change what it installs, so it must not change the tag either."""
    if isinstance(requirements, str):  # one requirement given bare would iterate as characters
        requirements = [requirements]
    lines = set()
    for line in requirements:
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if re.match(r"^(-r|-c|--requirement|--constraint)\b", line):
            # The build sees only the requirements text, not the files it would point to.
            raise ConfigError(f"requirement line {line!r} names another file: list its requirements instead")
        if line:
            lines.add(re.sub(r"\s+", " ", line))
    return sorted(lines)


def image_hash(base_id: str, requirements: Sequence[str]) -> str:
    """The tag's content hash: base image id, requirements, Dockerfile template, tooling versions."""
    content = {
        "base": base_id,
        "requirements": list(requirements),
        "dockerfile": DOCKERFILE_TEMPLATE,
        "tools": list(STEP_TOOLS),
        "venv": VENV,
        "miniwdl_jupyter": __version__,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def build_log_path(tag: str, cfg: "Loader") -> Path:
    """Where the build output of `tag` is kept (the latest attempt)."""
    log_dir = Path(os.path.expanduser(config.option(cfg, "notebook_steps", "build_log_dir")))
    return log_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", tag) + ".log")


# -- pip settings -------------------------------------------------------------------------------


def host_pip_settings() -> Dict[str, str]:
    """The host pip's effective index settings (`pip config list`: env > [install] > [global])."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exn:
        _logger.warning("could not read the host's pip configuration: %s", exn)
        return {}
    by_section: Dict[str, Dict[str, str]] = {}
    for line in out.splitlines():
        match = re.match(r"^(.*)\.([a-z0-9-]+)='(.*)'$", line.strip())
        if match:
            section, key, value = match.groups()
            by_section.setdefault(section, {})[_OPTION_ALIASES.get(key, key)] = value
    settings: Dict[str, str] = {}
    for section in ("global", "install", ":env:"):  # later sections win, as in pip
        settings.update(by_section.get(section, {}))
    return settings


def write_pip_settings(settings: Dict[str, str], dest: Path) -> List[str]:
    """Write pip.conf (+ copied certificate files) for the builder stage into `dest`.

    Returns human-readable notes on what was skipped, for the build log.
    """
    dest.mkdir(parents=True, exist_ok=True)
    options: Dict[str, str] = {}
    notes = []
    for key in _URL_OPTIONS:
        if key not in settings:
            continue
        kept = []
        for url in settings[key].split():
            if re.match(r"^https?://", url):
                kept.append(url)
            else:
                notes.append(f"pip {key} {url} is on this host only: not used inside the build")
        if kept:
            options[key] = "\n    ".join(kept)
    for key in _FILE_OPTIONS:
        if key in settings:
            source = Path(settings[key])
            if source.is_file():
                shutil.copyfile(source, dest / f"{key}.pem")
                options[key] = f"/tmp/pip-settings/{key}.pem"
            else:
                notes.append(f"pip {key} {source} is not a file: not used inside the build")
    for key in _PLAIN_OPTIONS:
        if key in settings:
            options[key] = settings[key]
    text = "[global]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
    (dest / "pip.conf").write_text(text)
    return notes


# -- docker -------------------------------------------------------------------------------------


def _docker_client() -> "DockerClient":
    import docker

    try:
        client = docker.from_env(timeout=600, **studio.docker_client_kwargs())  # Studio: API 1.41 only
        client.ping()
    except docker.errors.DockerException as exn:
        raise BackendError(
            "cannot build notebook-step images: no Docker daemon answers",
            details=[str(exn), "start Docker (or set DOCKER_HOST), then try again"],
        ) from None
    return client


def _image_exists(client: "DockerClient", name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _base_image_id(client: "DockerClient", base_image: str) -> str:
    import docker

    try:
        return client.images.get(base_image).id
    except docker.errors.ImageNotFound:
        pass
    _logger.info("pulling base image %s", base_image)
    try:
        return client.images.pull(base_image).id
    except docker.errors.DockerException as exn:
        raise BackendError(
            f"base image {base_image} is not on this machine and could not be pulled",
            details=[str(exn)],
        ) from None


def _build(client: "DockerClient", tag: str, base_image: str, base_id: str, requirements: List[str], log: LogCallback, log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="miniwdl-jupyter-build-") as context, open(log_path, "w") as log_file:

        def emit(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()
            log(line)

        context_dir = Path(context)
        (context_dir / "Dockerfile").write_text(DOCKERFILE_TEMPLATE.format(base=base_image, venv=VENV))
        (context_dir / "tools.txt").write_text("\n".join(STEP_TOOLS) + "\n")
        (context_dir / "requirements.txt").write_text("".join(line + "\n" for line in requirements))
        emit(f"# building {tag} from {base_image} ({base_id}) with {len(requirements)} requirement(s)")
        for note in write_pip_settings(host_pip_settings(), context_dir / "pip-settings"):
            emit(f"# {note}")
        failure, error_lines = _stream_build(client, context, tag, base_image, requirements, emit)
        elapsed = time.monotonic() - started
        if failure is None:
            emit(f"# built {tag} in {elapsed:.1f} s")
            return
    raise BackendError(
        f"building the notebook-step image {tag} failed after {elapsed:.0f} s",
        details=[*error_lines[-6:], failure, f"build log: {log_path}"],
    )


def _stream_build(
    client: "DockerClient", context: str, tag: str, base_image: str, requirements: List[str], emit: LogCallback
) -> Tuple[Optional[str], List[str]]:
    """Run the build, streaming its output; (None, []) on success, else (error, failing lines)."""
    import docker

    # pip reports the cause on "ERROR:" lines, apt on "E:" lines: those are what the user needs.
    error_lines: List[str] = []
    labels = {
        f"{LABEL_PREFIX}.base": base_image,
        f"{LABEL_PREFIX}.requirements": "\n".join(requirements),
        f"{LABEL_PREFIX}.version": __version__,
    }
    try:
        stream = client.api.build(
            path=context, tag=tag, rm=True, forcerm=True, pull=False, decode=True, labels=labels,
            **studio.docker_build_kwargs(),  # Studio: builds only on the sagemaker network
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in _ANSI_ESCAPE.sub("", chunk["stream"]).splitlines():
                    if line.strip():
                        emit(line.rstrip())
                        if re.match(r"^\s*(ERROR:|E: |/bin/sh: )", line):
                            error_lines.append(line.strip())
            elif "error" in chunk:
                emit(chunk["error"].rstrip())
                return chunk["error"].strip(), error_lines
    except docker.errors.DockerException as exn:
        emit(str(exn))
        return str(exn), error_lines
    return None, []


def _push(client: "DockerClient", tag: str, registry: str, log: LogCallback) -> str:
    registry = registry.rstrip("/")
    repository, _, version = tag.rpartition(":")
    remote = f"{registry}/{repository}"
    client.images.get(tag).tag(remote, version)
    log(f"# pushing {remote}:{version}")
    for chunk in client.api.push(remote, tag=version, stream=True, decode=True):
        if "error" in chunk:
            raise BackendError(
                f"pushing {remote}:{version} failed: {chunk['error'].strip()}",
                details=["log in first (`docker login REGISTRY`) if the registry needs credentials"],
            )
        if chunk.get("status") and chunk.get("id") is None:
            log(chunk["status"])
    return f"{remote}:{version}"
