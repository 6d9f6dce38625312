"""`aws`: run a whole run's `miniwdl run` as an AWS Batch "head" job (what miniwdl-aws-submit
does), so the notebook can close and the run goes on. Its tasks are Batch jobs too (aws_batch).

The run directory is on the shared filesystem (EFS) that the head job mounts at the same path, so
the notebook follows it exactly as a local run. The WDL, its imports, the inputs file and a cfg
file are staged into the run directory when they are not already on that filesystem (not packed
into environment variables and job tags, as miniwdl-aws does within its ~36 KB limit).
`MINIWDL__*` settings of the launching process are passed to the head job.

Liveness and cancel go through the Batch API: the head job's status says whether the run is alive
(a lock held on another host is invisible over NFS); cancel terminates the head job and every task
job of the run, found by the job-name prefix the aws_batch backend gives them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from WDL.runtime.config import Loader

from .. import launch_record
from ..config import option
from ..errors import BackendError, ConfigError
from ..launcher import Launcher
from . import api, discovery, jobdefs
from .jobs import TERMINAL, job_name, log_stream, run_prefix, stop_run_jobs
from .settings import BatchSettings

_logger = logging.getLogger("miniwdl_jupyter.aws.launcher")
HEAD_PREFIX = "miniwdl-jupyter-head-"
HEAD_MODULE = "miniwdl_jupyter.aws.head"  # what a head job runs: python3 -m HEAD_MODULE
# Backends that need a local Docker daemon, which a Batch job does not have: a head job runs its
# tasks on aws_batch instead.
_LOCAL_ONLY_BACKENDS = ("docker_run", "docker_swarm", "podman", "auto", "")
# Head-job status answers are kept this long: the monitor asks on every poll.
_STATUS_TTL = 3.0
# Keyed by job id and mirror directory: each mirror of a job is brought up to date on its own.
_status_cache: Dict[tuple, tuple] = {}
_status_lock = threading.Lock()


class HeadSettings:
    """`[aws]` settings of the head job, each with an explicit default."""

    def __init__(self, cfg: Loader):
        get = lambda key: option(cfg, "aws", key)  # noqa: E731
        self.queue = get("workflow_queue")
        self.image = get("head_image")
        self.vcpu = option(cfg, "aws", "head_vcpu", "int")
        self.memory_mb = option(cfg, "aws", "head_memory_mb", "int")
        self.job_role_arn = get("head_job_role_arn") or get("job_role_arn")
        self.env: Dict[str, str] = {k: str(v) for k, v in option(cfg, "aws", "head_env", "dict").items()}
        self.task_concurrency = option(cfg, "aws", "head_task_concurrency", "int")
        self.s3upload = get("s3upload")
        self.delete_after = get("delete_after")

    def check(self) -> None:
        if not self.queue:
            raise ConfigError(
                "--submit aws needs a job queue for the head job: set [aws] workflow_queue (MINIWDL__AWS__WORKFLOW_QUEUE) "
                "or `miniwdl-jupyter submit --workflow-queue`; see docs/aws.md"
            )
        if not self.image:
            raise ConfigError(
                "--submit aws needs an image with miniwdl-jupyter[aws] for the head job: build docker/aws-head.Dockerfile, "
                "push it, and set [aws] head_image (MINIWDL__AWS__HEAD_IMAGE)"
            )
        if self.delete_after and self.delete_after not in ("success", "failure", "always"):
            raise ConfigError(f"[aws] delete_after must be success, failure or always, not {self.delete_after!r}")
        if self.delete_after and not self.s3upload:
            raise ConfigError("[aws] delete_after needs [aws] s3upload (outputs must be kept somewhere before the run directory goes)")
        if self.s3upload and not self.s3upload.startswith("s3://"):
            raise ConfigError(f"[aws] s3upload must be an s3://bucket/prefix URI, not {self.s3upload!r}")


class AwsLauncher(Launcher):
    """The run's miniwdl process as a Batch head job; alive and cancel ask the Batch API (a lock
    held on another host is invisible over NFS)."""

    name = "aws"
    default_backend = "aws_batch"

    def launch(
        self, command: List[str], *, run_dir: Path, env: Mapping[str, str], cwd: Path, cfg: Loader
    ) -> Optional[subprocess.Popen]:
        discovery.apply_defaults(cfg)  # [aws] stack outputs; in SageMaker Studio its EFS and queue; unless configured
        head, tasks = HeadSettings(cfg), BatchSettings(cfg)
        head.check()
        tasks.check()
        run_dir = Path(os.path.abspath(run_dir))
        tasks.check_on_mount(str(run_dir))
        argv = stage(command, run_dir, tasks.on_mount)
        job_env = head_environment(env, run_dir, tasks, head)
        settings = api.aws_settings(cfg)
        properties = tasks.job_properties(head.image, head.vcpu, head.memory_mb, head.job_role_arn)
        jobdef = jobdefs.ensure(cfg, properties, prefix=HEAD_PREFIX)
        job_command = ["python3", "-m", HEAD_MODULE, "--run-dir", str(run_dir), "--", *argv[1:]]
        name = job_name(run_prefix(str(run_dir)), "head", run_dir.name)
        answer = api.call(
            cfg,
            "submit_job",
            what=f"workflow queue {head.queue}, job definition {jobdef}",
            jobName=name,
            jobQueue=head.queue,
            jobDefinition=jobdef,
            containerOverrides={"command": job_command, "environment": [{"name": k, "value": v} for k, v in sorted(job_env.items())]},
            tags={"miniwdl-jupyter-run": str(run_dir)[-256:]},
        )
        launch_record.update(
            run_dir,
            job_id=answer["jobId"],
            job_name=name,
            job_queue=head.queue,
            task_queues=tasks.task_queues(),
            **api.record_fields(settings),
            head_image=head.image,
            s3upload=head.s3upload,
            # what the head job really runs its tasks on (see head_environment)
            backend=job_env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"],
        )
        _logger.info("submitted head job %s (%s) on %s for %s", answer["jobId"], name, head.queue, run_dir)
        return None

    def alive(self, record: Dict[str, Any], cfg: Loader) -> Optional[bool]:
        job = self._job(record, cfg)
        if job is None:
            return None
        if record.get("mirror_dir"):
            # The monitor looks for outputs.json/error.json before asking: a result the sync above
            # has just brought over is read on its next poll, so the run is not taken for dead.
            local = Path(record["mirror_dir"])
            return job.get("status") not in TERMINAL or (local / "outputs.json").exists() or (local / "error.json").exists()
        return job.get("status") not in TERMINAL

    def cancel(self, record: Dict[str, Any], run_dir: Path, cfg: Loader) -> None:
        """TerminateJob for the head job and for every task job of the run. (Batch stops the head
        job's container with SIGTERM, on which miniwdl stops its tasks itself; terminating them
        here too covers a head killed before it could.)"""
        settings = api.settings_of(record)
        job_id = record.get("job_id")
        if job_id:
            api.call(cfg, "terminate_job", settings=settings, what=f"head job {job_id}", jobId=job_id, reason="cancelled from miniwdl-jupyter")
        with _status_lock:
            for key in [key for key in _status_cache if key[0] == job_id]:
                del _status_cache[key]
        stopped = stop_run_jobs(cfg, str(run_dir), record.get("task_queues") or [], settings)
        if stopped:
            _logger.info("terminated %d task job(s) of %s", len(stopped), run_dir)

    def describe(self, record: Dict[str, Any], cfg: Loader) -> Dict[str, Any]:
        job = self._job(record, cfg) or {}
        facts = {"job_id": record.get("job_id"), "queue": record.get("job_queue")}
        if job:
            facts["status"] = job.get("status")
            stream = log_stream(job)
            if stream:
                facts["log_stream"] = stream
            if job.get("statusReason"):
                facts["status_reason"] = job["statusReason"]
        return {k: v for k, v in facts.items() if v}

    def follow(self, address: str, root: Path, cfg: Loader) -> Path:
        """`attach("aws:JOB_ID")`: a local mirror of a submitted run whose directory this machine
        cannot see, found by its head job's id (mirror.py)."""
        from . import mirror

        return mirror.mirror_run(address.split(":", 1)[1], root, cfg)

    def _job(self, record: Dict[str, Any], cfg: Loader) -> Optional[Dict[str, Any]]:
        job_id = record.get("job_id")
        if not job_id:
            return None
        key = (job_id, record.get("mirror_dir"))
        with _status_lock:
            cached = _status_cache.get(key)
            if cached and time.monotonic() - cached[0] < _STATUS_TTL:
                return cached[1]
        try:
            jobs = api.call(cfg, "describe_jobs", settings=api.settings_of(record), jobs=[job_id]).get("jobs", [])
        except BackendError as exn:
            _logger.warning("cannot tell whether head job %s is alive: %s", job_id, exn)
            return None
        # A job unknown to Batch (expired from its history after days) is not alive.
        job = jobs[0] if jobs else {"jobId": job_id, "status": "FAILED", "statusReason": "no longer known to AWS Batch"}
        with _status_lock:
            _status_cache[key] = (time.monotonic(), job)
        if record.get("mirror_dir"):  # followed from a machine that does not see the run directory
            from . import mirror

            try:
                mirror.sync(record, job, cfg)
            except (BackendError, OSError) as exn:
                _logger.warning("could not bring the mirror of head job %s up to date: %s", job_id, exn)
        return job


