"""One Loader from what a runs-API entry point was given (a Loader, a dict of overrides, a cfg
file, or None): the configuration is loaded once there and passed down (docs/design.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Dict, Union

from WDL.runtime.config import Loader

from . import config
from .aws import studio_discovery

CfgArg = Union[None, str, os.PathLike, Dict[str, Dict[str, Any]], Loader]


def load_config(cfg: CfgArg = None) -> Loader:
    """One Loader from what an entry point was given: a Loader, a dict of overrides, a cfg file or None."""
    if isinstance(cfg, Loader):
        loader = config.apply_defaults(cfg)  # one made elsewhere knows nothing of our sections
    elif isinstance(cfg, Mapping):
        loader = config.load(overrides=dict(cfg))
    else:
        loader = config.load(cfg)
    # In SageMaker Studio, runs live on its EFS (the run root) and use its Batch queue: found here,
    # explicitly, once per process (outside Studio: one missing-file check).
    return studio_discovery.apply_defaults(loader)


def with_overrides(loader: Loader, extra: Dict[str, Dict[str, Any]]) -> Loader:
    """A new loader: `loader`'s file and overrides plus `extra` (the caller's loader stays as it was)."""
    overrides: Dict[str, Dict[str, Any]] = {s: dict(loader._overrides.items(s)) for s in loader._overrides.sections()}
    for section, options in extra.items():
        overrides.setdefault(section, {}).update(options)
    return config.load(loader.cfg_filename, overrides=overrides)
