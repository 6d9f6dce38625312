"""`docker_run`: each task attempt is one `docker run` (or `podman run`) process.

Built on miniwdl's `SubprocessBase` (the same base as its podman backend), which gives in-situ
mounts exactly as miniwdl maps them (inputs read-only, work dir read-write, retry-aware stdout/
stderr files), the env-exporting command file, and cpu/memory scheduling across concurrent tasks.
What this adds: no swarm and no fixed polling on the critical path (we wait on the process), runs
as the invoking user (no chown container), labels for finding a run's containers, cancel that
removes the container, images pulled only when missing, and short BackendErrors.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
from contextlib import ExitStack
from typing import Callable, List, Set

from WDL._util import StructuredLogMessage as _
from WDL.Error import InputError
from WDL.runtime import config

from .. import config as jupyter_config
from ..errors import BackendError
from .subprocess_base import ScheduledSubprocessBase

LABEL_RUN_DIR = "miniwdl_jupyter.run_dir"
LABEL_CALL = "miniwdl_jupyter.call"


class DockerRunContainer(ScheduledSubprocessBase):
    _present_images: Set[str] = set()
    _images_lock = threading.Lock()

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        jupyter_config.apply_defaults(cfg)
        exe = cfg.get_list("docker_run", "exe")
        try:
            proc = subprocess.run(
                exe + ["version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, timeout=30
            )
        except FileNotFoundError:
            raise BackendError(
                f"{exe[0]} not found: install Docker (or set [docker_run] exe), or use --backend local"
            ) from None
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["no answer"])[-1] if proc else "no answer in 30 s"
            raise BackendError(
                f"the Docker daemon is not answering `{' '.join(exe)}`: {why}. "
                "Start it (e.g. `sudo systemctl start docker`) or use --backend local"
            )
        logger.notice(_("docker_run initialized", exe=" ".join(exe), server_version=proc.stdout.strip()))

    @property
    def cli_name(self) -> str:
        return "docker"

    @property
    def cli_exe(self) -> List[str]:
        return self.cfg.get_list("docker_run", "exe")

    @property
    def container_name(self) -> str:
        # Unique per attempt; docker names allow [a-zA-Z0-9_.-].
        run = os.path.basename(os.path.dirname(self.host_dir.rstrip("/")))
        raw = f"wdl-{run}-{self.run_id}-{self.try_counter}-{os.getpid()}"
        return "".join(c if c.isalnum() or c in "_.-" else "-" for c in raw)[:200]

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        try:
            exit_code = super()._run(logger, terminating, command)
        except BaseException:
            # Cancelled or failed mid-way: the CLI is gone (--sig-proxy=false), the container may
            # still run. Remove it so nothing is left behind.
            self._remove_container(logger)
            raise
        logger.notice(_("docker_run exit", exit_code=exit_code))
        return exit_code

    def _remove_container(self, logger: logging.Logger) -> None:
        proc = subprocess.run(self.cli_exe + ["rm", "-f", self.container_name], capture_output=True, text=True)
        if proc.returncode == 0:
            logger.notice(_("docker_run removed container", name=self.container_name))

    def _pull(self, logger: logging.Logger, cleanup: ExitStack) -> str:
        """Pull only when the image is missing locally; a failure says which image and what to do."""
        image = self.runtime_values.get("docker", self.cfg.get_dict("task_runtime", "defaults")["docker"])
        with self._images_lock:
            if image in self._present_images:
                return image
            inspect = subprocess.run(self.cli_exe + ["image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True)
            if inspect.returncode != 0:
                logger.notice(_("docker_run pull", image=image))
                pull = subprocess.run(self.cli_exe + ["pull", image], capture_output=True, text=True)
                if pull.returncode != 0:
                    why = (pull.stderr.strip().splitlines() or ["unknown error"])[-1]
                    raise BackendError(
                        f"image {image} is not on this machine and could not be pulled: {why}. "
                        f"Build or load it (`docker build -t {image} ...` / `docker load`), or log in to its registry"
                    )
            self._present_images.add(image)
        return image

    def _run_invocation(self, logger: logging.Logger, cleanup: ExitStack, image: str) -> List[str]:
        args = self.run_arguments(logger)
        mounts = self.prepare_mounts()
        for container_path, host_path, writable in mounts:
            if ":" in container_path + host_path:
                raise InputError("docker_run cannot mount file names containing ':'")
            args += ["-v", f"{host_path}:{container_path}" + ("" if writable else ":ro")]
        logger.info(_("docker_run invocation", args=" ".join(shlex.quote(a) for a in args + [image]), binds=len(mounts)))
        return args + [image]

    def run_arguments(self, logger: logging.Logger) -> List[str]:
        """`docker run` options for this attempt, from its runtime values and [docker_run] config."""
        args = self.cli_exe + [
            "run",
            "--rm",
            "--init",  # a real PID 1 that forwards signals and reaps, so `sleep` commands stop promptly
            "--sig-proxy=false",  # SIGTERM ends the CLI only; we remove the container ourselves
            "--name",
            self.container_name,
            "--label",
            f"{LABEL_RUN_DIR}={_run_dir_of(self.host_dir)}",
            "--label",
            f"{LABEL_CALL}={self.run_id}",
            "--workdir",
            os.path.join(self.container_dir, "work"),
        ]
        cpu = self.runtime_values.get("cpu", 0)
        if cpu > 0:
            args += ["--cpus", str(cpu)]
        memory_limit = self.runtime_values.get("memory_limit", 0)
        if memory_limit > 0:
            args += ["--memory", str(memory_limit)]
        args += self.cfg.get_list("docker_run", "extra_args")
        if not self.cfg.get_bool("docker_run", "as_root"):
            args += ["--user", f"{os.geteuid()}:{os.getegid()}"]
        if self.runtime_values.get("gpu", False):
            args += self.cfg.get_list("docker_run", "gpu_flags")
        if self.runtime_values.get("privileged", False):
            if self.cfg.get_bool("docker_run", "allow_privileged"):
                logger.warning("runtime.privileged enabled (security & portability warning)")
                args.append("--privileged")
            else:
                logger.warning("ignoring runtime.privileged: set [docker_run] allow_privileged = true to allow it")
        return args


def _run_dir_of(host_dir: str) -> str:
    """The run directory a call directory belongs to: the highest ancestor holding workflow.log
    (a workflow run), else the call directory itself (a single-task run)."""
    path, top = os.path.abspath(host_dir), os.path.abspath(host_dir)
    while os.path.dirname(path) != path:
        if os.path.exists(os.path.join(path, "workflow.log")):
            top = path
        path = os.path.dirname(path)
    return top