def stage(command: List[str], run_dir: Path, on_shared_fs) -> List[str]:
    """`command` with every file it names (the WDL and its imports, the inputs file, --path
    directories, a cfg file) on the shared filesystem: those elsewhere are copied under
    RUN_DIR/.miniwdl_jupyter/staged/ at their absolute path, so relative imports still resolve."""
    staged_root = launch_record.meta_dir(run_dir) / "staged"
    argv = list(command)

    def staged(path: str) -> str:
        if "://" in path or on_shared_fs(path):
            return path
        target = staged_root / os.path.abspath(path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(path):
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)
        return str(target)

    source = argv[4]
    if "://" not in source and not on_shared_fs(source):
        search = [argv[i + 1] for i, a in enumerate(argv) if a == "--path"]
        for path in wdl_closure(source, search):
            staged(path)
        argv[4] = str(staged_root / os.path.abspath(source).lstrip("/"))
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-i", "--cfg"):
            argv[i + 1] = staged(argv[i + 1])
        elif arg == "--path":
            path = argv[i + 1]
            if not on_shared_fs(path):  # imports found through it were staged with the closure
                argv[i + 1] = str(staged_root / os.path.abspath(path).lstrip("/"))
    return argv


def wdl_closure(source: str, search: List[str]) -> List[str]:
    """The local files of a WDL document and everything it imports (miniwdl resolves them)."""
    import WDL

    result: Dict[str, Any] = {}

    def load() -> None:  # WDL.load runs its own event loop: not on a thread that has one (a kernel)
        try:
            result["doc"] = WDL.load(source, search or None)
        except Exception as exn:  # reported below, with the file named
            result["error"] = exn

    worker = threading.Thread(target=load)
    worker.start()
    worker.join()
    if "error" in result:
        raise ConfigError(f"cannot stage {source} for the head job: {result['error']}")
    files, todo = [], [result["doc"]]
    while todo:
        doc = todo.pop()
        path = doc.pos.abspath
        if "://" not in path and path not in files:
            files.append(path)
            todo.extend(imp.doc for imp in doc.imports if imp.doc is not None)
    return files


