"""AWS test set-up: moto's server on loopback (started by .ci/provision), a Batch queue on an
unmanaged compute environment per test, a host directory standing in for EFS, and a loopback
proxy in front of moto that counts API calls by operation and can answer 429 (throttling) the way
AWS does. Everything goes over HTTP with real boto3 clients; nothing is patched in-process."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Optional, Set
from urllib.parse import parse_qs, urlparse

MOTO = os.environ.get("MINIWDL_JUPYTER_TEST_MOTO", "127.0.0.1:5000")
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


def moto_answers(addr: str = MOTO) -> bool:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def boto_client(service: str, endpoint: Optional[str] = None):
    import boto3

    return boto3.session.Session().client(
        service,
        region_name=REGION,
        endpoint_url=endpoint or f"http://{MOTO}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_queue(name: Optional[str] = None) -> Dict[str, str]:
    """An ENABLED job queue on an unmanaged compute environment (moto runs its jobs on the local
    Docker daemon). Unique names: the moto server is shared by every test and helper."""
    name = name or f"q-{uuid.uuid4().hex[:10]}"
    iam = boto_client("iam")
    batch = boto_client("batch")
    try:
        role = iam.create_role(RoleName="miniwdl-jupyter-test-batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="miniwdl-jupyter-test-batch")["Role"]["Arn"]
    ce = batch.create_compute_environment(computeEnvironmentName=f"ce-{name}", type="UNMANAGED", state="ENABLED", serviceRole=role)
    batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    return {"queue": name, "compute_environment": f"ce-{name}", "role": role}


def batch_env(efs: Path, queue: str, endpoint: Optional[str] = None, **extra: str) -> Dict[str, str]:
    """The environment a miniwdl process needs for aws_batch against the emulator: `efs` is a
    host directory mounted into every job at the same path (moto honours host volumes)."""
    env = dict(DUMMY_CREDENTIALS)
    env.update(
        MINIWDL__AWS__REGION=REGION,
        MINIWDL__AWS__ENDPOINT_URL=endpoint or f"http://{MOTO}",
        MINIWDL__AWS__TASK_QUEUE=queue,
        MINIWDL__AWS__HOST_PATH=str(efs),
        MINIWDL__AWS__MOUNT=str(efs),
        MINIWDL__AWS__DESCRIBE_PERIOD="0.5",
        # Batch runs tasks elsewhere: the host's core count does not bound how many may run
        MINIWDL__SCHEDULER__TASK_CONCURRENCY="100",
    )
    env.update(extra)
    return env


def queue_jobs(queue: str, statuses=("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")) -> Dict[str, list]:
    batch = boto_client("batch")
    return {s: batch.list_jobs(jobQueue=queue, jobStatus=s)["jobSummaryList"] for s in statuses}


class AwsProxy:
    """A loopback HTTP proxy in front of moto: counts requests per API operation (and keeps when
    each came, in `stamps`, and its JSON body, in `bodies`) and answers every `throttle_every`-th request (1: all) of the operations
    in `throttle`, starting with the first, with HTTP 429
    TooManyRequestsException, in the wire format of AWS's REST-JSON services (Batch)."""

    def __init__(
        self,
        upstream: str = MOTO,
        throttle: Set[str] = frozenset(),
        throttle_every: int = 2,
        answer: Optional[Dict[str, Any]] = None,
        rewrite: Optional[Dict[str, Any]] = None,
    ):
        """`answer`: operation -> f(request) -> response, for operations the emulator lacks:
        a JSON request gives a JSON answer; a query-protocol request (form fields) an XML str; `rewrite`: operation -> f(response
        JSON) -> response JSON, applied to the emulator's answer."""
        self.answer = answer or {}
        self.rewrite = rewrite or {}
        self.upstream = upstream
        self.throttle = set(throttle)
        self.throttle_every = throttle_every
        self.calls: Counter = Counter()
        self.stamps: Dict[str, list] = {}
        self.bodies: Dict[str, list] = {}
        self.throttled: Counter = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                op = operation(self.path, self.headers, body)
                with proxy.lock:
                    proxy.calls[op] += 1
                    proxy.stamps.setdefault(op, []).append(time.monotonic())
                    try:
                        proxy.bodies.setdefault(op, []).append(json.loads(body or b"{}"))
                    except ValueError:  # a query-protocol (form) body
                        proxy.bodies.setdefault(op, []).append(body.decode(errors="replace"))
                    inject = op in proxy.throttle and (proxy.calls[op] - 1) % proxy.throttle_every == 0
                    if inject:
                        proxy.throttled[op] += 1
                if inject:
                    payload = json.dumps({"__type": "TooManyRequestsException", "message": "Too Many Requests"}).encode()
                    self.send_response(429)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if op in proxy.answer:
                    if body.startswith(b"{") or not body:
                        request = json.loads(body or b"{}")
                    else:  # query protocol (IAM, STS, EC2): form fields
                        request = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(body.decode()).items()}
                    result = proxy.answer[op](request)
                    # a str is an XML answer (query protocol), anything else JSON
                    payload = result.encode() if isinstance(result, str) else json.dumps(result).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/xml" if isinstance(result, str) else "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                host, port = proxy.upstream.rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                if op in proxy.rewrite and answer.status == 200:
                    data = json.dumps(proxy.rewrite[op](json.loads(data))).encode()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "AwsProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.stamps.clear()
            self.bodies.clear()
            self.throttled.clear()


