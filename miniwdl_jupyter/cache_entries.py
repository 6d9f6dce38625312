"""miniwdl's call cache as data: where its entries live, what each one holds and which files it
needs.

miniwdl writes one JSON envelope per call under `[call_cache] dir`, at `<task>/<task digest>/<inputs
digest>.json` (WDL/runtime/cache.py: `call_cache_key`), holding the call's inputs, its outputs and
the call directory that made it. A hit is refused, and the entry deleted, when a local file it
names (input or output, a symlink or what it points to) is missing or newer than the entry: so a
cleanup must keep every such file, or drop the entry first.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

from WDL.runtime.cache import CALL_CACHE_VERSION
from WDL.runtime.config import Loader


@dataclass
class CacheEntry:
    path: Path  # the entry's JSON file
    task: str  # the key's parts: task (or workflow) name, its digest, the inputs' digest
    digest: str
    inputs_digest: str
    inputs: Dict[str, Any] = field(default_factory=dict)
    outputs: Dict[str, Any] = field(default_factory=dict)
    call_dir: Optional[str] = None  # the call directory whose results these are
    extra_paths: List[str] = field(default_factory=list)  # miniwdl's additionalPaths

    @property
    def mtime(self) -> float:
        """When the entry was written; files it names must not be newer (miniwdl's coherence rule)."""
        return self.path.stat().st_mtime

    def output_files(self) -> Set[str]:
        """Local paths among the outputs (absolute path strings; outputs.json carries no types)."""
        return {v for v in _strings(self.outputs) if v.startswith("/")}


def cache_dir(cfg: Loader) -> Path:
    """`[call_cache] dir`, resolved as miniwdl's CallCache does (relative to `[file_io] root`)."""
    folder = os.path.expanduser(cfg["call_cache"]["dir"])
    return Path(folder if os.path.isabs(folder) else os.path.join(cfg["file_io"]["root"], folder))


def read_entry(path: Path, root: Path) -> Optional[CacheEntry]:
    """One entry, or None when it is not a readable entry of this miniwdl's cache format."""
    parts = path.relative_to(root).with_suffix("").parts
    if len(parts) < 3:
        return None
    try:
        envelope = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(envelope, dict) or envelope.get("miniwdlCallCacheVersion") != CALL_CACHE_VERSION:
        return None
    return CacheEntry(
        path=path,
        task="/".join(parts[:-2]),
        digest=parts[-2],
        inputs_digest=parts[-1],
        inputs=envelope.get("inputs") or {},
        outputs=envelope.get("outputs") or {},
        call_dir=envelope.get("dir"),
        extra_paths=list(envelope.get("additionalPaths") or []),
    )


def entries(cfg: Loader, task: Optional[str] = None) -> Iterator[CacheEntry]:
    """Every readable entry (of one task name when given)."""
    root = cache_dir(cfg)
    base = root / task if task else root
    if not base.is_dir():
        return
    for folder, _dirs, files in os.walk(base):
        for name in files:
            if name.endswith(".json") and not name.startswith("."):
                entry = read_entry(Path(folder) / name, root)
                if entry is not None:
                    yield entry


def needed_paths(entry: CacheEntry) -> Set[str]:
    """Files and folders the entry needs unchanged: each output path, what a symlink among them
    points to, and miniwdl's additional paths (a trailing / marks a whole folder)."""
    needed: Set[str] = set()
    for path in entry.output_files() | {p.rstrip("/") for p in entry.extra_paths}:
        needed.add(os.path.abspath(path))
        needed.add(os.path.realpath(path))
    return needed


def entries_needing(cfg: Loader, folder: Path) -> Dict[Path, Set[str]]:
    """{entry file: the paths under `folder` it needs} for every entry that needs something there."""
    prefix = str(folder.absolute()) + os.sep
    found: Dict[Path, Set[str]] = {}
    for entry in entries(cfg):
        inside = {p for p in needed_paths(entry) if p.startswith(prefix)}
        if inside:
            found[entry.path] = inside
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