def head_environment(env: Mapping[str, str], run_dir: Path, tasks: BatchSettings, head: HeadSettings) -> Dict[str, str]:
    """The head job's environment: the launching process's MINIWDL__* settings, with the task
    backend set to aws_batch unless one that needs no Docker daemon was chosen, and the call
    cache moved onto the shared filesystem; then [aws] head_env."""
    job_env = {k: v for k, v in env.items() if k.startswith("MINIWDL__")}
    # The task settings this process found (e.g. from SageMaker Studio's APIs, which the head job
    # cannot see) travel explicitly.
    found = {
        "task_queue": tasks.task_queue,
        "task_queue_fallback": tasks.task_queue_fallback,
        "fs": tasks.fs,
        "fsap": tasks.fsap,
        "host_path": tasks.host_path,
        "mount": tasks.mount,
        **api.aws_settings(tasks.cfg),
    }
    for key, value in found.items():
        if value:
            job_env.setdefault(f"MINIWDL__AWS__{key.upper()}", value)
    if job_env.get("MINIWDL__SCHEDULER__CONTAINER_BACKEND", "") in _LOCAL_ONLY_BACKENDS:
        job_env["MINIWDL__SCHEDULER__CONTAINER_BACKEND"] = "aws_batch"
    # The run's command line carries [jupyter] cluster_task_concurrency when [scheduler]
    # task_concurrency is not configured; in the head job, [aws] head_task_concurrency is that default.
    if tasks.cfg["scheduler"].get_int("task_concurrency") == 0:
        job_env["MINIWDL__SCHEDULER__TASK_CONCURRENCY"] = str(head.task_concurrency)
    cache_dir = job_env.get("MINIWDL__CALL_CACHE__DIR", "")
    if not cache_dir or not tasks.on_mount(cache_dir):
        job_env["MINIWDL__CALL_CACHE__DIR"] = os.path.join(tasks.mount, ".miniwdl_call_cache")
    job_env.update(head.env)
    return job_env
