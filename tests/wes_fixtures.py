"""A real `miniwdl-jupyter wes serve` on loopback (port chosen at runtime), a client that validates
every response against the official WES 1.1.0 OpenAPI description with schemathesis, and WDL
used by the WES tests."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import httpx
import jsonschema
import pytest
import yaml

from conftest import DATA

SPEC_FILE = DATA / "wes" / "workflow_execution_service.openapi.yaml"
SERVICE_INFO_FILE = DATA / "wes" / "service-info.yaml"
SERVICE_INFO_REF = "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/Service"
TERMINAL = ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED")

SCATTER_MAIN = """version 1.1
import "lib/greet.wdl" as g
workflow hello {
  input { Array[String] names  String greeting = "hi" }
  scatter (n in names) { call g.greet { input: name = n, greeting = greeting } }
  output { Array[File] files = greet.out  Int count = length(names) }
}
"""
SCATTER_LIB = """version 1.1
task greet {
  input { String name  String greeting }
  command <<< echo "~{greeting} ~{name}" > out.txt; echo "said ~{name}" >&2 >>>
  output { File out = "out.txt" }
  runtime { docker: "IMAGE" }
}
"""
ONE_TASK = """version 1.1
workflow one {
  input { String word = "x"  Int seconds = 0 }
  call echo_it { input: word = word, seconds = seconds }
  output { String said = echo_it.said }
}
task echo_it {
  input { String word  Int seconds }
  command <<< sleep ~{seconds}; echo ~{word} >>>
  output { String said = read_string(stdout()) }
  runtime { docker: "IMAGE" }
}
"""
# Runs out of memory under a 64 MB limit (the server sets [task_runtime] memory_limit_multiplier)
OUT_OF_MEMORY = """version 1.1
workflow hungry {
  call eat
}
task eat {
  command <<< x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo "${#x}" >>>
  runtime { docker: "IMAGE" memory: "64M" }
}
"""
FAILING = """version 1.1
workflow fails {
  call boom
}
task boom {
  command <<< echo "about to fail" >&2; echo "oops: no such sample" >&2; exit 3 >>>
  runtime { docker: "IMAGE" }
}
"""


def _schema_document() -> Dict[str, Any]:
    """The official description, with the service-info schema it references by URL resolved to
    the copy in tests/data (the file itself is unchanged)."""
    spec = yaml.safe_load(SPEC_FILE.read_text())
    service = yaml.safe_load(SERVICE_INFO_FILE.read_text())["components"]["schemas"]
    text = json.dumps(spec).replace(SERVICE_INFO_REF, "#/components/schemas/Service")
    spec = json.loads(text)
    spec["components"]["schemas"]["Service"] = service["Service"]
    spec["components"]["schemas"]["ServiceType"] = service["ServiceType"]
    return spec


_SPEC = _schema_document()
_ERROR_SCHEMA = copy.deepcopy(_SPEC["components"]["schemas"]["ErrorResponse"])
_ERROR_SCHEMA["required"] = ["msg", "status_code"]  # ours always say both


def _schemathesis_schema():  # type: ignore[no-untyped-def]
    import schemathesis

    return schemathesis.openapi.from_dict(_SPEC)


class WES:
    """Calls the server; every response of a WES endpoint is validated against the 1.1.0
    description (schemathesis), and every error body against ErrorResponse."""

    validated = 0

    def __init__(self, url: str, token: Optional[str] = None):
        self.url = url
        self.http = httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"} if token else {})
        self._schema = _schemathesis_schema()

    def call(self, method: str, template: str, *, expect: Optional[int] = 200, **kwargs: Any) -> httpx.Response:
        path_params = {k: kwargs.pop(k) for k in ("run_id", "task_id") if k in kwargs}
        response = self.http.request(method, self.url + template.format(**path_params), **kwargs)
        self.check(method, template, response)
        if expect is not None:
            assert response.status_code == expect, f"{method} {template}: {response.status_code} {response.text[:500]}"
        return response

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        operation = self._schema[template][method.upper()]
        try:
            response.request.read()  # schemathesis records the request body; multipart bodies stream
        except httpx.StreamConsumed:
            response.request._content = b""  # a one-shot generator body: nothing to record
        operation.validate_response(response)  # raises on any difference from the description
        if response.status_code != 200:
            body = response.json()
            jsonschema.validate(body, _ERROR_SCHEMA)
            assert body["status_code"] == response.status_code
        WES.validated += 1

    # -- conveniences ----------------------------------------------------------------------------
    def submit(self, main: str, params: Dict[str, Any], *, files: Optional[List[Tuple[str, bytes]]] = None, url: str = "main.wdl",
               engine: Optional[Dict[str, str]] = None, tags: Optional[Dict[str, str]] = None, expect: Optional[int] = 200,
               version: str = "1.1", name: Optional[str] = None) -> httpx.Response:
        parts = [("workflow_attachment", (name or url, main.encode()))] if main is not None else []
        parts += [("workflow_attachment", (name, data)) for name, data in (files or [])]
        data = {
            "workflow_type": "WDL",
            "workflow_type_version": version,
            "workflow_url": url,
            "workflow_params": json.dumps(params),
            "workflow_engine_parameters": json.dumps(engine or {"backend": "local"}),
            "tags": json.dumps(tags or {}),
        }
        return self.call("POST", "/runs", data=data, files=parts, expect=expect)

    def state(self, run_id: str) -> str:
        return self.call("GET", "/runs/{run_id}/status", run_id=run_id).json()["state"]

    def wait(self, run_id: str, states: Tuple[str, ...] = TERMINAL, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(run_id)
            if state in states:
                return state
            assert time.monotonic() < deadline, f"run {run_id} still {state} after {timeout} s"
            time.sleep(0.3)

    def run_log(self, run_id: str) -> Dict[str, Any]:
        return self.call("GET", "/runs/{run_id}", run_id=run_id).json()


class Server:
    """`miniwdl-jupyter wes serve` as a subprocess, as an operator starts it."""

    def __init__(self, root: Path, env: Dict[str, str], *extra: str):
        self.root = root
        self.env = env
        self.extra = extra
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""

    def start(self) -> "Server":
        log = open(self.root.parent / f"server-{self.root.name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "miniwdl_jupyter.cli", "wes", "serve", "--port", "0", "--root", str(self.root), *self.extra],
            stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=self.root.parent,
        )
        line = _read_line(self.proc, timeout=60)
        assert line.startswith("WES listening on "), f"server did not start: {line!r} (see {log.name})"
        self.url = line.split()[-1]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    result: List[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip() if result else ""


def server_env(base: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIWDL")}
    env.update(
        MINIWDL_CFG=str(base / "no-such.cfg"),
        MINIWDL__CALL_CACHE__DIR=str(base / "call_cache"),
        MINIWDL__JUPYTER__BACKEND="local",
        MINIWDL__JUPYTER__ROOT=str(base / "cells"),
    )
    return env


@pytest.fixture(scope="module")
def wes_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wes")


@pytest.fixture(scope="module")
def server(wes_base: Path):
    srv = Server(wes_base / "root", server_env(wes_base), "--backend", "local", "--backends", "local,docker_run").start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> WES:
    return WES(server.url)
