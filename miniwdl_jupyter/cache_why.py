"""Why a call ran instead of coming from the call cache, in one line per difference.

Read from what miniwdl leaves behind, with its own cache format (cache_entries.py):
- the call's `inputs.json` (exactly the inputs miniwdl digests into the cache key) and its task
  name (the call's `task setup` log event);
- miniwdl's cache events in the run's own output (`call cache hit` then `cache entry invalid due to
  deleted or modified file/directory` {changed}: the entry was found but a file had changed;
  `call cache miss` {cache_file}: no entry under this call's key);
- on a miss, the nearest entry of the same task: same task digest (then an input value differs)
  or another digest (then the task's WDL text differs: runtime settings such as the image, the
  command, or the rest of it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from WDL.runtime.cache import CALL_CACHE_VERSION
from WDL.runtime.config import Loader

from . import cache_entries, launch_record, wdl_source
from .monitor import CACHED, FAILED, SUCCEEDED, CallState

# First lines of explanations that compared nothing (no entry, cache off, call unfinished).
NO_ENTRY, CACHE_OFF, NOT_ENDED, UNKNOWN = "no cache entry for task", "not looked up:", "it did not run to the end", "its task log"
FAILED_NOTE = "(it failed: a failed call's results are never cached)"
OTHER_CALL = "no earlier run of this call is cached; nearest entry of its task, from"
_INVALID = ("cache entry invalid due to deleted or modified file/directory", "cache entry invalid due to deleted or modified additional path")


class _Context:
    """What explaining one run's calls reads once: its cache events, and each task's entries."""

    def __init__(self, run_dir: Path, cfg: Loader):
        self.run_dir, self.cfg = run_dir, cfg
        self.record = launch_record.read(run_dir) or {}
        self._events: Optional[List[Dict[str, Any]]] = None
        self._entries: Dict[str, List[cache_entries.CacheEntry]] = {}

    @property
    def events(self) -> List[Dict[str, Any]]:
        if self._events is None:  # read once, and only when a call that ran needs them
            self._events = list(cache_events(self.run_dir))
        return self._events

    def entries(self, task: str) -> List[cache_entries.CacheEntry]:
        if task not in self._entries:
            self._entries[task] = list(cache_entries.entries(self.cfg, task))
        return self._entries[task]


def compared(lines: Optional[List[str]]) -> bool:
    """Did an explanation compare the call with a cached earlier run of the same call (rather than
    find none, or only other calls' entries of its task, to compare)?"""
    rest = [line for line in (lines or []) if not line.startswith(FAILED_NOTE)]
    return bool(rest) and not rest[0].startswith((NO_ENTRY, CACHE_OFF, NOT_ENDED, UNKNOWN, OTHER_CALL))


def explain(run_dir: Path, call: CallState, cfg: Loader) -> List[str]:
    """Lines saying why `call` of the run in `run_dir` was not taken from the cache ([] when it was)."""
    return _explain(_Context(run_dir, cfg), call)


def explain_calls(run_dir: Path, calls: List[CallState], cfg: Loader) -> None:
    """Fill `not_cached` of every call of an ended run that has none yet."""
    context: Optional[_Context] = None
    for call in calls:
        if call.not_cached is None:
            context = context or _Context(run_dir, cfg)
            call.not_cached = _explain(context, call)


def _explain(context: _Context, call: CallState) -> List[str]:
    if call.kind != "task" or call.state == CACHED:
        return []
    if context.record.get("cache") is False:
        return [f"{CACHE_OFF} the call cache was off for this run (--no-cache, or [jupyter] cache = false)"]
    if call.state not in (SUCCEEDED, FAILED) or call.dir is None:
        return [f"{NOT_ENDED} ({call.state}): nothing to compare"]
    task = task_name(call.dir)
    inputs = _read_json(call.dir / "inputs.json")
    if task is None or not isinstance(inputs, dict):
        return [f"{UNKNOWN} or inputs.json is gone: cannot say"]
    digest = inputs_digest(inputs)
    events = [e for e in context.events if _key_parts(e.get("cache_file", ""), context.cfg)[::2] == (task, digest)]
    lines = [] if call.state == SUCCEEDED else [FAILED_NOTE]
    invalid = next((e for e in events if e.get("message") in _INVALID), None)
    if invalid is not None:
        hit = next((e for e in events if e.get("message") == "call cache hit"), {})
        return lines + [_changed_line(str(invalid.get("changed", "")), inputs, hit.get("run_dir"))]
    unreadable = next((e for e in events if e.get("message") == "call cache entry present, but unreadable"), None)
    if unreadable is not None:
        return lines + [f"its cache entry could not be read: {unreadable.get('error')}"]
    own = next((_key_parts(e["cache_file"], context.cfg)[1] for e in events), None)
    if own is None:  # no events (another launcher's output): our own entry still tells the digest
        own = next((e.digest for e in context.entries(task) if e.call_dir == str(call.dir)), None)
    # Only entries written before the call started can explain why it did not use one.
    started = call.start_time or float("inf")
    others = [e for e in context.entries(task) if e.call_dir != str(call.dir) and (_mtime(e.path) or 0) < started]
    if not others:
        return lines + [f"{NO_ENTRY} `{task}` to reuse (its first run with the cache on, or its entries were removed)"]
    # Nearest: an earlier run of this very call (same position in the workflow), then the same
    # task text, then the fewest differing inputs, then the newest.
    nearest = min(
        others,
        key=lambda e: (Path(e.call_dir or "").name != call.dir.name, e.digest != own, len(_differing(e.inputs, inputs)), -(_mtime(e.path) or 0)),
    )
    found: List[str] = []
    if own is not None and nearest.digest != own:
        found += _task_changes(task, nearest.call_dir, context.run_dir) or [
            f"the WDL text of task `{task}` differs from the cached one's (digest {nearest.digest[:8]} -> {own[:8]})"
        ]
    found += [_input_line(name, nearest.inputs.get(name), inputs.get(name)) for name in _differing(nearest.inputs, inputs)]
    if not found:
        return lines + [f"an entry of task `{task}` with the same inputs exists, but miniwdl did not use it (see {call.dir / 'task.log'})"]
    if Path(nearest.call_dir or "").name != call.dir.name:
        # no earlier run of this call is cached (a new scatter element, new values): say which
        # call's entry the differences are measured against; the final summary leaves these out
        lines.append(f"{OTHER_CALL} {Path(nearest.call_dir or '?').name}:")
    return lines + found


def task_name(call_dir: Path) -> Optional[str]:
    """The task a call ran (its `task setup` event), or None."""
    for line in _lines(call_dir / "task.log.json"):  # its first event: the rest is never read
        if '"task setup"' in line:
            try:
                return json.loads(line).get("name")
            except ValueError:
                return None
    return None


def inputs_digest(inputs: Dict[str, Any]) -> str:
    """The digest miniwdl files a call's entry under (WDL/runtime/cache.py `digest_inputs`, whose
    input is `values_to_json(inputs)`: exactly the call's inputs.json)."""
    key_json = json.dumps({"miniwdlCallCacheVersion": CALL_CACHE_VERSION, "inputs": inputs}, separators=(",", ":"), sort_keys=True)
    return base64.b32encode(hashlib.sha256(key_json.encode()).digest()[:20]).decode().lower()


def cache_events(run_dir: Path) -> Iterator[Dict[str, Any]]:
    """miniwdl's call cache log events: its CallCache logger writes to the process's own output."""
    for line in _lines(launch_record.stderr_path(run_dir)):
        if "cache" in line and "cache_file" in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "cache_file" in event:
                yield event


def _key_parts(cache_file: str, cfg: Loader) -> tuple:
    """(task, task digest, inputs digest) of an entry's path, or ('', '', '')."""
    try:
        parts = Path(cache_file).relative_to(cache_entries.cache_dir(cfg)).with_suffix("").parts
    except ValueError:
        return ("", "", "")
    return ("/".join(parts[:-2]), parts[-2], parts[-1]) if len(parts) >= 3 else ("", "", "")


def _changed_line(changed: str, inputs: Dict[str, Any], cached_call: Optional[str]) -> str:
    path = Path(changed.rstrip("/"))
    when = _cached_when(cached_call)
    size = ""
    try:
        st = path.stat()
        what, size = f"changed {_clock(st.st_mtime)}, after the cached run{when}", f", now {st.st_size:,} bytes"
    except OSError:
        what = f"was deleted or moved after the cached run{when}"
    name = next((k for k, v in inputs.items() if changed.rstrip("/") in _strings(v)), None)
    if name is not None:
        return f"input `{name}`: {path.name} {what} ({path}{size})"
    return f"a file the cached result needs, {path}, {what.replace('after the cached run', 'since the cached run')} (e.g. removed by a cleanup)"


def _cached_when(cached_call: Optional[str]) -> str:
    if not cached_call or cached_call == "?":
        return ""
    made = _mtime(Path(cached_call) / "outputs.json")
    return f" of {_clock(made)} in {Path(cached_call).parent.name}" if made else f" in {Path(cached_call).parent.name}"


def _differing(cached: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    return sorted(k for k in set(cached) | set(now) if cached.get(k) != now.get(k))


def _input_line(name: str, cached: Any, now: Any) -> str:
    if cached is None:
        return f"input `{name}`: not given in the cached run, now {_short(now)}"
    if now is None:
        return f"input `{name}`: {_short(cached)} in the cached run, not given now"
    if isinstance(cached, str) and isinstance(now, str) and cached.startswith("/") and now.startswith("/"):
        return f"input `{name}`: file {Path(now).name} instead of {Path(cached).name} ({now}; cached: {cached})"
    return f"input `{name}`: {_short(now)} instead of {_short(cached)} in the cached run"


def _task_changes(task: str, cached_call: Optional[str], run_dir: Path) -> List[str]:
    """What differs between the task as the cached run had it and as this run has it: runtime
    settings one line each (the image first), else the command, else the rest of its text."""
    old = _find_task(_run_of(Path(cached_call)) if cached_call else None, task)
    new = _find_task(run_dir, task)
    if old is None or new is None:
        return []
    old_rt, new_rt = _runtime(old), _runtime(new)
    lines = []
    for key in sorted(set(old_rt) | set(new_rt), key=lambda k: (k not in ("docker", "container"), k)):
        if old_rt.get(key) != new_rt.get(key):
            what = "image" if key in ("docker", "container") else f"runtime `{key}`"
            lines.append(f"{what}: {new_rt.get(key, '(none)')} instead of {old_rt.get(key, '(none)')} in the cached run")
    if not lines and str(old.command) != str(new.command):
        lines.append(f"the command of task `{task}` changed since the cached run")
    if not lines:
        lines.append(f"the WDL text of task `{task}` changed since the cached run (its declarations or sections)")
    return lines


def _run_of(call_dir: Path) -> Optional[Path]:
    for folder in [call_dir, *call_dir.parents]:
        if (folder / "wdl").is_dir() or launch_record.path(folder).exists():
            return folder
    return None


def _find_task(run_dir: Optional[Path], name: str):  # type: ignore[no-untyped-def]
    """The task `name` in the copy of the WDL miniwdl keeps in the run's `wdl/` folder."""
    if run_dir is None or not (run_dir / "wdl").is_dir():
        return None
    for source in sorted((run_dir / "wdl").glob("*.wdl")):
        try:
            doc = wdl_source.load(str(source), cwd=run_dir, display_name=source.name, task=None).doc
        except Exception:  # noqa: BLE001 - an old run's WDL that no longer loads only costs detail
            continue
        found = _search(doc, name)
        if found is not None:
            return found
    return None


def _search(doc, name: str):  # type: ignore[no-untyped-def]
    for task in doc.tasks:
        if task.name == name:
            return task
    for imported in doc.imports:
        found = _search(imported.doc, name) if imported.doc else None
        if found is not None:
            return found
    return None


def _runtime(task) -> Dict[str, str]:  # type: ignore[no-untyped-def]
    return {k: str(v) for k, v in task.runtime.items()}


def _strings(value: Any) -> List[str]:
    if isinstance(value, str):
        return [value.rstrip("/")]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clock(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "?"


def _mtime(path: Path) -> Optional[float]:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _lines(path: Path) -> Iterator[str]:
    """The file's lines, read as they are consumed (logs can be large)."""
    try:
        with open(path, errors="replace") as f:
            yield from f
    except OSError:
        return


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
