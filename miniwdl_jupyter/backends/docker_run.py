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
import hashlib
import logging
import os
import shlex
import subprocess
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, List, Optional, Set, Tuple

import docker.errors
from WDL._util import StructuredLogMessage as _
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .. import protocol, studio
from ..errors import BackendError
from . import container_cli
from .container_cli import CLI_FAILURES, mount_args
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating
from .task_dir import task_image
from .task_usage import container_usage_mount, drop_if_empty, requested, sampled_container_command

# What `docker run` (and podman with CDI) print when asked for GPUs they cannot give: no GPU on the
# host, or no NVIDIA container toolkit behind the daemon.
GPU_UNAVAILABLE = ("could not select device driver", "unresolvable CDI devices")


class DockerRunContainer(ScheduledSubprocessBase):
    backend_name = "docker_run"
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
        return container_cli.container_name(self)

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        with ExitStack() as cleanup:
            cleanup.enter_context(self.reserved_resources(logger, terminating))
            image = self._image(logger)
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            self.write_command_file(command)
            mounts = self.prepare_mounts()  # once: it creates the mount points
            started = time.time()
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
        # miniwdl puts failure_info in error.json's CommandFailed (None again: a retry fails on its own)
        limit = f"{self.runtime_values.get('memory_limit', 0) / 1e6:.0f} MB (runtime.memory times [task_runtime] memory_limit_multiplier)"
        oom = f"task ran out of memory: the kernel killed it at its memory limit of {limit}; raise runtime.memory"
        self.failure_info = {"message": oom} if exit_code != 0 and self._ran_out_of_memory(started) else None
        protocol.task_exit(logger, "docker_run", exit_code, message=oom if self.failure_info else None)
        return exit_code

    def _ran_out_of_memory(self, since: float) -> bool:
        """Whether the daemon saw this attempt's container killed for memory (`--rm` removed it and
        its State.OOMKilled; the daemon's event log keeps an `oom` event)."""
        if self.runtime_values.get("memory_limit", 0) <= 0:
            return False
        query = ["events", "--since", f"{since - 1:.3f}", "--until", f"{time.time():.3f}", "--format", "{{.Action}}"]
        query += ["--filter", f"container={self.container_name}", "--filter", "event=oom"]
        events = subprocess.run(self.cli_exe + query, capture_output=True, text=True, timeout=30)
        return events.returncode == 0 and "oom" in events.stdout

    def _attempt(
        self, logger: logging.Logger, terminating: Callable[[], bool], poll_stderr: Callable[[], None], invocation: List[str]
    ) -> Tuple[int, str]:
        """One `docker run` of the task; returns its exit status and the CLI's own log file."""
        cli_log_path = self.host_cli_log_txt("docker_run")
        with open(cli_log_path, "wb") as cli_log:
            # the client holds the task's GPU reservation too: it lasts as long as the container it follows
            proc = subprocess.Popen(invocation, stdout=cli_log, stderr=subprocess.STDOUT, cwd=self.host_dir, pass_fds=self.gpu_lock_fds)
        try:
            protocol.task_running(logger, "docker_run", container=self.container_name, pid=proc.pid)
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
        return self._pull(logger, task_image(self.runtime_values))

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
        return args + [image] + (sampled_container_command(self.cfg, command_line, requested(self.runtime_values)) if sampled else ["/bin/sh", "-c", command_line])

    def run_arguments(self, logger: logging.Logger, with_gpus: Optional[bool] = None) -> List[str]:
        """`docker run` options for this attempt (see container_cli.run_arguments)."""
        return container_cli.run_arguments(self, logger, self.cli_exe, with_gpus)


class InlineDockerfileBuildFailed(docker.errors.BuildError, BackendError):
    """An inlineDockerfile did not build: a BackendError, and also the docker.errors.BuildError
    that miniwdl's docker_swarm raises for it, so code written against either backend catches it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [])  # BuildError(reason, build_log), then BackendError(message)


def _hint(cli_error: str) -> str:
    """What to do about a `docker run` failure whose cause is known."""
    if "not manually attachable" in cli_error:
        return (
            ". `docker run` can join an overlay network only if it was created with --attachable "
            "(`docker network create -d overlay --attachable NAME`)"
        )
    return ""


def _last_line(text: str, default: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else default


def _first_line(text: str) -> str:
    """The CLI's own error comes first; usage hints follow it."""
    return next((line for line in text.splitlines() if line.strip()), "?")
