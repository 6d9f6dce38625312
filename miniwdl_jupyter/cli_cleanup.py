"""`miniwdl-jupyter cleanup`: the plan first, applied only with --yes. `%wdl cleanup` shares the
options and the flow (its confirmation is a question in the notebook)."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Dict, List, Tuple

from . import cleanup

# (flags, argparse keywords): one list for the command and the magic.
OPTIONS: List[Tuple[Tuple[str, ...], Dict[str, Any]]] = [
    (("runs",), dict(nargs="*", metavar="RUN", help="run names or shell patterns (e.g. '2026*_align')")),
    (("--keep-last",), dict(type=int, metavar="N", help="keep the newest N runs of each workflow; choose the others")),
    (("--older-than",), dict(metavar="AGE", help="choose runs that ended longer ago than AGE (30d, 12h, 90m, 2w)")),
    (("--failed",), dict(action="store_true", help="choose failed runs")),
    (("--cancelled",), dict(action="store_true", help="choose cancelled runs")),
    (("--all",), dict(action="store_true", dest="all_files", help="delete logs and error.json too (default: keep them)")),
    (("--drop-cache",), dict(action="store_true", help="also delete files the call cache uses, and those cache entries")),
    (("--yes", "-y"), dict(action="store_true", help="apply the plan (default: only show it)")),
    (("--root",), dict(metavar="DIR", help="run root (default: [jupyter] root)")),
    (("--cfg",), dict(metavar="FILE", help="miniwdl configuration file")),
]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cleanup",
        help="delete old runs safely (a plan first; --yes applies it)",
        description="Delete or trim runs: never a running one, never a file the call cache still uses "
        "(unless --drop-cache), logs and error.json kept (unless --all). Criteria combine: a run is "
        "chosen when it matches all of them.",
    )
    for flags, kwargs in OPTIONS:
        parser.add_argument(*flags, **kwargs)


def run_cleanup(args: argparse.Namespace, confirm: Callable[[cleanup.CleanupPlan], bool], out: Callable[[str], None]) -> cleanup.CleanupResult:
    """Plan, show the plan, and apply it when `args.yes` or `confirm(plan)` says so."""
    plan = cleanup.plan(
        args.root,
        keep_last=args.keep_last,
        older_than=args.older_than,
        failed=args.failed,
        cancelled=args.cancelled,
        names=args.runs or (),
        all_files=args.all_files,
        drop_cache=args.drop_cache,
        cfg=args.cfg,
    )
    out(plan.text())
    if plan.empty:
        return cleanup.CleanupResult(skipped={p.name: p.reason for p in plan.runs})
    if not (args.yes or confirm(plan)):
        out("nothing deleted: add --yes to apply this plan")
        return cleanup.CleanupResult()
    result = cleanup.apply(plan, cfg=args.cfg)
    out(result.text())
    return result


def main(args: argparse.Namespace) -> int:
    run_cleanup(args, confirm=lambda plan: False, out=print)
    return 0
