"""`docker_run`: each task attempt is one `docker run` (or `podman run`) process.

Built on miniwdl's `SubprocessBase` (the same base as its podman backend), which gives in-situ
mounts exactly as miniwdl maps them (inputs read-only, work dir read-write, retry-aware stdout/
stderr files) and honours `copy_input_files`. What this adds: no swarm and no fixed polling on the
critical path (we wait on the `docker run` process), runs as the invoking user (no chown
container), labels for finding a run's containers, cancel that removes the container, images
pulled only when missing, cpu/memory scheduling across a run's tasks, and short BackendErrors.
Like docker_swarm it builds `runtime.inlineDockerfile` images (tagged by content, built once),
joins `runtime.docker_network` when `[docker_swarm] allow_networks` lists it, and mounts any path
(`--mount`, CSV-quoted: colons, commas, spaces and control characters included).

Settings are read with `config.option`, which falls back to defaults.cfg: the backend works with
any miniwdl Loader, including those miniwdl (or a host program) makes without our defaults.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import shlex
import subprocess
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, List, Optional, Set, Tuple

import docker.errors
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .. import studio
from ..errors import BackendError
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating
from .task_usage import container_usage_mount, drop_if_empty, requested, sampled_container_command

LABEL_RUN_DIR = "miniwdl_jupyter.run_dir"
LABEL_CALL = "miniwdl_jupyter.call"
# `docker run` and `podman run` exit with 125 when the CLI or daemon failed, 126/127 when the
# container's command could not be started (podman also for OCI runtime errors); the task's own
# status is passed through otherwise. The task's output goes to files, so whatever the CLI printed
# is the CLI's own complaint: that tells the cases apart.
CLI_FAILURES = (125, 126, 127)
# What `docker run` (and podman with CDI) print when asked for GPUs they cannot give: no GPU on the
# host, or no NVIDIA container toolkit behind the daemon.
GPU_UNAVAILABLE = ("could not select device driver", "unresolvable CDI devices")
# miniwdl's docker_swarm falls back to this image when a task names none and [task_runtime]
# defaults has no `docker` either.
FALLBACK_IMAGE = "ubuntu:22.04"


class DockerRunContainer(ScheduledSubprocessBase):
    _present_images: Set[str] = set()
    _images_lock = threading.Lock()
    _build_lock = threading.Lock()  # one inlineDockerfile build at a time, as docker_swarm does
    # Set once `docker run` has said it cannot give GPUs: later gpu tasks of the run skip the flags.
    _gpus_unavailable: Optional[str] = None

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        studio.prepare_docker_cli()  # SageMaker Studio's daemon: API 1.41 only, no BuildKit
        exe = jupyter_config.option(cfg, "docker_run", "exe", "list")
        try:
            proc = subprocess.run(exe + ["info"], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise BackendError(
                f"{exe[0]} not found: install Docker (or set [docker_run] exe), or use the local backend"
            ) from None
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            why = _last_line(proc.stderr if proc else "", "no answer in 30 s")
            raise BackendError(
                f"the Docker daemon is not answering `{' '.join(exe)} info`: {why}. "
                "Start it (e.g. `sudo systemctl start docker`), point [docker_run] exe at one that "
                "runs, or use the local backend"
            )
        version = subprocess.run(exe + ["--version"], capture_output=True, text=True).stdout.strip()
        logger.notice(_("docker_run initialized", exe=" ".join(exe), version=version))

    @property
    def cli_name(self) -> str:
        return "docker"

    @property
    def cli_exe(self) -> List[str]:
        return jupyter_config.option(self.cfg, "docker_run", "exe", "list")

    @property
    def container_name(self) -> str:
        """Unique per attempt and process. The call id alone repeats in nested scatters and
        sub-workflows, so a digest of the call directory tells them apart."""
        digest = hashlib.sha1(f"{self.host_dir}\0{os.getpid()}".encode()).hexdigest()[:12]
        name = f"wdl-{self.run_id}-{self.try_counter}-{digest}"
        return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)[-200:]

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        with ExitStack() as cleanup:
            cleanup.enter_context(self.reserved_resources(logger))
            image = self._image(logger)
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            self.write_command_file(command)
            mounts = self.prepare_mounts()  # once: it creates the mount points
            while True:
                if self.runtime_values.get("gpu", False) and self._gpus_unavailable:
                    self._gpus_unavailable_here(logger, self._gpus_unavailable)  # fails under require_gpu
                with_gpus = bool(self.runtime_values.get("gpu", False)) and not self._gpus_unavailable
                usage = container_usage_mount(self.cfg, self.host_dir, self.container_dir, self.try_counter)
                invocation = self._invocation(logger, image, mounts + ([usage] if usage else []), with_gpus, bool(usage))
                exit_code, cli_log_path = self._attempt(logger, terminating, poll_stderr, invocation)
                if usage:
                    drop_if_empty(usage[1])
                cli_failed = exit_code in CLI_FAILURES and os.path.getsize(cli_log_path)
                cli_error = _first_line(Path(cli_log_path).read_text(errors="replace")) if cli_failed else ""
                if not (with_gpus and any(marker in cli_error for marker in GPU_UNAVAILABLE)):
                    break
                # The container never started (exit 125 before the task ran): safe to start again.
                self._gpus_unavailable_here(logger, cli_error)
                self._remove_container(logger)
        if cli_failed:
            raise BackendError(
                f"`{self.cli_exe[0]} run` failed for image {image}: {cli_error}{_hint(cli_error)}",
                details=[f"full output: {cli_log_path}"],
            )
        logger.notice(_("docker_run task exit", exit_code=exit_code))
        return exit_code

    def _attempt(
        self, logger: logging.Logger, terminating: Callable[[], bool], poll_stderr: Callable[[], None], invocation: List[str]
    ) -> Tuple[int, str]:
        """One `docker run` of the task; returns its exit status and the CLI's own log file."""
        cli_log_path = self.host_cli_log_txt("docker_run")
        with open(cli_log_path, "wb") as cli_log:
            proc = subprocess.Popen(invocation, stdout=cli_log, stderr=subprocess.STDOUT, cwd=self.host_dir)
        try:
            logger.notice(_("docker_run task running", container=self.container_name, pid=proc.pid))
            with self.task_running_context():
                exit_code = wait_unless_terminating(proc, terminating, poll_stderr)
        except BaseException:
            self._stop(logger, proc)
            raise
        if exit_code is None:
            self._stop(logger, proc)
            raise Terminated()
        return exit_code, cli_log_path

    def _gpus_unavailable_here(self, logger: logging.Logger, cli_error: str) -> None:
        """`gpu: true` where Docker has no GPU to give. As docker_swarm does (it always ignores
        runtime.gpu), warn and run the task without GPUs, unless [docker_run] require_gpu."""
        if jupyter_config.option(self.cfg, "docker_run", "require_gpu", "bool"):
            raise BackendError(
                f"runtime.gpu: `{self.cli_exe[0]} run` cannot give this task a GPU: {cli_error}. "
                "This host has no GPU, or no NVIDIA container toolkit behind the Docker daemon "
                "(or [docker_run] gpu_flags does not suit it). Run where GPUs are, install the "
                "toolkit, or set [docker_run] require_gpu = false to run such tasks without a GPU"
            )
        cls = type(self)
        with cls._images_lock:
            first = cls._gpus_unavailable is None
            cls._gpus_unavailable = cli_error
        if first:
            logger.warning(
                _(
                    "runtime.gpu ignored: Docker cannot give GPUs on this host (no GPU, or no NVIDIA "
                    "container toolkit), so gpu tasks run without one. To fail them instead, set "
                    "[docker_run] require_gpu = true",
                    docker_error=cli_error,
                )
            )

    def _stop(self, logger: logging.Logger, proc: subprocess.Popen) -> None:
        """Cancel: remove the container, which ends the attached CLI. The docker CLI does not exit
        on one SIGTERM while it runs a container, so it is killed only if it outlives the removal
        (e.g. it was still creating the container); a second removal then catches a container
        created meanwhile. cleanup_orphans() is the last resort for anything left."""
        self._remove_container(logger)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self._remove_container(logger)

    def _remove_container(self, logger: logging.Logger) -> None:
        removed = subprocess.run(self.cli_exe + ["rm", "-f", self.container_name], capture_output=True, text=True)
        if removed.returncode == 0:
            logger.notice(_("docker_run removed container", container=self.container_name))

    def _image(self, logger: logging.Logger) -> str:
        """The image to run: built from runtime.inlineDockerfile, else runtime.docker (which
        miniwdl fills from [task_runtime] defaults), pulled only if missing."""
        if "inlineDockerfile" in self.runtime_values:
            return self._build_inline_dockerfile(logger)
        return self._pull(logger, self.runtime_values.get("docker", FALLBACK_IMAGE))

    def _pull(self, logger: logging.Logger, image: str) -> str:
        """Pull only when the image is missing locally; a failure says which image and what to do."""
        with self._images_lock:
            if image in self._present_images:
                return image
            inspect = subprocess.run(self.cli_exe + ["image", "inspect", image], capture_output=True, text=True)
            if inspect.returncode != 0:
                logger.notice(_("docker_run pull", image=image))
                pull = subprocess.run(self.cli_exe + ["pull", image], capture_output=True, text=True)
                if pull.returncode != 0:
                    raise BackendError(
                        f"image {image} is not on this machine and could not be pulled: "
                        f"{_last_line(pull.stderr, 'unknown error')}. Build or load it "
                        f"(`docker build -t {image} ...` / `docker load`), or log in to its registry"
                    )
            self._present_images.add(image)
        return image

    def inline_dockerfile_tag(self) -> str:
        """A tag naming the Dockerfile's content: the same text is built once, by any run. Same
        scheme as docker_swarm's (miniwdl_auto_<task>:<digest>), so the two share built images."""
        digest = hashlib.sha256(self.runtime_values["inlineDockerfile"].encode("utf8")).digest()
        version = ":" + base64.b32encode(digest[:15]).decode().lower()
        task = self.run_id.lower().split("-")[1] if "-" in self.run_id else self.run_id.lower()
        repository = "miniwdl_auto_" + "".join(c if c.isalnum() or c in "_.-" else "_" for c in task)
        return repository[: 63 - len(version)] + version

    def _build_inline_dockerfile(self, logger: logging.Logger) -> str:
        """`docker build` the task's inlineDockerfile (no build context, as in docker_swarm), unless
        an image with its content tag exists. A failed build is retried up to runtime.maxRetries,
        then raises docker.errors.BuildError like docker_swarm (a BackendError too)."""
        tag = self.inline_dockerfile_tag()
        logger.warning("runtime.inlineDockerfile is an experimental extension, subject to change")
        build_log = os.path.join(self.host_dir, "inlineDockerfile.log")
        tries = 1 + self.runtime_values.get("maxRetries", 0)
        with self._build_lock:
            if subprocess.run(self.cli_exe + ["image", "inspect", tag], capture_output=True).returncode == 0:
                logger.notice(_("docker build cached", tag=tag))
                return tag
            for attempt in range(tries):
                logger.info(_("starting docker build", tag=tag))
                with open(build_log, "wb") as log:
                    built = subprocess.run(
                        self.cli_exe + ["build", "-t", tag, "-"],
                        input=self.runtime_values["inlineDockerfile"].encode("utf8"),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                if built.returncode == 0:
                    logger.notice(_("docker build", tag=tag, log=build_log))
                    return tag
                if attempt + 1 < tries:
                    logger.error(_("failed docker build will be retried", tries_remaining=tries - attempt - 1))
        why = _last_line(Path(build_log).read_text(errors="replace"), "no output")
        logger.error(_("docker build failed", msg=why, log=build_log))
        raise InlineDockerfileBuildFailed(
            f"runtime.inlineDockerfile: `{self.cli_exe[0]} build` failed: {why}. Fix the Dockerfile "
            f"(full output: {build_log})"
        )

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        """miniwdl's SubprocessBase interface (its _run is replaced by ours)."""
        return self._invocation(logger, image, self.prepare_mounts(), None)[:-3]

    def _invocation(
        self,
        logger: logging.Logger,
        image: str,
        mounts: List[Tuple[str, str, bool]],
        with_gpus: Optional[bool],
        sampled: bool = False,
    ) -> List[str]:
        """The whole `docker run` command line of an attempt; `sampled`: under the usage sampler."""
        args = self.run_arguments(logger, with_gpus)
        for container_path, host_path, writable in mounts:
            args += mount_args(host_path, container_path, writable)
        logger.info(_("docker_run invocation", args=" ".join(shlex.quote(a) for a in args + [image]), binds=len(mounts)))
        shell = self.cfg.get("task_runtime", "command_shell")
        command_line = f"{shell} ../command >> ../stdout.txt 2>> ../stderr.txt"
        return args + [image] + (sampled_container_command(command_line, requested(self.runtime_values)) if sampled else ["/bin/sh", "-c", command_line])

    def run_arguments(self, logger: logging.Logger, with_gpus: Optional[bool] = None) -> List[str]:
        """`docker run` options for this attempt, from its runtime values and [docker_run] config.
        `with_gpus` (default: runtime.gpu) adds [docker_run] gpu_flags."""
        option = functools.partial(jupyter_config.option, self.cfg, "docker_run")
        args = self.cli_exe + [
            "run",
            "--rm",  # the CLI still returns the container's exit status
            "--sig-proxy=false",  # a signal to the CLI must not reach the task; cancel removes the container
            "--name",
            self.container_name,
            "--label",
            f"{LABEL_RUN_DIR}={run_dir_of(self.host_dir)}",
            "--label",
            f"{LABEL_CALL}={self.run_id}",
            "--workdir",
            os.path.join(self.container_dir, "work"),
        ]
        if option("init", "bool"):
            args.append("--init")  # a PID 1 that forwards signals and reaps zombies
        cpu = self.runtime_values.get("cpu", 0)
        if cpu > 0:
            args += ["--cpus", str(cpu)]
        memory_limit = self.runtime_values.get("memory_limit", 0)
        if memory_limit > 0:
            args += ["--memory", str(memory_limit)]
        if not option("as_root", "bool"):
            args += ["--user", f"{os.geteuid()}:{os.getegid()}"]
        if self.runtime_values.get("gpu", False) if with_gpus is None else with_gpus:
            args += option("gpu_flags", "list")
        network = self.runtime_values.get("docker_network")
        if network:
            # as docker_swarm: only networks the operator allowed (a task could otherwise reach
            # e.g. the host's network)
            if network in self.cfg.get_list("docker_swarm", "allow_networks", []):
                args += ["--network", network]
            else:
                logger.warning(
                    _(
                        "runtime.docker_network ignored; network name must appear in JSON list from config"
                        " [docker_swarm] allow_networks / env MINIWDL__DOCKER_SWARM__ALLOW_NETWORKS",
                        docker_network=network,
                    )
                )
        # miniwdl sets "privileged" only when [task_runtime] allow_privileged = true
        if self.runtime_values.get("privileged", False):
            logger.warning("runtime.privileged enabled (security & portability warning)")
            args.append("--privileged")
        return studio.docker_run_args(args + option("extra_args", "list"), logger)


class InlineDockerfileBuildFailed(docker.errors.BuildError, BackendError):
    """An inlineDockerfile did not build: a BackendError, and also the docker.errors.BuildError
    that miniwdl's docker_swarm raises for it, so code written against either backend catches it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [])  # BuildError(reason, build_log), then BackendError(message)


def mount_args(host_path: str, container_path: str, writable: bool) -> List[str]:
    """`docker run` arguments that bind-mount any path. `--mount` takes a CSV record (docker reads
    it with Go's csv), so a field holding a comma, quote or line break is quoted, and `:` needs
    nothing (`-v` splits on it). Go's csv turns CR LF inside a quoted field into LF, though, so a
    path holding CR LF goes through `-v`, which takes any character but `:`; one holding both
    cannot be named and is refused."""
    paths = host_path + container_path
    if "\r\n" not in paths:
        fields = ["type=bind", f"src={host_path}", f"dst={container_path}"] + ([] if writable else ["readonly"])
        return ["--mount", ",".join(_csv_field(field) for field in fields)]
    if ":" not in paths:
        return ["-v", f"{host_path}:{container_path}" + ("" if writable else ":ro")]
    raise BackendError(
        f"docker_run cannot mount {host_path!r}: Docker has no way to name a path holding both ':' and "
        "a carriage return followed by a line feed. Rename it, or set [file_io] copy_input_files = true"
    )


def _csv_field(field: str) -> str:
    if any(c in field for c in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def _hint(cli_error: str) -> str:
    """What to do about a `docker run` failure whose cause is known."""
    if "not manually attachable" in cli_error:
        return (
            ". `docker run` can join an overlay network only if it was created with --attachable "
            "(`docker network create -d overlay --attachable NAME`)"
        )
    return ""


def run_dir_of(host_dir: str) -> str:
    """The run directory a call directory belongs to: the highest ancestor holding workflow.log
    (a workflow run), else the call directory itself (a single-task run)."""
    path = top = os.path.abspath(host_dir)
    while os.path.dirname(path) != path:
        if os.path.exists(os.path.join(path, "workflow.log")):
            top = path
        path = os.path.dirname(path)
    return top


def _last_line(text: str, default: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def _first_line(text: str) -> str:
    """The CLI's own error comes first; usage hints follow it."""
    return next((line for line in text.splitlines() if line.strip()), "?")
