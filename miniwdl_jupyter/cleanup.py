"""Deleting old runs safely: a plan first, then its application.

Safety rules (docs/runs.md "Cleaning up"):
- A run that is running, or whose launcher says its job is still queued or running (a run on
  another host of a shared filesystem shows no local process), is never touched; while a run is
  cleaned, we hold the exclusive lock miniwdl holds while it runs (`workflow.log`'s flock).
- Files a call cache entry needs (its outputs, the files its `out/` links point to) are kept, unless
  `drop_cache`: then those entries are deleted first, so no later run gets a dangling hit.
- Logs, error.json, outputs.json and inputs are kept unless `all_files`.
- A crash at any point leaves every run listable and every cache entry valid: entries go before
  the files they name; a whole run is first renamed into `<root>/.trash` (atomic: listed or gone),
  and trimming leaves the files that make a run a run until last; the kept size is dropped first.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from WDL.runtime.config import Loader

from . import cache_entries, config, disk_usage, launch_record, run_dirs
from .errors import InputError
from .launchers import get_launcher
from .monitor import CANCELLED, FAILED
from .runs import Run, list_runs, load_config

TRASH = ".trash"
# What trimming a run keeps (unless all_files): what tells its story and makes it a run.
KEPT_NAMES = re.compile(r"(workflow|task)\.log(\.json)?|error\.json|outputs\.json|inputs\.json|rerun|stderr\d*\.txt")
KEPT_DIRS = (launch_record.DIR_NAME, "wdl")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class RunPlan:
    run_dir: Path
    name: str  # the run directory's name
    status: str
    action: str  # "delete" (the whole directory), "trim" (keep logs...), "skip"
    reason: str = ""
    bytes: int = 0  # to be freed
    cache_kept: int = 0  # bytes kept because the call cache needs them
    drop_entries: List[Path] = field(default_factory=list)  # entries to delete first (drop_cache)
    files: List[Path] = field(default_factory=list)  # what a trim deletes


@dataclass
class CleanupPlan:
    root: Path
    runs: List[RunPlan]
    drop_cache: bool = False
    all_files: bool = False
    trash: int = 0  # bytes an interrupted cleanup left in <root>/.trash, emptied first

    @property
    def bytes(self) -> int:
        return self.trash + sum(p.bytes for p in self.runs if p.action != "skip")

    @property
    def empty(self) -> bool:
        return not self.trash and all(p.action == "skip" for p in self.runs)

    def text(self) -> str:
        if not self.runs and not self.trash:
            return f"nothing to clean up under {self.root}"
        lines = [f"cleanup plan for {self.root}:"]
        for p in self.runs:
            lines.append(f"  {p.action:6} {p.name}  {p.status}  {disk_usage.human(p.bytes) if p.action != 'skip' else '-'}  ({p.reason})")
        if self.trash:
            lines.append(f"  delete {TRASH}  {disk_usage.human(self.trash)}  (what an interrupted cleanup left)")
        entries = sum(len(p.drop_entries) for p in self.runs if p.action != "skip")
        if entries:
            lines.append(f"  and {entries} call cache entries that point into these runs (--drop-cache)")
        lines.append(f"frees {disk_usage.human(self.bytes)}")
        return "\n".join(lines)


@dataclass
class CleanupResult:
    freed: int = 0
    deleted: List[str] = field(default_factory=list)
    trimmed: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # run -> why
    dropped_entries: int = 0

    def text(self) -> str:
        parts = [f"freed {disk_usage.human(self.freed)}: {len(self.deleted)} runs deleted, {len(self.trimmed)} trimmed"]
        if self.dropped_entries:
            parts.append(f"{self.dropped_entries} call cache entries dropped")
        parts += [f"left {name} alone: {why}" for name, why in self.skipped.items()]
        return "\n".join(parts)


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '2w', '45s' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise InputError(f"--older-than {text!r}: give an age such as 30d, 12h, 90m or 2w")
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def plan(
    root=None,
    *,
    keep_last: Optional[int] = None,
    older_than: Optional[str] = None,
    failed: bool = False,
    cancelled: bool = False,
    names: Sequence[str] = (),
    all_files: bool = False,
    drop_cache: bool = False,
    cfg=None,
) -> CleanupPlan:
    """Which runs a cleanup would delete or trim, and how many bytes that frees. Criteria combine:
    a run is chosen when it matches every one given (e.g. failed runs older than 30 days)."""
    if keep_last is None and older_than is None and not failed and not cancelled and not names:
        raise InputError("cleanup needs a choice of runs: --keep-last N, --older-than AGE, --failed, --cancelled or run names")
    if keep_last is not None and keep_last < 0:
        raise InputError(f"--keep-last {keep_last}: give 0 or more runs to keep per workflow")
    age = parse_age(older_than) if older_than is not None else None
    loader = load_config(cfg)
    base = Path(root) if root else run_dirs.run_root(loader)
    found = list_runs(base, cfg=loader)  # newest first
    if names:
        unknown = [n for n in names if not any(fnmatch.fnmatchcase(r.run_dir.name, n) for r in found)]
        if unknown:
            raise InputError(f"no run under {base} matches {', '.join(unknown)}; `%wdl runs` lists them")
    newest: Dict[str, int] = {}
    chosen: List[Run] = []
    for run in found:
        state = run.poll()
        seen = newest[run.name] = newest.get(run.name, 0) + 1
        if keep_last is not None and seen <= keep_last:
            continue
        if age is not None and time.time() - (state.end_time or state.start_time or time.time()) < age:
            continue
        if (failed or cancelled) and not ((failed and state.status == FAILED) or (cancelled and state.status == CANCELLED)):
            continue
        if names and not any(fnmatch.fnmatchcase(run.run_dir.name, n) for n in names):
            continue
        chosen.append(run)
    needs = _cache_needs(loader, base) if chosen else {}
    items = [_plan_run(r, loader, needs, all_files, drop_cache) for r in chosen]
    for item in items:  # a run named outright (not by a pattern) that is in use is an error, not a skip
        if item.action == "skip" and item.name in names:
            raise InputError(f"run {item.name} is in use ({item.reason}); cancel it first (%wdl cancel {item.name}) or wait for it to end")
    return CleanupPlan(base, items, drop_cache, all_files, disk_usage.tree_bytes(base / TRASH))


def _cache_needs(cfg: Loader, root: Path) -> Dict[Path, Set[str]]:
    """{cache entry: paths under the run root it needs}: read once for the whole plan."""
    return cache_entries.entries_needing(cfg, root.resolve())


def _plan_run(run: Run, cfg: Loader, needs: Dict[Path, Set[str]], all_files: bool, drop_cache: bool) -> RunPlan:
    state = run.poll()
    # Real paths throughout: cache entries name files as miniwdl saw them (and what links point to).
    run_dir = run.run_dir.resolve()
    item = RunPlan(run_dir, run_dir.name, state.status, "skip")
    busy = running_reason(run, cfg)
    if busy:
        item.reason = busy
        return item
    prefix = str(run_dir) + os.sep
    mine = {entry: {p for p in paths if p.startswith(prefix)} for entry, paths in needs.items()}
    mine = {entry: paths for entry, paths in mine.items() if paths}
    protected: Set[str] = set() if drop_cache else set().union(*mine.values()) if mine else set()
    if drop_cache:
        item.drop_entries = sorted(mine)
    keep_meta = bool(protected)
    files, kept_bytes, seen = [], 0, set()
    holding: Set[Path] = set()  # folders that keep a file, so stay
    for path in _walk_files(run_dir):
        if _protected(path, protected) or ((not all_files or keep_meta) and _kept(path, run_dir, all_files)):
            if _protected(path, protected):
                kept_bytes += _bytes_once(path, set())
            holding.update(path.parents)
            continue
        files.append(path)
        item.bytes += _bytes_once(path, seen)
    # and the folders the trim leaves empty, which it removes too (as _trim counts them)
    item.bytes += sum(_bytes_once(Path(folder), seen) for folder in _emptied_folders(run_dir, holding))
    item.cache_kept = kept_bytes
    if all_files and not protected:
        item.action, item.reason = "delete", "the whole run"
        item.bytes = disk_usage.tree_bytes(run_dir)
        if item.drop_entries:
            item.reason += f"; drops {len(item.drop_entries)} call cache entries"
        return item
    item.action, item.files = "trim", files
    kept = "its launch record and outputs.json" if all_files else "logs, error.json, outputs.json and inputs"
    item.reason = f"keeps {kept}"
    if protected:
        item.reason += f", and {disk_usage.human(kept_bytes)} the call cache uses ({len(mine)} entries; --drop-cache to free)"
    elif item.drop_entries:
        item.reason += f"; drops {len(item.drop_entries)} call cache entries"
    return item


def running_reason(run: Run, cfg: Loader) -> Optional[str]:
    """Why a run must not be touched now, or None: not finished, its lock held, or its launcher
    (a SLURM or Batch job, maybe on another host) still queued or running."""
    state = run.poll()
    if not state.done:
        return f"{state.status}: it has not finished"
    if run_dirs.is_locked(run_dirs.log_files(run.run_dir)[0]):
        return "its miniwdl process holds the run's lock"
    record = launch_record.read(run.run_dir)
    if record:
        try:
            if get_launcher(record.get("launcher")).alive(record, cfg):
                return f"its launcher ({record.get('launcher') or 'local'}) says it is still running"
        except Exception:  # noqa: BLE001 - an unknown or unreachable launcher: leave the run alone
            return f"cannot ask its launcher ({record.get('launcher')}) whether it still runs"
    return None


def apply(cleanup_plan: CleanupPlan, cfg=None) -> CleanupResult:
    """Carry out a plan, run by run, each under the run's lock; bytes freed are counted as deleted."""
    loader = load_config(cfg)
    result = CleanupResult(freed=empty_trash(cleanup_plan.root.resolve()))
    for item in cleanup_plan.runs:
        if item.action == "skip":
            result.skipped[item.name] = item.reason
            continue
        busy = running_reason(Run(item.run_dir, cfg=loader), loader)  # again: it may have been restarted
        with _run_lock(item.run_dir) as locked:
            busy = busy or (None if locked else "its miniwdl process holds the run's lock")
            if busy:
                result.skipped[item.name] = busy
                continue
            disk_usage.forget_size(item.run_dir)
            for entry in item.drop_entries:  # first: no entry may outlive a file it names
                try:
                    entry.unlink()
                    result.dropped_entries += 1
                except FileNotFoundError:
                    pass
            if item.action == "delete":
                result.freed += _delete_run(item.run_dir)
                result.deleted.append(item.name)
                continue
            result.freed += _trim(item)
            result.trimmed.append(item.name)
        disk_usage.run_size(item.run_dir, ended=True)
    return result


