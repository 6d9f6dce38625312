"""REST endpoints under `<base_url>/miniwdl-jupyter/`:

- POST `check` {path, kind, text}: miniwdl's parse, typecheck and lint of a `%%wdl` cell's body or
  a .wdl file's text, with the folder of `path` (the notebook or file) on the import path, as
  `{diagnostics: [{line, column, end_line, end_column, severity, message}]}` (1-based).
- GET `runs?path=FOLDER`: the runs under the run root of FOLDER, newest first, read through
  `list_runs` and each run's monitor (the run directories stay the only source of truth).
- POST `runs/cancel` {path}: cancel a listed run, or one under the server root (relative or
  absolute path: a live run widget's Cancel button names its run directory).

Paths are relative to the server's root directory; nothing outside it is read on a client's say-so
(a run root configured outside it is listed, and its runs can be cancelled once listed).
Everything that touches the filesystem or miniwdl runs in a worker thread, off the server's loop.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

_logger = logging.getLogger("miniwdl_jupyter.labext")
RUNS_LISTED = 50  # the sidebar shows the newest runs; `%wdl runs` lists them all
_RUN_CACHE_SIZE = 500


class _Base(APIHandler):
    @property
    def root_dir(self) -> Path:
        return Path(self.settings["miniwdl_jupyter_root_dir"]).resolve()

    @property
    def cfg(self) -> Any:
        """The configuration the server extension loaded when it started."""
        return self.settings["miniwdl_jupyter_cfg"]

    def local_path(self, relative: str) -> Path:
        """A path the client named, relative to the server root; 403 if it leaves the root."""
        path = (self.root_dir / relative.lstrip("/")).resolve()
        if path != self.root_dir and self.root_dir not in path.parents:
            raise tornado.web.HTTPError(403, f"{relative} is outside the server's root directory")
        return path

    def relative(self, path: Path) -> Optional[str]:
        try:
            return path.relative_to(self.root_dir).as_posix()
        except ValueError:
            return None

    def body(self) -> Dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, "the request body must be a JSON object")
        return data


# -- check --------------------------------------------------------------------------------------


def check_text(text: str, folder: Path, name: str) -> List[Dict[str, Any]]:
    """Diagnostics for WDL `text` whose imports resolve from `folder` (as in the notebook)."""
    import WDL
    import WDL.Lint

    from .. import wdl_source
    from ..errors import InputError, WDLSourceError

    tmp = Path(tempfile.mkdtemp(prefix="miniwdl-jupyter-check-"))
    try:
        # A file of its own per check: wdl_source caches parsed documents by path and mtime.
        source = tmp / (name if name.endswith(".wdl") else "cell.wdl")
        source.write_text(text)
        try:
            loaded = wdl_source.load(str(source), cwd=folder, display_name=name, text=text)
        except WDLSourceError as exn:
            return [_source_error_diagnostic(exn, name, text)]
        except InputError:
            return []  # e.g. no workflow and several tasks: fine while writing
        WDL.Lint.lint(loaded.doc, descend_imports=False)
        return [
            {
                "line": pos.line,
                "column": pos.column,
                "end_line": pos.end_line,
                "end_column": pos.end_column,
                "severity": "warning",
                "message": f"{kind}: {message}",
            }
            for pos, kind, message, suppressed in WDL.Lint.collect(loaded.doc)
            if not suppressed and pos.abspath == str(source)
        ]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _source_error_diagnostic(exn: Any, name: str, text: str) -> Dict[str, Any]:
    message = str(exn.args[0]) if exn.args else str(exn)
    prefix = f"{exn.source}:{exn.line}:{exn.column}: " if exn.line else (f"{exn.source}: " if exn.source else "")
    if prefix and message.startswith(prefix):
        message = message[len(prefix):]
    message = " ".join([message, *[d for d in exn.details if d.startswith("(and ")]])
    if exn.line and exn.source == name:
        return {"line": exn.line, "column": exn.column, "severity": "error", "message": message}
    # An error in an imported document: shown on the import that brings it (else the first line),
    # naming where it is.
    where = f"{exn.source}:{exn.line}:{exn.column}" if exn.line else exn.source
    base = os.path.basename(exn.source or "")
    line = next((n for n, l in enumerate(text.splitlines(), 1) if base and l.lstrip().startswith("import") and base in l), 1)
    return {"line": line, "column": 1, "severity": "error", "message": f"{where}: {message}" if where else message}


class CheckHandler(_Base):
    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.body()
        text = body.get("text")
        if not isinstance(text, str):
            raise tornado.web.HTTPError(400, "text (the WDL to check) is required")
        target = self.local_path(str(body.get("path") or ""))
        folder = target if target.is_dir() else target.parent
        name = target.name if body.get("kind") == "file" and target.suffix == ".wdl" else "cell"
        loop = asyncio.get_running_loop()
        diagnostics = await loop.run_in_executor(None, check_text, text, folder, name)
        self.finish(json.dumps({"diagnostics": diagnostics}))


# -- runs ---------------------------------------------------------------------------------------

# Run handles by directory, kept between requests so each monitor reads only what was appended
# since the last refresh (and a finished run's state is final).
_runs: "collections.OrderedDict[Path, Any]" = collections.OrderedDict()
_runs_lock = threading.Lock()


def _known(run: Any) -> Any:
    with _runs_lock:
        known = _runs.get(run.run_dir)
        if known is None:
            known = _runs[run.run_dir] = run
            while len(_runs) > _RUN_CACHE_SIZE:
                _runs.popitem(last=False)
        else:
            _runs.move_to_end(run.run_dir)
        return known


def list_folder_runs(folder: Path, relative, loader) -> Dict[str, Any]:  # type: ignore[no-untyped-def]
    from .. import run_dirs
    from ..disk_usage import run_size
    from ..monitor import FAILED, FINISHED_CALL_STATES
    from ..runs import list_runs

    # The run root a kernel in `folder` uses: `[jupyter] root`, relative to the folder (a kernel
    # JupyterLab starts for a notebook works in the notebook's folder).
    root = run_dirs.run_root(loader, cwd=folder)
    found = list_runs(root, cfg=loader)
    rows = []
    for run in (_known(r) for r in found[:RUNS_LISTED]):
        state = run.poll()
        path = relative(run.run_dir)
        outputs = run.run_dir / "out"
        rows.append(
            {
                "name": run.run_dir.name,
                "workflow": state.name or "",
                "path": path,
                "run_dir": str(run.run_dir),
                "status": state.status,
                "active": not state.done,
                "backend": state.backend,
                "start_time": state.start_time,
                "duration": state.duration,
                "calls_total": state.task_calls,
                "calls_done": sum(state.counts[s] for s in FINISHED_CALL_STATES),
                "calls_failed": state.counts[FAILED],
                "size": run_size(run.run_dir, state.done),
                "outputs_path": relative(outputs) if state.status == "succeeded" and outputs.is_dir() else None,
                "attach": f"%wdl attach {run.run_dir.name}",
            }
        )
    return {"folder": relative(folder) or "", "root": relative(root) or str(root), "runs": rows, "more": max(len(found) - RUNS_LISTED, 0)}


class RunsHandler(_Base):
    @tornado.web.authenticated
    async def get(self) -> None:
        folder = self.local_path(self.get_argument("path", ""))
        if not folder.is_dir():
            folder = folder.parent
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, list_folder_runs, folder, self.relative, self.cfg)
        self.finish(json.dumps(reply))


def cancel_run(run_dir: Path, loader: Any) -> str:
    from ..runs import attach

    with _runs_lock:
        run = _runs.get(run_dir)
    run = run or _known(attach(run_dir, root=run_dir.parent, cfg=loader))
    run.cancel()
    return run.poll().status


class CancelHandler(_Base):
    @tornado.web.authenticated
    async def post(self) -> None:
        given = str(self.body().get("path") or "")
        if not given:
            raise tornado.web.HTTPError(400, "path (the run directory) is required")
        with _runs_lock:
            listed = Path(given) if Path(given) in _runs else None
        if listed is None and Path(given).is_absolute():
            # A live widget names its run by absolute path: fine when it is under the server root.
            given = self.relative(Path(given).resolve()) or _outside(given)
        run_dir = listed or self.local_path(given)
        from ..errors import RunNotFound

        loop = asyncio.get_running_loop()
        try:
            status = await loop.run_in_executor(None, cancel_run, run_dir, self.cfg)
        except RunNotFound as exn:
            raise tornado.web.HTTPError(404, str(exn)) from None
        self.finish(json.dumps({"status": status}))


def _outside(path: str) -> str:
    raise tornado.web.HTTPError(403, f"{path} is outside the server's root directory and not a listed run")


def setup_handlers(web_app: Any, root_dir: str, cfg: Any) -> None:
    web_app.settings["miniwdl_jupyter_root_dir"] = os.path.expanduser(root_dir)
    web_app.settings["miniwdl_jupyter_cfg"] = cfg
    base = url_path_join(web_app.settings["base_url"], "miniwdl-jupyter")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "check"), CheckHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, "runs", "cancel"), CancelHandler),
        ],
    )
