"""`docker_run`: each task attempt is one `docker run` (or `podman run`) process.

Built on miniwdl's `SubprocessBase` (the same base as its podman backend), which gives in-situ
mounts exactly as miniwdl maps them (inputs read-only, work dir read-write, retry-aware stdout/
stderr files) and honours `copy_input_files`. What this adds: no swarm and no fixed polling on the
critical path (we wait on the `docker run` process), runs as the invoking user (no chown
container), labels for finding a run's containers, cancel that removes the container, images
pulled only when missing, cpu/memory scheduling across a run's tasks, and short BackendErrors.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import subprocess
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, List, Set

from WDL._util import StructuredLogMessage as _
from WDL.Error import InputError
from WDL.runtime import config
from WDL.runtime.error import Terminated

from .. import config as jupyter_config
from .. import studio
from ..errors import BackendError
from .subprocess_base import ScheduledSubprocessBase, wait_unless_terminating

LABEL_RUN_DIR = "miniwdl_jupyter.run_dir"
LABEL_CALL = "miniwdl_jupyter.call"
# `docker run` and `podman run` exit with 125 when the CLI or daemon failed, 126/127 when the
# container's command could not be started (podman also for OCI runtime errors); the task's own
# status is passed through otherwise. The task's output goes to files, so whatever the CLI printed
# is the CLI's own complaint: that tells the cases apart.
CLI_FAILURES = (125, 126, 127)


class DockerRunContainer(ScheduledSubprocessBase):
    _present_images: Set[str] = set()
    _images_lock = threading.Lock()

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        jupyter_config.apply_defaults(cfg)
        studio.prepare_docker_cli()  # SageMaker Studio's daemon: API 1.41 only, no BuildKit
        exe = cfg.get_list("docker_run", "exe")
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
        return self.cfg.get_list("docker_run", "exe")

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
            image = self._pull(logger, cleanup)
            cli_log_path = self.host_cli_log_txt("docker_run")
            cli_log = cleanup.enter_context(open(cli_log_path, "wb"))
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            self.write_command_file(command)
            shell = self.cfg.get("task_runtime", "command_shell")
            invocation = self._run_invocation(logger, cleanup, image) + [
                "/bin/sh",
                "-c",
                f"{shell} ../command >> ../stdout.txt 2>> ../stderr.txt",
            ]
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
        if exit_code in CLI_FAILURES and os.path.getsize(cli_log_path):
            raise BackendError(
                f"`{self.cli_exe[0]} run` failed for image {image}: {_first_line(Path(cli_log_path).read_text())}",
                details=[f"full output: {cli_log_path}"],
            )
        logger.notice(_("docker_run task exit", exit_code=exit_code))
        return exit_code

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

    def _pull(self, logger: logging.Logger, cleanup: ExitStack) -> str:
        """Pull only when the image is missing locally; a failure says which image and what to do."""
        image = self.runtime_values.get("docker", self.cfg.get_dict("task_runtime", "defaults")["docker"])
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
            "--rm",  # the CLI still returns the container's exit status
            "--sig-proxy=false",  # a signal to the CLI must not reach the task; cancel removes the container
            "--name",
            self.container_name,
            "--label",
            f"{LABEL_RUN_DIR}={_run_dir_of(self.host_dir)}",
            "--label",
            f"{LABEL_CALL}={self.run_id}",
            "--workdir",
            os.path.join(self.container_dir, "work"),
        ]
        if self.cfg.get_bool("docker_run", "init"):
            args.append("--init")  # a PID 1 that forwards signals and reaps zombies
        cpu = self.runtime_values.get("cpu", 0)
        if cpu > 0:
            args += ["--cpus", str(cpu)]
        memory_limit = self.runtime_values.get("memory_limit", 0)
        if memory_limit > 0:
            args += ["--memory", str(memory_limit)]
        if not self.cfg.get_bool("docker_run", "as_root"):
            args += ["--user", f"{os.geteuid()}:{os.getegid()}"]
        if self.runtime_values.get("gpu", False):
            args += self.cfg.get_list("docker_run", "gpu_flags")
        # miniwdl sets "privileged" only when [task_runtime] allow_privileged = true
        if self.runtime_values.get("privileged", False):
            logger.warning("runtime.privileged enabled (security & portability warning)")
            args.append("--privileged")
        return studio.docker_run_args(args + self.cfg.get_list("docker_run", "extra_args"), logger)


def _run_dir_of(host_dir: str) -> str:
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
