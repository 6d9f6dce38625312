"""A loopback stand-in for SageMaker Studio's Docker proxy (`unix:///docker/proxy.sock`), in front
of the real dockerd: it passes requests through unchanged, but only those Studio accepts.

- Engine API 1.41 only: another version is refused; an unversioned request other than `/_ping`
  gets a redirect (so a Docker SDK that auto-detects its version fails, as in Studio);
- containers only on the `sagemaker` network, never privileged;
- image builds only on the `sagemaker` network, never BuildKit (`/session`, `version=2`).

Each connection carries one request (the proxy asks dockerd to close after answering), so every
request is checked; upgraded connections (attach) are piped through after their request passed.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from typing import List, Tuple
from urllib.parse import parse_qs, urlparse

API = "1.41"
NETWORK = "sagemaker"


class StudioDockerProxy:
    def __init__(self, docker_socket: str = "/var/run/docker.sock"):
        self.docker_socket = docker_socket
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.passed: List[Tuple[str, str]] = []
        self.refused: List[Tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.stopping = False

    @property
    def docker_host(self) -> str:
        return f"tcp://127.0.0.1:{self.server.getsockname()[1]}"

    def __enter__(self) -> "StudioDockerProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.server.close()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            head, rest = _read_head(client)
            if head is None:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            body = rest
            length = int(headers.get("content-length", "0") or 0)
            while len(body) < length:
                chunk = client.recv(65536)
                if not chunk:
                    break
                body += chunk
            why = self._refusal(method, target, headers, body)
            if why:
                status, message = why
                with self.lock:
                    self.refused.append((method, target, message))
                if status == 301:
                    location = f"/v{API}{target}"
                    client.sendall(f"HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                else:
                    payload = json.dumps({"message": message}).encode()
                    client.sendall(
                        f"HTTP/1.1 {status} Refused\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode() + payload
                    )
                return
            with self.lock:
                self.passed.append((method, target))
            upgrade = "upgrade" in headers.get("connection", "").lower()
            lines = [request_line] + [l for l in header_lines if l and not l.lower().startswith("connection:")]
            lines.append("Connection: Upgrade" if upgrade else "Connection: close")
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.docker_socket)
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            _pipe(client, upstream)
        except Exception:
            pass
        finally:
            client.close()

    def _refusal(self, method: str, target: str, headers: dict, body: bytes):
        parsed = urlparse(target)
        match = re.match(r"^/v(\d+\.\d+)(/.*)$", parsed.path)
        if not match:
            if parsed.path == "/_ping":
                return None
            return 301, "unversioned API request (Studio answers Engine API 1.41 only)"
        if match.group(1) != API:
            return 400, f"client version {match.group(1)} is not supported: this proxy answers API {API} only"
        path, query = match.group(2), parse_qs(parsed.query)
        if path == "/session" or query.get("version") == ["2"]:
            return 400, "BuildKit is not allowed (set DOCKER_BUILDKIT=0)"
        if path == "/build" and query.get("networkmode") != [NETWORK]:
            return 403, f"image builds must use --network {NETWORK}"
        if path == "/containers/create":
            config = json.loads(body or b"{}")
            host = config.get("HostConfig") or {}
            if host.get("Privileged"):
                return 403, "privileged containers are not allowed"
            if host.get("NetworkMode") != NETWORK:
                return 403, f"containers must use --network {NETWORK}, not {host.get('NetworkMode')!r}"
        return None


def _read_head(sock: socket.socket):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join()
    b.close()
