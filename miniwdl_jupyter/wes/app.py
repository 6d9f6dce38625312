"""The GA4GH WES 1.1.0 API over miniwdl runs (FastAPI), under /ga4gh/wes/v1.

Every endpoint of the 1.1.0 description, plus the log and output files its responses link to
(`stdout`/`stderr` URLs of the run and of each task, output files), which need the same bearer
token. Errors are WES ErrorResponse objects {msg, status_code}.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import __version__, launch_record
from ..monitor import CallState
from ..report import REPORT_FILE, build_report
from . import states, task_logs
from .auth import TokenMap
from .run_request import WESError, miniwdl_version, wdl_versions
from .store import RUN_ID_LENGTH, Entry, RunStore

BASE = "/ga4gh/wes/v1"
OPENAPI_FILE = Path(__file__).with_name("openapi") / "workflow_execution_service.openapi.yaml"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_INLINE_TASK_LOGS = 1000  # RunLog.task_logs (deprecated in 1.1) is filled up to this many tasks
_logger = logging.getLogger("miniwdl_jupyter.wes")


class _BodyTooLarge(Exception):
    pass


def create_app(store: RunStore, tokens: Optional[TokenMap] = None) -> FastAPI:
    app = FastAPI(title="miniwdl-jupyter WES", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.tokens = tokens
    _limit_body_size(app, store.max_upload_bytes)
    # Submissions parse WDL and start processes (one at a time, see RunStore.submit): their own
    # threads, so a burst of them never holds up status and listing requests.
    submit_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="wes-submit")

    def owner(request: Request) -> Optional[str]:
        """The caller's user name; None when the server runs without tokens (one shared space)."""
        if tokens is None:
            return None
        return tokens.user(request.headers.get("authorization"))

    def find(request: Request, run_id: str) -> Entry:
        user = owner(request)
        if len(run_id) != RUN_ID_LENGTH or not run_id.isalnum():
            raise WESError(404, f"no run {run_id!r} on this server")
        return store.get(run_id, user)

    # -- errors ----------------------------------------------------------------------------------
    @app.exception_handler(WESError)
    async def _wes_error(request: Request, exn: WESError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="wes"'} if exn.status_code == 401 else None
        return JSONResponse({"msg": exn.msg, "status_code": exn.status_code}, status_code=exn.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exn: StarletteHTTPException) -> JSONResponse:
        status = exn.status_code
        msg = str(exn.detail)
        if status == 400 and ("Too many files" in msg or "exceeded maximum size" in msg):
            status = 413
        if status == 404:
            msg = f"no such endpoint: {request.method} {request.url.path} (the API is under {BASE})"
        headers = dict(exn.headers or {})
        if status == 405:
            # Allow lists every method of the path (GET and POST /runs are two routes; the router
            # names only the first one's)
            allowed = sorted({m for r in app.routes if r.matches(request.scope)[0] != Match.NONE for m in (getattr(r, "methods", None) or ())})
            headers["Allow"] = ", ".join(allowed)
            msg = f"{request.method} is not allowed on {request.url.path} (allowed: {headers['Allow']})"
        return JSONResponse({"msg": msg, "status_code": status}, status_code=status, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exn: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exn.errors())
        return JSONResponse({"msg": f"malformed request: {problems}", "status_code": 400}, status_code=400)

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request: Request, exn: _BodyTooLarge) -> JSONResponse:
        msg = f"the request body exceeds the server's upload limit of {store.max_upload_bytes} bytes"
        return JSONResponse({"msg": msg, "status_code": 413}, status_code=413)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exn: Exception) -> JSONResponse:
        _logger.exception("%s %s", request.method, request.url.path)
        return JSONResponse({"msg": f"internal error: {type(exn).__name__}: {exn}", "status_code": 500}, status_code=500)

    # -- service info ------------------------------------------------------------------------------
    @app.get(BASE + "/service-info")
    def service_info(request: Request) -> Dict[str, Any]:
        counts = {s: 0 for s in states.ALL_STATES}
        try:
            user = owner(request)
            for entry in store.owned(user):
                counts[store.summary(entry)["state"]] += 1
        except WESError:
            pass  # anyone may read what the service is; counts are only for a caller with a token
        return {
            "id": "org.miniwdl-jupyter.wes",
            "name": "miniwdl-jupyter WES",
            "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
            "description": "GA4GH Workflow Execution Service running WDL with miniwdl",
            "organization": {"name": "miniwdl-jupyter", "url": "https://github.com/chanzuckerberg/miniwdl"},
            "documentationUrl": str(request.base_url) + BASE.lstrip("/") + "/openapi.yaml",
            "version": __version__,
            "workflow_type_versions": {"WDL": {"workflow_type_version": wdl_versions()}},
            "supported_wes_versions": ["1.1.0"],
            # workflow inputs may be server-local paths, attachments, or URLs miniwdl downloads
            "supported_filesystem_protocols": ["file", "http", "https"],
            "workflow_engine_versions": {"miniwdl": {"workflow_engine_version": [miniwdl_version()]}},
            "default_workflow_engine_parameters": [
                {"name": p.name, "type": p.type, "default_value": p.default} for p in store.engine_parameters
            ],
            "system_state_counts": counts,
            "auth_instructions_url": "" if tokens is None else str(request.base_url) + BASE.lstrip("/") + "/openapi.yaml#auth",
            "tags": {
                "backends": ",".join(store.backends),
                "authentication": "none" if tokens is None else "bearer token (ask the server's operator)",
                "max_upload_bytes": str(store.max_upload_bytes),
                "max_attachments": str(store.max_attachments),
            },
        }

    @app.get(BASE + "/openapi.yaml")
    def openapi_yaml() -> Response:
        return Response(OPENAPI_FILE.read_bytes(), media_type="application/yaml")

    @app.get(BASE + "/openapi.json")
    def openapi_json() -> Dict[str, Any]:
        return yaml.safe_load(OPENAPI_FILE.read_text())

    # -- runs ----------------------------------------------------------------------------------------
    @app.get(BASE + "/runs")
    def list_runs(request: Request, page_size: Optional[int] = None, page_token: Optional[str] = None) -> Dict[str, Any]:
        user = owner(request)
        size = _page_size(page_size)
        entries, next_token = store.page(user, size, page_token)
        runs = []
        for entry in entries:
            info = store.summary(entry)
            item = {"run_id": entry.run_id, "state": info["state"], "tags": entry.request.get("tags", {})}
            for key in ("start_time", "end_time"):
                if info.get(key):
                    item[key] = info[key]
            runs.append(item)
        return {"runs": runs, "next_page_token": next_token}

    @app.post(BASE + "/runs")
    async def run_workflow(request: Request) -> Dict[str, str]:
        user = owner(request)
        form = await request.form(max_files=store.max_attachments, max_fields=100, max_part_size=store.max_upload_bytes)
        fields: Dict[str, str] = {}
        files: List[Any] = []
        for key, value in form.multi_items():
            if key == "workflow_attachment" and isinstance(value, UploadFile):
                files.append((value.filename or "", value.file))
            elif isinstance(value, UploadFile):  # some clients send JSON fields as file parts
                fields[key] = (await value.read()).decode(errors="replace")
            elif key == "workflow_attachment":
                raise WESError(400, "workflow_attachment parts must be files with a filename")
            else:
                fields[key] = value
        entry = await asyncio.get_running_loop().run_in_executor(submit_pool, store.submit, user or "", fields, files)
        return {"run_id": entry.run_id}

    @app.get(BASE + "/runs/{run_id}")
    def get_run_log(request: Request, run_id: str) -> Dict[str, Any]:
        entry = find(request, run_id)
        handle, state, info = store.full(entry)
        base = _run_url(request, run_id)
        tasks = store.tasks(state)
        run_log: Dict[str, Any] = {"name": state.name or entry.request.get("workflow_url", ""), "stdout": base + "/stdout", "stderr": base + "/stderr"}
        record = launch_record.read(entry.run_dir) or {}
        if record.get("command"):
            run_log["cmd"] = [str(c) for c in record["command"]]
        for key in ("start_time", "end_time"):
            if info.get(key):
                run_log[key] = info[key]
        if info["state"] == states.COMPLETE:
            run_log["exit_code"] = 0
        if info.get("error"):
            run_log["system_logs"] = [f"{info.get('error_kind', 'Error')}: {info['error']}"]
            if handle is not None and handle.error is not None:
                run_log["system_logs"] += [line for line in str(handle.error).splitlines()[1:]][:40]
        body: Dict[str, Any] = {
            "run_id": run_id,
            "request": entry.request,
            "state": info["state"],
            "run_log": run_log,
            "task_logs_url": base + "/tasks",
            "task_logs": [_task_log(request, store, entry, c) for c in tasks] if len(tasks) <= MAX_INLINE_TASK_LOGS else None,
            "outputs": _outputs(state.outputs, entry.run_dir, base) if info["state"] == states.COMPLETE else {},
        }
        return body

    @app.get(BASE + "/runs/{run_id}/status")
    def get_run_status(request: Request, run_id: str) -> Dict[str, Any]:
        entry = find(request, run_id)
        return {"run_id": run_id, "state": store.summary(entry)["state"]}

    @app.post(BASE + "/runs/{run_id}/cancel")
    def cancel_run(request: Request, run_id: str) -> Dict[str, str]:
        entry = find(request, run_id)
        store.cancel(entry)
        return {"run_id": run_id}

    @app.get(BASE + "/runs/{run_id}/tasks")
    def list_tasks(request: Request, run_id: str, page_size: Optional[int] = None, page_token: Optional[str] = None) -> Dict[str, Any]:
        entry = find(request, run_id)
        _, state, _ = store.full(entry)
        tasks = store.tasks(state)
        size = _page_size(page_size)
        start = _offset_token(page_token)
        chosen = tasks[start : start + size]
        next_token = str(start + size) if start + size < len(tasks) else ""
        return {"task_logs": [_task_log(request, store, entry, c) for c in chosen], "next_page_token": next_token}

    @app.get(BASE + "/runs/{run_id}/tasks/{task_id}")
    def get_task(request: Request, run_id: str, task_id: str) -> Dict[str, Any]:
        entry = find(request, run_id)
        return _task_log(request, store, entry, _find_task(store, entry, task_id))

    # -- files the responses link to ------------------------------------------------------------------
    @app.get(BASE + "/runs/{run_id}/stdout")
    def run_stdout(request: Request, run_id: str) -> Response:
        entry = find(request, run_id)
        return _text_file(launch_record.meta_dir(entry.run_dir) / "miniwdl.stdout")

    @app.get(BASE + "/runs/{run_id}/stderr")
    def run_stderr(request: Request, run_id: str) -> Response:
        entry = find(request, run_id)
        return _text_file(launch_record.stderr_path(entry.run_dir))

    @app.get(BASE + "/runs/{run_id}/report")
    def run_report(request: Request, run_id: str) -> Response:
        """The run report (docs/report.md): report.html as written when the run ended, else built
        now. Served so that not even a script slipped into it could run."""
        entry = find(request, run_id)
        page = entry.run_dir / REPORT_FILE
        html = page.read_text() if page.exists() else build_report(entry.run_dir).html()
        return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    @app.get(BASE + "/runs/{run_id}/tasks/{task_id}/{stream}")
    def task_stream(request: Request, run_id: str, task_id: str, stream: str) -> Response:
        entry = find(request, run_id)
        if stream not in ("stdout", "stderr"):
            raise WESError(404, f"tasks have stdout and stderr, not {stream!r}")
        call = _find_task(store, entry, task_id)
        return _text_file(task_logs.task_stream(call, stream, store.call_cache_dir(entry)))

    @app.get(BASE + "/runs/{run_id}/outputs/{path:path}")
    def output_file(request: Request, run_id: str, path: str) -> Response:
        entry = find(request, run_id)
        target = store.output_file(entry, path)
        if target is None:
            raise WESError(404, f"run {run_id} has no output file {path!r}")
        return FileResponse(target)

    return app


