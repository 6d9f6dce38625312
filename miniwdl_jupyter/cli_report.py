"""`miniwdl-jupyter report RUN_DIR`: the run report for terminal users (e.g. after `miniwdl run`):
writes RUN_DIR/report.html and prints the report's text."""

from __future__ import annotations

import argparse
import sys

from .errors import RunNotFound


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write a run's report.html and print its report")
    parser.add_argument("run_dir", help="the run directory (miniwdl run --dir)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import build_report, write_report_html

    run_dir = Path(args.run_dir)
    if not (run_dir / "workflow.log").exists() and not (run_dir / "task.log").exists():
        raise RunNotFound(f"{run_dir} is not a miniwdl run directory (it has no workflow.log or task.log)")
    report = build_report(run_dir)
    path = write_report_html(run_dir, report)
    print(report.text())
    print(f"report: {path}", file=sys.stderr)
    return 0
