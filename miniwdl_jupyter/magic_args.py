"""Argument handling every `%wdl` subcommand shares: parse with the subcommand's magic_arguments
spec, load the configuration, both failing as IPython UsageErrors."""

from __future__ import annotations

import argparse
from typing import Callable, List, Optional

from IPython.core.error import UsageError
from WDL.runtime.config import Loader

from . import runs
from .errors import ConfigError


def parse(spec: Callable[[], None], argv: List[str]) -> argparse.Namespace:
    try:
        return spec.parser.parse_args(argv)  # type: ignore[attr-defined]
    except UsageError as exn:  # name the subcommand: argparse's message alone does not
        raise UsageError(f"%{spec.parser.prog}: {exn}") from None  # type: ignore[attr-defined]


def load_config(cfg_file: Optional[str]) -> Loader:
    try:
        return runs.load_config(cfg_file)
    except ConfigError as exn:
        raise UsageError(str(exn)) from None
