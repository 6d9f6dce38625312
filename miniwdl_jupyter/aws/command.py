"""`miniwdl-jupyter aws ...`: the AWS infrastructure from the command line.

  aws template                      print the CloudFormation template
  aws deploy --stack NAME ...       create or update the stack, showing progress, and print the
                                    setting that uses it ([aws] stack = NAME)
  aws destroy --stack NAME          delete it, keeping its EFS and S3 bucket unless --delete-data
  aws doctor                        check the setup a run would use, one row per check with its fix
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("aws", help="deploy, check or remove the AWS infrastructure", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="aws_command", required=True)

    verbs.add_parser("template", help="print the CloudFormation template").set_defaults(handler=template)

    deploy = verbs.add_parser("deploy", help="create or update the stack and wait for it")
    _common(deploy)
    where = deploy.add_mutually_exclusive_group()
    where.add_argument("--new-vpc", action="store_true", help="make a new VPC with two public subnets")
    where.add_argument("--vpc", default="", help="an existing VPC id (with --subnets)")
    deploy.add_argument("--subnets", default="", help="one or two subnet ids of --vpc, comma-separated")
    deploy.add_argument("--studio-domain", default="", help="a SageMaker Studio domain: use its EFS (and its VPC and subnets unless given)")
    deploy.add_argument("--studio-user", default="", help="with --studio-domain: the user profile whose EFS uid the access point gets")
    deploy.add_argument("--uid", type=int, help="POSIX uid of the EFS access point [this user's uid]")
    deploy.add_argument("--max-vcpus", type=int, help="most vCPUs of task jobs at once [256]")
    deploy.set_defaults(handler=deploy_command)

    destroy = verbs.add_parser("destroy", help="delete the stack (keeps its EFS and S3 bucket unless --delete-data)")
    _common(destroy)
    destroy.add_argument("--delete-data", action="store_true", help="delete the stack's EFS file system and S3 bucket too")
    destroy.set_defaults(handler=destroy_command)

    doctor = verbs.add_parser("doctor", help="check the AWS setup a run would use (read-only), one row per check with its fix")
    doctor.add_argument("--stack", default="", help="check this stack's setup ([aws] stack)")
    doctor.add_argument("--region", help="AWS region [aws] region")
    doctor.add_argument("--cfg", help="miniwdl.cfg file")
    doctor.set_defaults(handler=doctor_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="the CloudFormation stack's name")
    parser.add_argument("--region", help="AWS region [aws] region")
    parser.add_argument("--cfg", help="miniwdl.cfg file ([aws] region / endpoint_url)")


def _loader(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .. import config

    aws = {key: getattr(args, key) for key in ("region", "stack") if getattr(args, key, None)}
    # `--stack` names the stack to deploy or destroy; only doctor reads its outputs as settings
    if getattr(args, "handler", None) is not doctor_command:
        aws.pop("stack", None)
    return config.load(args.cfg, {"aws": aws} if aws else None)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def template(args: argparse.Namespace) -> int:
    from .stack import template_text

    sys.stdout.write(template_text())
    return 0


def deploy_command(args: argparse.Namespace) -> int:
    from . import stack

    cfg = _loader(args)
    params = stack.parameters(
        cfg,
        vpc=args.vpc,
        subnets=[s for s in args.subnets.split(",") if s.strip()],
        new_vpc=args.new_vpc,
        studio_domain=args.studio_domain,
        studio_user=args.studio_user,
        uid=args.uid,
        task_max_vcpus=args.max_vcpus,
    )
    found = stack.deploy(cfg, args.stack, params, progress=_progress)
    width = max(map(len, found))
    for key in sorted(found):
        print(f"{key:<{width}}  {found[key]}")
    print(f"\nUse it: [aws] stack = {args.stack}   (or MINIWDL__AWS__STACK={args.stack})")
    return 0


def destroy_command(args: argparse.Namespace) -> int:
    from . import stack

    kept = stack.destroy(_loader(args), args.stack, delete_data=args.delete_data, progress=_progress)
    print(f"stack {args.stack} deleted" + (f"; kept: {', '.join(kept)} (--delete-data removes them)" if kept else ""))
    return 0


def doctor_command(args: argparse.Namespace) -> int:
    from . import doctor

    started = time.monotonic()
    rows = doctor.diagnose(_loader(args))
    print(doctor.format_text(rows))
    print(f"\n{sum(r.status == doctor.FAIL for r in rows)} failing, {sum(r.status == doctor.WARN for r in rows)} warnings ({time.monotonic() - started:.1f} s)")
    return 1 if doctor.failed(rows) else 0