def _delete_run(run_dir: Path) -> int:
    size = disk_usage.tree_bytes(run_dir)
    trash = run_dir.parent / TRASH  # the run root, on the run's own filesystem (rename is atomic there)
    trash.mkdir(exist_ok=True)
    target = trash / f"{run_dir.name}.{os.getpid()}.{time.monotonic_ns()}"
    os.rename(run_dir, target)  # atomic: the run is listed whole, or not at all
    shutil.rmtree(target, ignore_errors=True)
    try:
        trash.rmdir()
    except OSError:
        pass  # another cleanup's deletion is under way in it
    return size


def empty_trash(root: Path) -> int:
    """Finish deletions a killed cleanup left in `<root>/.trash`; the bytes freed."""
    trash = Path(root) / TRASH
    freed = disk_usage.tree_bytes(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return freed


def _trim(item: RunPlan) -> int:
    freed, seen = 0, set()
    for path in item.files:
        size = _bytes_once(path, seen)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        freed += size
    # Folders left empty go too (deepest first); a folder still holding a kept file stays.
    for folder, _dirs, _files in sorted(os.walk(item.run_dir), key=lambda t: -len(t[0])):
        if _removable_folder(Path(folder), item.run_dir):
            try:
                size = disk_usage.file_bytes(os.lstat(folder))
                os.rmdir(folder)
                freed += size
            except OSError:
                pass
    return freed


def _removable_folder(folder: Path, run_dir: Path) -> bool:
    return folder != run_dir and folder.name not in KEPT_DIRS


def _emptied_folders(run_dir: Path, holding: Set[Path]):
    """The folders of the run that hold no kept file: a trim leaves them empty and removes them."""
    for folder, dirs, _files in os.walk(run_dir):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        if _removable_folder(Path(folder), run_dir) and Path(folder) not in holding:
            yield folder


def _walk_files(run_dir: Path):
    for folder, dirs, files in os.walk(run_dir):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            yield Path(folder) / name


def _kept(path: Path, run_dir: Path, all_files: bool) -> bool:
    rel = path.relative_to(run_dir)
    if rel.parts[0] in KEPT_DIRS and (not all_files or rel.parts[0] == launch_record.DIR_NAME):
        return True
    if all_files:
        return path.name in ("outputs.json", "error.json") and len(rel.parts) == 1
    return bool(KEPT_NAMES.fullmatch(path.name))


def _protected(path: Path, protected: Set[str]) -> bool:
    text = str(path)
    return any(text == p or text.startswith(p + os.sep) for p in protected) if protected else False


def _bytes_once(path: Path, seen: set) -> int:
    st = disk_usage.lstat_once(path, seen)
    return disk_usage.file_bytes(st) if st is not None else 0


class _run_lock:
    """The exclusive flock miniwdl holds on a run's log while it runs; held while we clean."""

    def __init__(self, run_dir: Path):
        self.path = run_dirs.log_files(run_dir)[0]
        self.fd: Optional[int] = None

    def __enter__(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return True  # never started: nothing holds it
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)


def after_run(run_dir: Path, cfg: Loader) -> Optional[CleanupResult]:
    """`[jupyter] keep_last` / `keep_days` (both 0, off, by default): the automatic cleanup after a
    run ends, under the run root of `run_dir`. None when off or nothing was chosen."""
    keep_last = config.option(cfg, "jupyter", "keep_last", "int")
    keep_days = config.option(cfg, "jupyter", "keep_days", "float")
    if keep_last <= 0 and keep_days <= 0:
        return None
    chosen = plan(
        Path(run_dir).parent,
        keep_last=keep_last if keep_last > 0 else None,
        older_than=f"{keep_days * 86400:.3f}s" if keep_days > 0 else None,
        cfg=cfg,
    )
    if chosen.empty:
        return None
    return apply(chosen, cfg=cfg)
