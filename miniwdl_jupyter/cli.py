"""The `miniwdl-jupyter` command: argparse subcommands, each in its own module.

`wes serve` is here now; `submit` (miniwdl_jupyter/aws/submit.py, exposing `add_parser(subparsers)`
and `main(args)`) is registered when that module exists.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

from .errors import MiniwdlJupyterError

# Modules that contribute subcommands: each has add_parser(subparsers), and sets `handler`
# (or offers main(args)). Optional ones are skipped when not installed in this version.
_SUBCOMMANDS = ("miniwdl_jupyter.wes.serve", "miniwdl_jupyter.aws.submit", "miniwdl_jupyter.aws.command", "miniwdl_jupyter.cli_cleanup", "miniwdl_jupyter.cli_report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miniwdl-jupyter", description="miniwdl-jupyter command line")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exn:
            if exn.name == module_name:
                continue  # that subcommand is not part of this version
            raise
        before = set(subparsers.choices)
        module.add_parser(subparsers)
        if hasattr(module, "main"):
            for name in set(subparsers.choices) - before:
                subparsers.choices[name].set_defaults(handler=module.main)
    return parser


def parse_with_late_inputs(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """parse_args, except that a subcommand taking `name=value` inputs (as `miniwdl run` does) also
    takes them after its options: argparse stops filling a positional list at the first option."""
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "inputs", None), list) and all("=" in a and not a.startswith("-") for a in extra):
        args.inputs.extend(extra)
    elif extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    return args


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parse_with_late_inputs(parser, argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except MiniwdlJupyterError as exn:
        print(f"{exn.title}: {exn}", file=sys.stderr)
        return 2
    except ImportError as exn:
        print(f"{exn}: install the extra it belongs to, e.g. pip install 'miniwdl-jupyter[wes]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