def _limit_body_size(app: FastAPI, limit: int) -> None:
    """Refuse request bodies over `limit` bytes (plus the form's own framing): at once from
    Content-Length, or as a chunked body streams in (the endpoint's form parsing then stops)."""
    allowed = limit + 64 * 1024

    class BodyLimit:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self.inner = inner

        async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["type"] != "http" or scope["method"] != "POST":
                return await self.inner(scope, receive, send)
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length", b"").decode()
            if length.isdigit() and int(length) > allowed:
                msg = f"the request body ({length} bytes) exceeds the server's upload limit of {limit} bytes"
                return await JSONResponse({"msg": msg, "status_code": 413}, status_code=413)(scope, receive, send)
            seen = 0

            async def counting_receive():  # type: ignore[no-untyped-def]
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > allowed:
                    raise _BodyTooLarge()
                return message

            return await self.inner(scope, counting_receive, send)

    app.add_middleware(BodyLimit)


def _page_size(page_size: Optional[int]) -> int:
    if page_size is None:
        return DEFAULT_PAGE_SIZE
    if page_size < 1 or page_size >= 2**63:  # the description makes it an int64
        raise WESError(400, f"page_size must be a whole number from 1 (pages hold at most {MAX_PAGE_SIZE}), not {page_size}")
    return min(page_size, MAX_PAGE_SIZE)


