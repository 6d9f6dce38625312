"""Following a `--submit aws` run from a machine that does not see its run directory (a laptop):
a local run directory mirrors what AWS has, so the same monitor and views serve it.

`attach("aws:JOB_ID")` (the aws launcher's `follow`, through `mirror_run` here) or `follow(job_id)`
makes `<run root>/<run name>/` with a launch record naming the head job; each time
the `aws` launcher is asked whether the run is alive it also brings the mirror up to date: the
head job's CloudWatch log (miniwdl's JSON log lines, as `workflow.log.json`), and once the job has
ended, `outputs.json` from the run's `--s3upload` prefix (outputs as s3:// URIs) or an `error.json`
saying why it failed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

from WDL.runtime.config import Loader

from .. import launch_record
from ..errors import BackendError, RunNotFound
from . import api, logs
from .head import upload_base
from .jobs import TERMINAL, log_stream


def follow(job_id: str, local_dir: Optional[os.PathLike] = None, *, cfg: Optional[Loader] = None) -> Any:
    """A Run handle on the submitted run whose head job is `job_id`, mirrored into `local_dir`
    (default: its name under the run root). The same as `attach("aws:JOB_ID")`, with the mirror's
    place chosen."""
    from .. import run_dirs
    from ..runs import Run, load_config

    loader = load_config(cfg)
    root = run_dirs.prepare_root(run_dirs.run_root(loader))
    return Run(mirror_run(job_id, root, loader, Path(local_dir) if local_dir else None), cfg=loader)


def mirror_run(job_id: str, root: Path, cfg: Loader, local_dir: Optional[Path] = None) -> Path:
    """The local mirror of the run whose head job is `job_id`: `local_dir`, or its run's name
    under `root`, with a launch record naming the head job (written once)."""
    jobs = api.call(cfg, "describe_jobs", what=f"head job {job_id}", jobs=[job_id]).get("jobs", [])
    if not jobs:
        raise RunNotFound(f"AWS Batch knows no job {job_id} in this region (jobs are kept about a week)")
    job = jobs[0]
    container = job.get("container") or {}
    command = container.get("command") or []
    if "--run-dir" not in command:
        raise RunNotFound(f"job {job_id} is not a miniwdl-jupyter head job (its command has no --run-dir)")
    remote = command[command.index("--run-dir") + 1]
    env = {e["name"]: e["value"] for e in container.get("environment", [])}
    local = local_dir or root / Path(remote).name
    local.mkdir(parents=True, exist_ok=True)
    settings = api.aws_settings(cfg)
    if not launch_record.read(local):
        launch_record.write(
            local,
            {
                "name": Path(remote).name.split("_", 2)[-1],
                "launcher": "aws",
                "backend": env.get("MINIWDL__SCHEDULER__CONTAINER_BACKEND", "aws_batch"),
                "job_id": job_id,
                "job_queue": job.get("jobQueue", ""),
                **api.record_fields(settings),
                "s3upload": env.get("MINIWDL__AWS__S3UPLOAD", ""),
                "remote_run_dir": remote,
                "mirror_dir": str(local.resolve()),
                "launch_time": job.get("createdAt", time.time() * 1000) / 1000,
                "start_time": job.get("createdAt", time.time() * 1000) / 1000,
            },
        )
    return local.resolve()


def sync(record: Dict[str, Any], job: Dict[str, Any], cfg: Loader) -> None:
    """Bring the mirror of `record`'s run up to date with its head job's description `job`."""
    local = Path(record["mirror_dir"])
    meta = launch_record.meta_dir(local)
    state_path = meta / "mirror.json"
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    settings = api.settings_of(record)
    stream = log_stream(job)
    if stream:
        messages, state["token"] = logs.read_new(cfg, stream, state.get("token"), settings)
        with open(local / "workflow.log.json", "a") as json_log, open(launch_record.stderr_path(local), "a") as other:
            for message in messages:  # miniwdl's JSON log lines, and whatever else the head job said
                (json_log if message.startswith("{") else other).write(message + "\n")
        (local / "workflow.log").touch()  # the monitor takes a run with a log for started
    if job.get("status") in TERMINAL and not state.get("settled"):
        _settle(record, job, local, cfg, settings)
        state["settled"] = True
    meta.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state))


def _settle(record: Dict[str, Any], job: Dict[str, Any], local: Path, cfg: Loader, settings: Optional[Dict[str, str]]) -> None:
    remote = record.get("remote_run_dir", "")
    s3upload = record.get("s3upload", "")
    if job.get("status") == "SUCCEEDED" and s3upload:
        bucket, base = upload_base(s3upload, Path(remote).name)
        key = f"{base}/outputs.json"
        try:
            body = api.call(cfg, "get_object", service="s3", settings=settings, Bucket=bucket, Key=key)["Body"].read()
        except BackendError as exn:
            _write(local / "error.json", {"error": "OutputsNotFound", "message": f"the run succeeded but s3://{bucket}/{key} could not be read: {exn}"})
            return
        document = json.loads(body)
        _write(local / "outputs.json", document.get("outputs", document))  # miniwdl's own shape: name -> value
    elif job.get("status") == "SUCCEEDED":
        # the outputs are on the shared filesystem at `remote`; submit with --s3upload to see them here
        _write(local / "outputs.json", {})
    else:
        reason = job.get("statusReason") or "no reason given"
        _write(local / "error.json", {"error": "RunFailed", "message": f"the head job {job.get('jobId')} FAILED: {reason}; its log is in {local / 'workflow.log.json'}"})


def _write(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)
