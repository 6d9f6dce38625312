"""How much disk a run takes, in total and by call, and how much of it the call cache needs.

Sizes are bytes on disk (allocated blocks, each hard-linked file once), never following symlinks:
a cached call's `out/` links point into the run that made them and are counted there. Walking a
run costs one stat per file, which on NFS/EFS is a round trip each; so the size of an ended run is
computed once and kept in its `.miniwdl_jupyter/size.json` (a cleanup rewrites it), and listing
1,000 runs reads 1,000 small files instead of walking them all (benchmarks/bench_run_sizes.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from WDL.runtime.config import Loader

from . import cache_entries, launch_record
from .files import atomic_write_text

SIZE_FILE = "size.json"
_SIZE_VERSION = 2


def file_bytes(st: os.stat_result) -> int:
    """Bytes a file occupies: its allocated blocks (sparse and tiny files as the disk sees them; a
    file with no block allocated is 0). The apparent size only where the OS gives no block count."""
    blocks = getattr(st, "st_blocks", None)
    return st.st_size if blocks is None else blocks * 512


def lstat_once(path: Path, seen: Set[Tuple[int, int]]) -> Optional[os.stat_result]:
    """`path`'s lstat, or None when it is gone or its inode was counted already (hard links)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (st.st_dev, st.st_ino) in seen:
        return None
    seen.add((st.st_dev, st.st_ino))
    return st


def tree_bytes(path: Path, seen: Optional[Set[Tuple[int, int]]] = None) -> int:
    """Bytes under `path` (itself included), symlinks not followed, each inode counted once."""
    seen = set() if seen is None else seen
    st = lstat_once(path, seen)
    if st is None:
        return 0
    total = file_bytes(st)
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            children = list(os.scandir(path))
        except OSError:
            return total
        for child in children:
            total += tree_bytes(Path(child.path), seen)
    return total


@dataclass
class RunUsage:
    run_dir: Path
    total: int = 0
    calls: List[Tuple[str, int]] = field(default_factory=list)  # (call dir name, bytes), largest first
    other: int = 0  # logs, inputs, outputs.json, out/ links, the run's own files
    cache_needed: int = 0  # bytes of files the call cache points to
    cache_entries: int = 0  # entries pointing into this run


def usage(run_dir: Path, cfg: Optional[Loader] = None, *, ended: bool = False) -> RunUsage:
    """Walk the run: total, per top-level call (a sub-workflow with its calls), and, given the
    configuration, the bytes the call cache needs. Refreshes the kept size of an ended run."""
    run_dir = Path(run_dir)
    result = RunUsage(run_dir)
    seen: Set[Tuple[int, int]] = set()
    stamp = _stamp(run_dir)
    try:
        result.other = file_bytes(os.lstat(run_dir))
    except OSError:
        return result
    try:
        children = sorted(os.scandir(run_dir), key=lambda e: e.name)
    except OSError:
        return result
    calls: Dict[str, int] = {}
    for child in children:
        size = tree_bytes(Path(child.path), seen)
        if child.name.startswith("call-") and child.is_dir(follow_symlinks=False):
            calls[child.name] = size
        else:
            result.other += size
    result.calls = sorted(calls.items(), key=lambda item: (-item[1], item[0]))
    result.total = result.other + sum(calls.values())
    if cfg is not None:
        needed = cache_entries.entries_needing(cfg, run_dir)
        result.cache_entries = len(needed)
        counted: Set[Tuple[int, int]] = set()  # a file two entries need counts once
        result.cache_needed = sum(tree_bytes(Path(p), counted) for p in set().union(*needed.values())) if needed else 0
    if ended:
        _keep(run_dir, result.total, stamp)
    return result


def run_size(run_dir: Path, ended: bool) -> int:
    """The run's size: kept from earlier for an ended run, walked (and then kept) otherwise."""
    if ended:
        kept = kept_size(run_dir)
        if kept is not None:
            return kept
    stamp = _stamp(run_dir)  # before the walk: a file added meanwhile makes the kept size stale
    total = tree_bytes(Path(run_dir))
    if ended:
        _keep(run_dir, total, stamp)
    return total


def kept_size(run_dir: Path) -> Optional[int]:
    try:
        data = json.loads((launch_record.meta_dir(run_dir) / SIZE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("version") == _SIZE_VERSION and isinstance(data.get("bytes"), int):
        # an ended run still gains files at its top (report.html when it is first followed to its
        # end): those change the folder's mtime, and the size is walked again
        if data.get("stamp") == _stamp(run_dir):
            return data["bytes"]
    return None


def _stamp(run_dir: Path) -> Optional[int]:
    try:
        return os.stat(run_dir).st_mtime_ns
    except OSError:
        return None


def forget_size(run_dir: Path) -> None:
    """Drop the kept size (before the run's files change: a crash then leaves it to be walked again)."""
    try:
        (launch_record.meta_dir(run_dir) / SIZE_FILE).unlink()
    except OSError:
        pass


def _keep(run_dir: Path, total: int, stamp: Optional[int]) -> None:
    try:
        meta = launch_record.meta_dir(run_dir)
        meta.mkdir(exist_ok=True)
        atomic_write_text(meta / SIZE_FILE, json.dumps({"version": _SIZE_VERSION, "bytes": total, "stamp": stamp}))
    except OSError:
        pass  # a read-only run directory is still listed, only walked again next time


def human(n: Optional[int]) -> str:
    """1.2 GB, 340 MB, 12 kB, 512 B (decimal units, as `du --si` and cloud bills)."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