def operation(path: str, headers: Any, body: bytes) -> str:
    """The API operation of a request: REST-JSON paths (Batch: /v1/submitjob), X-Amz-Target
    (JSON protocol), or the Action parameter (query protocol)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    parsed = urlparse(path)
    if parsed.path.startswith("/v1/"):
        return parsed.path[len("/v1/"):].strip("/")
    action = parse_qs(parsed.query).get("Action") or parse_qs(body.decode(errors="replace")).get("Action")
    return action[0] if action else f"{headers.get('Host', '')}{parsed.path}"


REPO = Path(__file__).resolve().parent.parent
HEAD_DEPENDENCIES = ["miniwdl>=1.16", "pyyaml>=6", "psutil>=5.9", "docker>=6", "boto3>=1.28"]


def build_head_image(base_image: str, workdir: Path) -> str:
    """The `--submit aws` head image (docker/aws-head.Dockerfile) with this checkout installed:
    wheels built here with the host's pip settings, so the build needs no index. Tagged by a
    digest of the package's sources; Docker's layer cache keeps the python3 and dependency layers."""
    import hashlib
    import shutil
    import subprocess
    import sys

    digest = hashlib.sha256(base_image.encode())
    sources = [REPO / "pyproject.toml", REPO / "docker" / "aws-head.Dockerfile", *sorted((REPO / "miniwdl_jupyter").rglob("*"))]
    for path in sources:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    tag = f"miniwdl-jupyter-head:test-{digest.hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    context = workdir / "head-image"
    for sub in ("deps", "project"):
        (context / "wheels" / sub).mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q"]
    subprocess.run(pip + ["-w", str(context / "wheels" / "deps"), *HEAD_DEPENDENCIES], check=True, capture_output=True)
    subprocess.run(pip + ["--no-deps", "-w", str(context / "wheels" / "project"), str(REPO)], check=True, capture_output=True)
    shutil.copy(REPO / "docker" / "aws-head.Dockerfile", context / "Dockerfile")
    built = subprocess.run(
        ["docker", "build", "-q", "--build-arg", f"BASE={base_image}", "--build-arg", "PIP_NO_INDEX=1", "-t", tag, str(context)],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    if built.returncode != 0:
        raise RuntimeError(f"head image build failed:\n{built.stdout[-2000:]}\n{built.stderr[-2000:]}")
    return tag
