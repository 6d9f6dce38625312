"""The WES server's runs: one folder per run under the server's root, started and read through the
runs API (`runs.run(..., wait=False)`, `Run.poll()`, `Run.error`, `Run.cancel()`).

A run's folder `ROOT/<run_id>/` holds `wes.json` (the request, its owner, when it came), the
uploaded `attachments/`, and `run/`, the run directory miniwdl writes. Nothing else knows a run's
state: it is read from `run/` by the monitor. Two things are kept to make listing cheap:
- an in-memory index of (created, run_id) per owner, rebuilt from the folders at start-up, so a
  page is a bisect and a slice, not a directory scan;
- `summary.json`, written once a run has ended (an ended run never changes), so listing 10,000
  finished runs reads no logs; only runs still going are polled, incrementally.
A server restart re-reads the folders: runs keep going meanwhile (miniwdl runs in its own session).
"""

from __future__ import annotations

import base64
import bisect
import collections
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

from WDL.runtime.config import Loader

from .. import config, launch_record, runs
from ..errors import MiniwdlJupyterError
from ..monitor import CallState, RunState
from . import attachments, run_request, states
from .run_request import WESError

_logger = logging.getLogger("miniwdl_jupyter.wes")
RUN_ID_LENGTH = 32
_HANDLE_CACHE = 128  # ended runs whose full state was read for a detail request


@dataclass
class Entry:
    run_id: str
    owner: str
    created: float
    folder: Path
    request: Dict[str, Any]
    final: Optional[Dict[str, Any]] = None  # the summary of an ended run (from summary.json)
    handle: Optional[runs.Run] = None  # a live run's handle (the launched process is reaped by it)
    launching: bool = False  # POST /runs is starting it now (it may wait for other submissions)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def key(self) -> Tuple[float, str]:
        return (self.created, self.run_id)


