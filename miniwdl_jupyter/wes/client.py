"""A small client for any GA4GH WES 1.1 server (httpx): submit, status, task logs, cancel."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit

import httpx

from ..errors import BackendError, ConfigError, InputError, RunNotFound

_logger = logging.getLogger("miniwdl_jupyter.wes.client")
BASE_PATH = "/ga4gh/wes/v1"


def base_url(url: str) -> str:
    """A server URL as its API base: a bare host gets WES's standard /ga4gh/wes/v1; a URL with a
    path is used as given (some servers serve the API elsewhere)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"WES URL {url!r} must start with http:// or https://")
    return url if parts.path not in ("", "/") else url + BASE_PATH


class WESClient:
    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0):
        self.base = base_url(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "WESClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls -------------------------------------------------------------------------------------
    def service_info(self) -> Dict[str, Any]:
        return self._json("GET", "/service-info")

    def submit(self, fields: Dict[str, str], files: List[Tuple[str, Path]]) -> str:
        parts = [("workflow_attachment", (name, open(path, "rb"))) for name, path in files]
        try:
            body = self._json("POST", "/runs", data=fields, files=parts or None)
        finally:
            for _, (_, handle) in parts:
                handle.close()
        return body["run_id"]

    def status(self, run_id: str) -> str:
        return self._json("GET", f"/runs/{run_id}/status").get("state", "UNKNOWN")

    def run_log(self, run_id: str) -> Dict[str, Any]:
        return self._json("GET", f"/runs/{run_id}")

    def tasks(self, run_id: str, page_size: int = 500) -> Iterator[Dict[str, Any]]:
        """Every task log of a run, through the paged /tasks endpoint (1.1), or RunLog.task_logs
        from servers that have no such endpoint (1.0)."""
        token = ""
        while True:
            params: Dict[str, Any] = {"page_size": page_size}
            if token:
                params["page_token"] = token
            try:
                page = self._json("GET", f"/runs/{run_id}/tasks", params=params)
            except _NotFound:
                yield from self.run_log(run_id).get("task_logs") or []
                return
            yield from page.get("task_logs") or []
            token = page.get("next_page_token") or ""
            if not token:
                return

    def cancel(self, run_id: str) -> None:
        self._json("POST", f"/runs/{run_id}/cancel")

    def text(self, url: str, limit: int = 1 << 20) -> str:
        """A log URL's content (the end of it, up to `limit` bytes); "" when it cannot be read."""
        try:
            response = self._http.get(url)
        except httpx.HTTPError:
            return ""
        if response.status_code != 200:
            return ""
        return response.content[-limit:].decode(errors="replace")

    # -- plumbing ----------------------------------------------------------------------------------
    def _json(self, method: str, path: str, **kwargs: Any) -> Dict[str, Any]:
        url = self.base + path
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exn:
            raise Unreachable(f"WES server {self.base} did not answer {method} {path}: {exn}") from None
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise BackendError(f"WES server {self.base} answered {method} {path} with something that is not JSON") from None
        msg = _error_message(response)
        if response.status_code == 404 and path.endswith("/tasks"):
            raise _NotFound(msg)
        if response.status_code in (401, 403):
            raise ConfigError(f"WES server {self.base} refused {method} {path} ({response.status_code}): {msg}. Set the token with [wes] token or MINIWDL__WES__TOKEN")
        if response.status_code in (400, 413, 422):
            raise InputError(f"WES server refused the request ({response.status_code}): {msg}")
        if response.status_code == 404:
            raise RunNotFound(f"WES server {self.base}: {msg} ({method} {path} -> 404)")
        raise Unreachable(f"WES server {self.base} failed {method} {path} ({response.status_code}): {msg}")


class Unreachable(BackendError):
    """The server did not answer or failed (5xx): worth retrying for a while."""


class _NotFound(Exception):
    pass


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("msg") or body.get("message") or body.get("detail") or json.dumps(body)[:300])
    return json.dumps(body)[:300]
