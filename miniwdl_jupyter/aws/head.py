"""The entry point of an `--submit aws` head job (run inside the Batch job, not in the notebook):

    python3 -m miniwdl_jupyter.aws.head --run-dir RUN_DIR -- -m WDL run ...

Runs `miniwdl run` with the given arguments, its stdout/stderr going to the run directory's
launch files (as the local launcher's do) and its stderr also to this job's own output, which
Batch sends to CloudWatch Logs; forwards SIGTERM (Batch's TerminateJob) to it. Afterwards, with
`[aws] s3upload = s3://bucket/prefix`, uploads the outputs and logs and writes `outputs.s3.json`
(the outputs as s3:// URIs; uploaded as `outputs.json` next to them); with `[aws] delete_after =
success|failure|always`, then removes the bulk of the run directory. Exits with miniwdl's status.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import launch_record

_logger = logging.getLogger("miniwdl_jupyter.aws.head")
# What --delete-after keeps: the small files that say what happened.
_KEEP = {"workflow.log", "workflow.log.json", "outputs.json", "error.json", "outputs.s3.json", "inputs.json", "rerun", launch_record.DIR_NAME}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="aws_head")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    run_dir = Path(args.run_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s aws_head %(message)s", stream=sys.stdout)
    launch_record.meta_dir(run_dir).mkdir(parents=True, exist_ok=True)
    status = run_miniwdl([sys.executable, *command], run_dir)
    from ..config import load, option

    cfg = load()
    s3upload = option(cfg, "aws", "s3upload")
    delete_after = option(cfg, "aws", "delete_after")
    if s3upload:
        try:
            upload(cfg, run_dir, s3upload, succeeded=status == 0)
        except Exception as exn:  # the run's own result stands; say why the upload failed
            _logger.error("s3upload to %s failed: %s", s3upload, exn)
            return status or 1
        if delete_after in ("always", "success" if status == 0 else "failure"):
            delete_bulk(run_dir)
    return status


def run_miniwdl(command: List[str], run_dir: Path) -> int:
    with open(launch_record.stdout_path(run_dir), "wb") as out, open(launch_record.stderr_path(run_dir), "wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))

        def tee() -> None:  # to the run directory and to CloudWatch (this job's stdout)
            for line in iter(proc.stderr.readline, b""):
                err.write(line)
                err.flush()
                sys.stdout.buffer.write(line)
                sys.stdout.flush()

        teeing = threading.Thread(target=tee, daemon=True)
        teeing.start()
        status = proc.wait()
        teeing.join(10)
    _logger.info("miniwdl run exited with status %d", status)
    return status


def upload_base(s3upload: str, run_name: str) -> Tuple[str, str]:
    """(bucket, key prefix) under which a run's outputs and logs are uploaded: s3upload/RUN_NAME."""
    bucket, _, prefix = s3upload[len("s3://"):].partition("/")
    return bucket, "/".join(p for p in (prefix.strip("/"), run_name) if p)


def upload(cfg: Any, run_dir: Path, s3upload: str, *, succeeded: bool) -> Dict[str, Any]:
    """Upload outputs (files and directories) and logs under s3upload/RUN_NAME/; returns the
    outputs with s3:// URIs in place of paths, also written to RUN_DIR/outputs.s3.json."""
    from . import api

    s3 = api.client(cfg, "s3")
    bucket, base = upload_base(s3upload, run_dir.name)

    def key_of(path: Path) -> str:
        return f"{base}/{path.relative_to(run_dir)}" if path.is_relative_to(run_dir) else f"{base}/extra/{path.name}"

    def put(path: Path) -> str:
        s3.upload_file(str(path), bucket, key_of(path))
        return f"s3://{bucket}/{key_of(path)}"

    put.prefix_of = lambda path: f"s3://{bucket}/{key_of(path)}/"  # type: ignore[attr-defined]

    for name in ("workflow.log", "error.json", "inputs.json"):
        if (run_dir / name).exists():
            put(run_dir / name)
    outputs_s3: Dict[str, Any] = {}
    if succeeded and (run_dir / "outputs.json").exists():
        outputs = json.loads((run_dir / "outputs.json").read_text())
        outputs_s3 = _map_paths(outputs.get("outputs", outputs), run_dir, put)
        document = {"dir": f"s3://{bucket}/{base}", "outputs": outputs_s3}
        (run_dir / "outputs.s3.json").write_text(json.dumps(document, indent=2))
        s3.put_object(Bucket=bucket, Key=f"{base}/outputs.json", Body=json.dumps(document, indent=2).encode())
        _logger.info("outputs uploaded to s3://%s/%s/", bucket, base)
    return outputs_s3


def _map_paths(value: Any, run_dir: Path, put) -> Any:
    """Output values with each existing local file uploaded (a directory: each file under it) and
    replaced by its s3:// URI."""
    if isinstance(value, dict):
        return {k: _map_paths(v, run_dir, put) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_paths(v, run_dir, put) for v in value]
    if isinstance(value, str) and value.startswith("/") and os.path.exists(value):
        path = Path(value)
        if path.is_dir():  # each file under it; the value becomes the directory's prefix
            for root, _, files in os.walk(path, followlinks=True):
                for name in files:
                    put(Path(root) / name)
            return put.prefix_of(path)
        return put(path)
    return value


def delete_bulk(run_dir: Path) -> None:
    """--delete-after: remove call directories and out/ links, keeping the small files that say
    what happened (logs, outputs.json, error.json, outputs.s3.json, the launch record)."""
    for entry in run_dir.iterdir():
        if entry.name in _KEEP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    _logger.info("deleted the bulk of %s", run_dir)


if __name__ == "__main__":
    sys.exit(main())
