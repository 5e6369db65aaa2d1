"""A tiny loopback API server for kubectl: just enough discovery, then the answer a test chooses."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Texts as the API server's constructors (apimachinery pkg/api/errors) word them.
STATUSES: dict[str, tuple[int, str, str]] = {
    "NotFound": (404, "NotFound", 'pods "{name}" not found'),
    "AlreadyExists": (409, "AlreadyExists", 'pods "{name}" already exists'),
    "Conflict": (
        409,
        "Conflict",
        'Operation cannot be fulfilled on pods "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    ),
    "Forbidden": (
        403,
        "Forbidden",
        'pods "{name}" is forbidden: User "system:serviceaccount:nvflare:launcher" cannot get resource '
        '"pods" in API group "" in the namespace "default"',
    ),
    "QuotaExceeded": (
        403,
        "Forbidden",
        'pods "{name}" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=8, limited: cpu=8',
    ),
    "Unauthorized": (401, "Unauthorized", "Unauthorized"),
    "Invalid": (422, "Invalid", 'Pod "{name}" is invalid: spec.containers[0].image: Required value'),
    "InternalError": (500, "InternalError", "Internal error occurred: etcdserver: request timed out"),
    "ServiceUnavailable": (503, "ServiceUnavailable", "the server is currently unable to handle the request"),
    "TooManyRequests": (429, "TooManyRequests", "Too many requests, please try again later."),
}


@dataclass
class Answer:
    """What the server does for a request on pods: a Status, a hang, or a normal answer."""

    status: str | None = None  # a key of STATUSES
    hang: bool = False
    huge: int = 0  # pad a successful pod answer with this many bytes


def _status_body(kind: str, name: str) -> tuple[int, dict[str, Any]]:
    code, reason, message = STATUSES[kind]
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.format(name=name),
        "reason": reason,
        "code": code,
    }
    if kind == "Invalid":
        body["details"] = {
            "name": name,
            "kind": "Pod",
            "causes": [
                {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}
            ],
        }
    return code, body


_POD_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?$")


class StatusServer:
    """Serves on 127.0.0.1 in a thread; `answer` (or `script`, consumed first) decides each pod request."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.script: list[Answer] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every pod request
        self.bodies: list[bytes] = []
        self.phase = "Running"
        self._rv = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer._handle(self, "GET")

            def do_POST(self) -> None:
                outer._handle(self, "POST")

            def do_DELETE(self) -> None:
                outer._handle(self, "DELETE")

            def do_PUT(self) -> None:
                outer._handle(self, "PUT")

            def do_PATCH(self) -> None:
                outer._handle(self, "PATCH")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="status-server", daemon=True
        )

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def pod_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    def write_kubeconfig(self, path: str, *, token: str = "dummy-token-for-tests", url: str | None = None) -> str:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "status", "cluster": {"server": url or self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "status", "context": {"cluster": "status", "user": "tester"}}],
            "current-context": "status",
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config, out)
        return path

    # -- serving --

    def _send(self, handler: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _pod(self, namespace: str, name: str, pad: int = 0) -> dict[str, Any]:
        with self._lock:
            self._rv += 1
            rv = self._rv
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(rv),
                "uid": f"00000000-0000-0000-0000-{rv:012d}",
                "creationTimestamp": "2025-01-01T00:00:00Z",
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": self.phase},
        }
        if pad:
            pod["metadata"]["annotations"] = {"padding": "x" * pad}
        return pod

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if method == "GET" and path in _DISCOVERY:
            self._send(handler, 200, _DISCOVERY[path])
            return
        match = _POD_PATH.match(path)
        if not match:
            self._send(handler, 404, _status_body("NotFound", path)[1])
            return
        namespace, name = match.group(1), match.group(2) or ""
        with self._lock:
            self.requests.append((method, path))
            if body:
                self.bodies.append(body)
            answer = self.script.pop(0) if self.script else self.answer
        if answer.hang:
            self._stop.wait(60)
            return
        if answer.status is not None:
            code, status = _status_body(answer.status, name or "x")
            self._send(handler, code, status)
            return
        if method == "POST":
            created = json.loads(body or b"{}")
            created.setdefault("metadata", {})["namespace"] = namespace
            self._send(handler, 201, created)
        elif name:
            self._send(handler, 200, self._pod(namespace, name, answer.huge))
        else:
            items = [self._pod(namespace, "a")]
            self._send(handler, 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})


_DISCOVERY: dict[str, Any] = {
    "/version": {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.5",
        "gitCommit": "0",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64",
    },
    "/api": {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    },
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
            }
        ],
    },
}


@contextmanager
def running_status_server() -> Iterator[StatusServer]:
    server = StatusServer().start()
    try:
        yield server
    finally:
        server.stop()