class RunStore:
    def __init__(
        self,
        root: Path,
        *,
        backends: List[str],
        default_backend: str,
        cache_default: bool,
        max_upload_bytes: int,
        max_attachments: int,
        cfg: Loader,
        submit: str = "local",
    ):
        """`submit`: the launcher that starts each run's miniwdl process (`aws`: a Batch head job, so
        state, logs and cancel go through the job, and the server may restart meanwhile)."""
        self.cfg = cfg  # one loader (the server's) for every handle: attach() would load one each
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.backends = backends
        self.default_backend = default_backend
        self.max_upload_bytes = max_upload_bytes
        self.max_attachments = max_attachments
        self.launcher = submit
        self.engine_parameters = run_request.engine_parameters(default_backend, cache_default, self.cfg)
        self._entries: Dict[str, Entry] = {}
        self._keys: Dict[Optional[str], List[Tuple[float, str]]] = collections.defaultdict(list)  # None: all
        self._index_lock = threading.Lock()
        # runs.run parses and typechecks in this process with module-level caches: one at a time.
        self._launch_lock = threading.Lock()
        self._ended_handles: "collections.OrderedDict[str, runs.Run]" = collections.OrderedDict()
        self._load()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="wes-summaries", daemon=True).start()

    # -- index -----------------------------------------------------------------------------------
    def _load(self) -> None:
        started = time.monotonic()
        for folder in self.root.iterdir():
            if len(folder.name) != RUN_ID_LENGTH or not folder.is_dir():
                continue
            try:
                record = json.loads((folder / "wes.json").read_text())
            except (OSError, ValueError):
                continue  # not a WES run folder (or one whose submission never finished)
            request = record.get("request") or {}
            for key in ("workflow_type", "workflow_type_version", "workflow_url"):  # RunRequest requires them
                request.setdefault(key, "WDL" if key == "workflow_type" else "")
            entry = Entry(folder.name, record.get("owner", ""), record.get("created", 0.0), folder, request)
            try:
                entry.final = json.loads((folder / "summary.json").read_text())
            except (OSError, ValueError):
                pass
            self._add(entry)
        _logger.info("indexed %d runs under %s in %.2f s", len(self._entries), self.root, time.monotonic() - started)

    def _watch(self, interval: float = 2.0) -> None:
        """Poll runs that have not ended, so each gets its summary.json soon after it ends (and
        folders indexed at start-up without one get it), whether or not a client asks: listing
        then never has to read an ended run's logs."""
        while not self._stop.wait(interval):
            for entry in [e for e in list(self._entries.values()) if e.final is None]:
                if self._stop.is_set():
                    return
                try:
                    self.summary(entry)
                except Exception:  # one unreadable run must not stop the others' summaries
                    _logger.exception("summarizing run %s", entry.run_id)

    def close(self) -> None:
        self._stop.set()

    def _add(self, entry: Entry) -> None:
        with self._index_lock:
            self._entries[entry.run_id] = entry
            bisect.insort(self._keys[None], entry.key)
            bisect.insort(self._keys[entry.owner], entry.key)

    def _remove(self, entry: Entry) -> None:
        with self._index_lock:
            self._entries.pop(entry.run_id, None)
            for owner in (None, entry.owner):
                keys = self._keys[owner]
                i = bisect.bisect_left(keys, entry.key)
                if i < len(keys) and keys[i] == entry.key:
                    del keys[i]

    def get(self, run_id: str, owner: Optional[str]) -> Entry:
        """The run, if `owner` may see it (None: no authentication, everyone sees everything)."""
        entry = self._entries.get(run_id)
        if entry is None:
            raise WESError(404, f"no run {run_id!r} on this server")
        if owner is not None and entry.owner != owner:
            raise WESError(403, f"run {run_id!r} belongs to another user")
        return entry

    def page(self, owner: Optional[str], page_size: int, page_token: Optional[str]) -> Tuple[List[Entry], str]:
        """Newest first. The token is the key of the last run returned, so runs submitted while a
        client pages do not shift the pages it has yet to read."""
        with self._index_lock:
            keys = self._keys[owner]
            end = len(keys) if not page_token else bisect.bisect_left(keys, _decode_token(page_token))
            start = max(0, end - page_size)
            chosen = keys[start:end][::-1]
            entries = [self._entries[run_id] for _, run_id in chosen]
        next_token = _encode_token(chosen[-1]) if start > 0 and chosen else ""
        return entries, next_token

    def owned(self, owner: Optional[str]) -> List[Entry]:
        with self._index_lock:
            return [self._entries[run_id] for _, run_id in self._keys[owner]]

    # -- state -----------------------------------------------------------------------------------
    def summary(self, entry: Entry) -> Dict[str, Any]:
        """{state, start_time, end_time}: from summary.json once ended, else polled (incrementally)."""
        if entry.final is not None:
            return entry.final
        with entry.lock:
            if entry.final is not None:
                return entry.final
            handle = self._live_handle(entry)
            if handle is None:
                return entry.final or {"state": states.WES_QUEUED, "start_time": None, "end_time": None}
            state = handle.poll()
            info = self._summarize(entry, handle, state)
            if info["state"] in states.TERMINAL_STATES:
                _write_json(entry.folder / "summary.json", info)
                entry.final = info
                entry.handle = None  # ended: its process was reaped by that poll
            return info

    def _summarize(self, entry: Entry, handle: runs.Run, state: RunState) -> Dict[str, Any]:
        error = handle.error if state.done else None
        wes_state = states.run_state(state, error, cancel_requested=(entry.folder / "cancel_requested").exists())
        info: Dict[str, Any] = {
            "state": wes_state,
            "start_time": states.iso(state.start_time or entry.created),
            "end_time": states.iso(state.end_time) if state.done else None,
        }
        if error is not None:
            info["error"] = str(error).splitlines()[0]
            info["error_kind"] = type(error).__name__
        return info

    def _live_handle(self, entry: Entry) -> Optional[runs.Run]:
        if entry.handle is None:
            if entry.launching:
                return None
            if not launch_record.read(entry.run_dir) and not (entry.run_dir / "workflow.log").exists():
                if not entry.run_dir.exists():
                    # wes.json was written but the server stopped before the run was launched
                    # (entries of this process are `launching` until their run directory exists)
                    info = {"state": states.SYSTEM_ERROR, "start_time": states.iso(entry.created), "end_time": states.iso(entry.created),
                            "error": "the server stopped before this run was started; submit it again", "error_kind": "BackendError"}
                    _write_json(entry.folder / "summary.json", info)
                    entry.final = info
                return None
            entry.handle = runs.attach(entry.run_dir, cfg=self.cfg)
        return entry.handle

    def full(self, entry: Entry) -> Tuple[Optional[runs.Run], RunState, Dict[str, Any]]:
        """The run's handle, its full polled state (calls, outputs, error) and summary."""
        info = self.summary(entry)
        with entry.lock:
            handle = entry.handle
            if handle is None and entry.final is not None:
                handle = self._ended_handles.get(entry.run_id)
                if handle is None and entry.run_dir.exists():
                    handle = runs.attach(entry.run_dir, cfg=self.cfg)
                    self._ended_handles[entry.run_id] = handle
                    while len(self._ended_handles) > _HANDLE_CACHE:
                        self._ended_handles.popitem(last=False)
                elif handle is not None:
                    self._ended_handles.move_to_end(entry.run_id)
            if handle is None:
                return None, RunState(run_dir=entry.run_dir), info
            return handle, handle.poll(), info

    def output_file(self, entry: Entry, path: str) -> Optional[Path]:
        """A file of the run's outputs, by its path in the run directory (e.g. `out/x/0/a.txt`).
        Output links may lead into another run's folder (a call-cache hit reuses that run's
        files): allowed when that run has the same owner (each user has their own call cache),
        never anywhere else, whatever a task's symlinks say."""
        rel = PurePosixPath(path)
        if rel.is_absolute() or ".." in rel.parts:
            return None
        target = (entry.run_dir / rel).resolve()
        if not target.is_file():
            return None
        if entry.run_dir.resolve() in target.parents:
            return target
        try:
            other = self._entries.get(target.relative_to(self.root).parts[0])
        except (ValueError, IndexError):
            return None
        return target if other is not None and other.owner == entry.owner else None

    def call_cache_dir(self, entry: Entry) -> str:
        """The call cache `entry`'s run used."""
        return self._call_cache_dir(entry.owner) or os.path.expanduser(self.cfg["call_cache"].get("dir", "~/.cache/miniwdl"))

    def _call_cache_dir(self, owner: Optional[str]) -> Optional[str]:
        """Each user's own call cache (when tokens name users): a cache hit reuses the files of an
        earlier run, which must be one the same user may read."""
        if not owner:
            return None
        base = os.path.expanduser(config.option(self.cfg, "call_cache", "dir"))
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", owner)[:40] + "-" + hashlib.sha256(owner.encode()).hexdigest()[:8]
        return os.path.join(base, "wes-users", safe)

    def tasks(self, state: RunState) -> List[CallState]:
        """Task calls in the order the run started them (stable: new ones are appended)."""
        return [c for c in state.calls.values() if c.kind == "task"]

    # -- submitting --------------------------------------------------------------------------------
    def submit(self, owner: str, fields: Dict[str, str], files: List[Tuple[str, Any]]) -> Entry:
        request = run_request.parse(fields, files, self.max_attachments)
        run_id = uuid.uuid4().hex
        folder = self.root / run_id
        folder.mkdir()
        try:
            attached = attachments.write_all(folder / "attachments", files, max_bytes=self.max_upload_bytes)
            workflow = run_request.workflow_source(folder / "attachments", request["workflow_url"], attached)
            inputs = run_request.attachment_paths(request["workflow_params"], folder / "attachments", set(attached))
            engine = run_request.engine_settings(
                self.engine_parameters, request.get("workflow_engine_parameters", {}), self.backends, self.default_backend
            )
            # the runs API's run root is this server's root (nothing is made in its working directory)
            engine["cfg"].setdefault("jupyter", {})["root"] = str(self.root)
            cache_dir = self._call_cache_dir(owner)
            if cache_dir:
                engine["cfg"].setdefault("call_cache", {})["dir"] = cache_dir
            entry = Entry(run_id, owner, time.time(), folder, request, launching=True)
            _write_json(folder / "wes.json", {"run_id": run_id, "owner": owner, "created": entry.created, "request": request, "attachments": attached})
        except attachments.AttachmentError as exn:
            shutil.rmtree(folder, ignore_errors=True)
            raise WESError(exn.status_code, str(exn)) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._add(entry)
        try:
            with self._launch_lock:
                entry.handle = runs.run(
                    workflow,
                    inputs,
                    backend=engine["backend"],
                    cache=engine["cache"],
                    dir=f"{entry.run_dir}/.",
                    wait=False,
                    cfg=engine["cfg"],
                    submit=self.launcher,
                )
        except MiniwdlJupyterError as exn:
            self._forget(entry)
            raise WESError(400, f"{type(exn).__name__}: {exn}") from None
        except BaseException:
            self._forget(entry)
            raise
        finally:
            entry.launching = False
        _logger.info("run %s (%s) started for %r", run_id, entry.handle.name, owner)
        if (folder / "cancel_requested").exists():  # cancelled while it was being started
            threading.Thread(target=_cancel_quietly, args=(entry.handle,), daemon=True).start()
        return entry

    def _forget(self, entry: Entry) -> None:
        self._remove(entry)
        shutil.rmtree(entry.folder, ignore_errors=True)  # nothing half-written is left behind

    # -- cancelling --------------------------------------------------------------------------------
    def cancel(self, entry: Entry) -> None:
        """Ask the run to stop and return at once (CANCELING until miniwdl has stopped its tasks)."""
        if self.summary(entry)["state"] in states.TERMINAL_STATES:
            return
        (entry.folder / "cancel_requested").touch()
        handle = entry.handle or (runs.attach(entry.run_dir, cfg=self.cfg) if entry.run_dir.exists() else None)
        if handle is not None:
            threading.Thread(target=_cancel_quietly, args=(handle,), name=f"cancel-{entry.run_id}", daemon=True).start()


def _cancel_quietly(handle: runs.Run) -> None:
    try:
        handle.cancel()
    except Exception:  # the run's own state says how it ended; a cancel that failed is logged
        _logger.exception("cancelling %s", handle.run_dir)


def _encode_token(key: Tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps([key[0], key[1]]).encode()).decode().rstrip("=")


def _decode_token(token: str) -> Tuple[float, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return (float(created), str(run_id))
    except Exception:
        raise WESError(400, f"page_token {token[:40]!r} is not one this server gave out; start again without page_token") from None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
