"""Plugin registries of the notebook side (launchers, backend companions), like papermill's engines:
built-ins named in code plus an entry-point group that other packages add to."""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Dict, FrozenSet, List, Optional


@functools.lru_cache(maxsize=None)
def _installed(group: str) -> FrozenSet[str]:
    """Read once per process, as papermill reads its engines: scanning every installed
    distribution's entry points costs tens of milliseconds, and `auto` asks on every run."""
    return frozenset(ep.name for ep in entry_points(group=group))


def names(group: str, builtin: Dict[str, str]) -> List[str]:
    return sorted(set(builtin) | _installed(group))


def load(group: str, name: str, builtin: Dict[str, str]) -> Optional[type]:
    """The class registered as `name` ("module:Class" in `builtin`, else the entry point), or None."""
    target = builtin.get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    return found[0].load() if found else None