def _offset_token(token: Optional[str]) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise WESError(400, f"page_token {token[:40]!r} is not one this server gave out; start again without page_token")
    return int(token)


def _run_url(request: Request, run_id: str) -> str:
    return str(request.base_url).rstrip("/") + f"{BASE}/runs/{run_id}"


def _task_log(request: Request, store: RunStore, entry: Entry, call: CallState) -> Dict[str, Any]:
    return task_logs.task_log(_run_url(request, entry.run_id), call, store.call_cache_dir(entry))


def _find_task(store: RunStore, entry: Entry, task_id: str) -> CallState:
    _, state, _ = store.full(entry)
    call = state.calls.get(task_id.replace(".", "/"))
    if call is None or call.kind != "task":
        raise WESError(404, f"run {entry.run_id} has no task {task_id!r}")
    return call


def _text_file(path: Optional[Path]) -> Response:
    if path is None or not path.is_file():
        return PlainTextResponse("")  # not written yet: the URL is good, the content comes later
    return FileResponse(path, media_type="text/plain; charset=utf-8")


def _outputs(outputs: Optional[Dict[str, Any]], run_dir: Path, base: str) -> Dict[str, Any]:
    """outputs.json as miniwdl wrote it, with files in the run directory as URLs this server serves."""
    prefix = str(run_dir.absolute()) + "/"

    def convert(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(prefix):
            return f"{base}/outputs/{value[len(prefix):]}"
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(outputs or {})
