"""`miniwdl-jupyter submit`: launch a whole run on AWS Batch (the `aws` launcher), like
miniwdl-aws-submit: the `miniwdl run` process becomes a Batch head job whose tasks are Batch jobs,
its run directory on the shared filesystem (EFS). Returns at once with the run directory (follow
it later with `miniwdl_jupyter.attach(RUN_DIR)`), or waits with `--wait`.

Wiring: the console script's parser calls `add_parser(subparsers)`; the chosen subcommand calls
`main(args)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

SELF_TEST_WDL = textwrap.dedent(
    """\
    version 1.1
    workflow self_test {
      input { Array[String] names = ["a", "b"] }
      scatter (n in names) { call hello { input: name = n } }
      output { Array[File] files = hello.out }
    }
    task hello {
      input { String name }
      command <<< echo "hello ~{name}" > out.txt >>>
      output { File out = "out.txt" }
      runtime { docker: "IMAGE" cpu: 1 memory: "256 MiB" }
    }
    """
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "submit",
        help="run a workflow on AWS Batch as a head job (the notebook or terminal may close)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("wdl", nargs="?", help="WDL file or URL (not needed with --self-test)")
    parser.add_argument("inputs", nargs="*", metavar="name=value", help="inputs, as in `miniwdl run` (JSON values or strings)")
    parser.add_argument("-i", "--input", metavar="FILE", help="inputs JSON file (the name=value pairs override it)")
    parser.add_argument("--task", help="run this task of the document instead of its workflow")
    parser.add_argument("--dir", help="run directory: a new one under DIR, or exactly DIR given as DIR/. [on the shared filesystem]")
    parser.add_argument("--cfg", help="miniwdl.cfg file (MINIWDL__* environment variables are passed through too)")
    parser.add_argument("--no-cache", action="store_true", help="do not reuse cached task results")

    batch = parser.add_argument_group("AWS Batch")
    batch.add_argument("--workflow-queue", help="job queue for the head job [aws] workflow_queue")
    batch.add_argument("--task-queue", help="job queue for task jobs [aws] task_queue (default: the workflow queue's DefaultTaskQueue tag)")
    batch.add_argument("--task-queue-fallback", help="job queue for tasks retried after a spot interruption [aws] task_queue_fallback")
    batch.add_argument("--fs", help="EFS file system id (fs-...) [aws] fs")
    batch.add_argument("--fsap", help="EFS access point id (fsap-...) [aws] fsap (default: the workflow queue's DefaultFsap tag)")
    batch.add_argument("--host-path", help="instead of EFS, a directory every job host mounts [aws] host_path")
    batch.add_argument("--mount", help="where the shared filesystem is mounted, here and in every job [aws] mount")
    batch.add_argument("--region", help="AWS region [aws] region")

    head = parser.add_argument_group("head job")
    head.add_argument("--image", help="head job image with miniwdl-jupyter[aws] [aws] head_image")
    head.add_argument("--cpu", type=int, help="vCPUs of the head job [1]")
    head.add_argument("--memory-GiB", type=int, dest="memory_gib", help="memory of the head job [4]")
    head.add_argument("--workflow-role", help="job role ARN of the head job [aws] head_job_role_arn (default: WorkflowEngineRoleArn tag)")
    head.add_argument("--no-env", action="store_true", help="do not pass MINIWDL__* environment variables to the head job")
    head.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="more environment for the head job (repeatable)")

    out = parser.add_argument_group("outputs")
    out.add_argument("--s3upload", metavar="s3://BUCKET/PREFIX", help="upload outputs and logs there; writes outputs.s3.json")
    out.add_argument("--delete-after", choices=("success", "failure", "always"), help="with --s3upload, delete the bulk of the run directory afterwards")

    parser.add_argument("--wait", "-w", action="store_true", help="wait for the run to end; exit status 0 on success")
    parser.add_argument("--follow", action="store_true", help="copy the head job's CloudWatch log to stderr until it ends (implies --wait)")
    parser.add_argument("--self-test", action="store_true", help="submit a small built-in workflow (uses --self-test-image for its tasks)")
    parser.add_argument("--self-test-image", default="ubuntu:22.04", help="task image of the self-test [ubuntu:22.04]")
    parser.set_defaults(func=main)
    return parser


def overrides(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """The options given, as `[aws]` configuration overrides."""
    aws: Dict[str, Any] = {}
    for option, key in (
        ("workflow_queue", "workflow_queue"),
        ("task_queue", "task_queue"),
        ("task_queue_fallback", "task_queue_fallback"),
        ("fs", "fs"),
        ("fsap", "fsap"),
        ("host_path", "host_path"),
        ("mount", "mount"),
        ("region", "region"),
        ("image", "head_image"),
        ("cpu", "head_vcpu"),
        ("workflow_role", "head_job_role_arn"),
        ("s3upload", "s3upload"),
        ("delete_after", "delete_after"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            aws[key] = value
    if args.memory_gib:
        aws["head_memory_mb"] = args.memory_gib * 1024
    env = {}
    for pair in args.env:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--env takes NAME=VALUE, not {pair!r}")
        env[name] = value
    if env:
        aws["head_env"] = env
    return {"aws": aws} if aws else {}


def queue_tag_defaults(cfg: Any) -> Dict[str, str]:
    """Settings a workflow queue may carry as tags (as miniwdl-aws reads them): DefaultTaskQueue,
    DefaultTaskQueueFallback, DefaultFsap, WorkflowEngineRoleArn; only where none is configured."""
    from ..config import option
    from . import api

    queue = option(cfg, "aws", "workflow_queue")
    if not queue:
        return {}
    found = api.call(cfg, "describe_job_queues", what=f"workflow queue {queue}", jobQueues=[queue]).get("jobQueues", [])
    tags = found[0].get("tags", {}) if found else {}
    defaults = {}
    for tag, key in (
        ("DefaultTaskQueue", "task_queue"),
        ("DefaultTaskQueueFallback", "task_queue_fallback"),
        ("DefaultFsap", "fsap"),
        ("WorkflowEngineRoleArn", "head_job_role_arn"),
    ):
        if tag in tags and not option(cfg, "aws", key):
            defaults[key] = tags[tag]
    return defaults


def parse_pairs(pairs: List[str]) -> Dict[str, Any]:
    inputs: Dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise SystemExit(f"inputs are name=value, not {pair!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if name in inputs:  # a repeated name fills an Array
            inputs[name] = (inputs[name] if isinstance(inputs[name], list) else [inputs[name]]) + [value]
        else:
            inputs[name] = value
    return inputs


def main(args: argparse.Namespace) -> int:
    import os

    from .. import config as mj_config
    from .. import launch_record
    from ..errors import MiniwdlJupyterError
    from ..runs import run
    from . import discovery
    from .settings import BatchSettings

    if args.no_env:
        for key in [k for k in os.environ if k.startswith("MINIWDL__")]:
            del os.environ[key]
    try:
        cfg = discovery.apply_defaults(mj_config.load(args.cfg, overrides(args)))
        tag_defaults = queue_tag_defaults(cfg)
        if tag_defaults:
            cfg.override({"aws": tag_defaults})
        inputs: Dict[str, Any] = {}
        if args.input:
            inputs.update(json.loads(Path(args.input).read_text()))
        inputs.update(parse_pairs(args.inputs))
        if args.self_test:
            wdl: str = SELF_TEST_WDL.replace("IMAGE", args.self_test_image)
        elif args.wdl:
            wdl = args.wdl
        else:
            raise SystemExit("give a WDL file (or --self-test)")
        run_dir = args.dir
        shared = BatchSettings(cfg)
        if run_dir is None and not shared.on_mount(os.path.expanduser(mj_config.option(cfg, "jupyter", "root"))):
            run_dir = os.path.join(shared.mount, "wdl_runs")  # the head job must see it
        handle = run(wdl, inputs, backend="aws_batch", dir=run_dir, cache=not args.no_cache, task=args.task, wait=False, cfg=cfg, submit="aws")
        record = launch_record.read(handle.run_dir) or {}
        print(json.dumps({"run_dir": str(handle.run_dir), "job_id": record.get("job_id"), "job_queue": record.get("job_queue")}))
        sys.stdout.flush()
        if args.follow:
            from .logs import follow

            follow(record, cfg, sys.stderr.write)
        if args.wait or args.follow:
            handle.wait()
            print(json.dumps({"status": handle.status, "outputs": handle.outputs}, default=str, indent=2))
        return 0
    except MiniwdlJupyterError as exn:
        print("\n".join(exn._render_traceback_()), file=sys.stderr)
        return 1
