"""The sandbox served over real HTTP on loopback, in a background thread.

Routes, bearer-key roles (admin key for usage and costs, project keys for jobs and
moderations), request ids and counters; the answers come from `answers.py`. A server
misbehaves only through a `FaultHook` its creator passes (the tests pass a
`faults.FaultPlan`); without one, every request gets its correct answer.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

from ledger.sandbox.answers import ANSWERS, BadRequest, Query, dumps, error_body
from ledger.sandbox.cast import PROJECTS
from ledger.sandbox.organisation import SandboxOrg

ENDPOINTS = ("usage", "costs", "jobs", "moderations")  # names used by counters and faults
_ROUTES = {
    ("GET", "/v1/organization/usage/completions"): ("usage", "admin"),
    ("GET", "/v1/organization/costs"): ("costs", "admin"),
    ("GET", "/v1/fine_tuning/jobs"): ("jobs", "project"),
    ("POST", "/v1/moderations"): ("moderations", "project"),
}


@dataclass
class Page:
    """What the server sends for one request; a fault may replace or bend it."""

    status: int
    body: dict[str, Any] | bytes
    headers: dict[str, str] = field(default_factory=dict)
    # a fault's broken delivery: half the body then close, or a TCP reset and nothing sent
    cut: Literal["truncate", "reset"] | None = None


@dataclass
class Request:
    """An authorised request as a fault sees it (a fault may edit `query`)."""

    endpoint: str
    key: str | None
    query: Query


class PlannedFault(Protocol):
    """One request's planned misbehaviour."""

    def before(self, request: Request, wait: Callable[[float], None]) -> Page | None:
        """A page to send instead of the answer, or None to answer (maybe after `wait`)."""
        ...

    def after(self, request: Request, page: Page) -> Page:
        """The answer as it will be sent."""
        ...


class FaultHook(Protocol):
    """Where a server gets its faults from; only tests pass one."""

    def take(self, endpoint: str) -> PlannedFault | None:
        """The fault for this request to `endpoint`, if any."""
        ...


class SandboxServer:
    """The sandbox on 127.0.0.1 (port chosen by the OS) in a background thread."""

    def __init__(
        self,
        org: SandboxOrg,
        *,
        admin_key: str = "sk-admin-sandbox-0000",
        project_keys: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        faults: FaultHook | None = None,
    ) -> None:
        self.org = org
        self.admin_key = admin_key
        self.project_keys = project_keys or {name: f"sk-proj-sandbox-{name}" for name in PROJECTS}
        unknown = set(self.project_keys) - set(PROJECTS)
        if unknown:
            raise ValueError(f"unknown sandbox projects {sorted(unknown)}; one of {list(PROJECTS)}")
        self.faults = faults
        self.requests: Counter[str] = Counter()
        self.errors: list[str] = []  # sandbox bugs (never expected); tests may assert empty
        self._lock = threading.Lock()
        self._seq = 0
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd = _HTTPServer((host, 0), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SandboxServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-openai",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, drop open keep-alive connections and join every thread."""
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- called by the handler threads --------------------------------------------------

    def next_request_id(self) -> str:
        with self._lock:
            self._seq += 1
            return f"req_sandbox{self._seq:08x}"

    def count(self, endpoint: str) -> None:
        with self._lock:
            self.requests[endpoint] += 1

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def wait(self, seconds: float) -> None:
        """Sleep, but wake when the server closes so shutdown never waits for a slow reply."""
        self._stop.wait(seconds)

    def role_of(self, key: str | None) -> tuple[str, str | None]:
        """("admin"|"project"|"none"|"unknown", project name) for a presented key."""
        if not key:
            return "none", None
        if key == self.admin_key:
            return "admin", None
        for name, candidate in self.project_keys.items():
            if key == candidate:
                return "project", name
        return "unknown", None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True

    def __init__(self, address: tuple[str, int], handler: type, sandbox: SandboxServer):
        self.sandbox = sandbox
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, resets) are normal here: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox.track(self.connection, True)

    def finish(self) -> None:
        self.server.sandbox.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a request line is harmless, but nothing here ever prints a key."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        body = self._read_body()
        request_id = sandbox.next_request_id()
        route = _ROUTES.get((method, url.path.rstrip("/")))
        if route is None:
            message = f"Unknown request URL: {method} {url.path}."
            page = Page(404, error_body(message, "invalid_request_error", "unknown_url"))
            self._send(page, request_id)
            return
        endpoint, role = route
        sandbox.count(endpoint)
        key = self._bearer()
        denied = _check_key(sandbox, key, role)
        if denied is not None:
            self._send(denied, request_id)
            return
        fault = sandbox.faults.take(endpoint) if sandbox.faults is not None else None
        request = Request(endpoint, key, parse_qs(url.query, keep_blank_values=True))
        if fault is not None:
            instead = fault.before(request, sandbox.wait)
            if instead is not None:
                self._send(instead, request_id)
                return
        page = self._answer(request, body)
        if fault is not None:
            page = fault.after(request, page)
        self._send(page, request_id)

    def _answer(self, request: Request, body: bytes) -> Page:
        sandbox = self.server.sandbox
        try:
            _, project = sandbox.role_of(request.key)
            answer = ANSWERS[request.endpoint]
            return Page(200, answer(sandbox.org, request.query, body, project))
        except BadRequest as exc:
            return Page(400, error_body(str(exc), "invalid_request_error", None, exc.param))
        except Exception as exc:  # a sandbox bug: answer 500 and remember it
            sandbox.errors.append(f"{request.endpoint}: {type(exc).__name__}: {exc}")
            message = "The sandbox had an internal error."
            return Page(500, error_body(message, "server_error", None))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _send(self, page: Page, request_id: str) -> None:
        if page.cut == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        truncate = page.cut == "truncate"
        data = page.body if isinstance(page.body, bytes) else dumps(page.body)
        try:
            self.send_response(page.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", request_id)
            for name, value in page.headers.items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if truncate else data)
        except OSError:
            self.close_connection = True


def _check_key(sandbox: SandboxServer, key: str | None, needed: str) -> Page | None:
    role, _ = sandbox.role_of(key)
    if role == "none":
        message = (
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return Page(401, error_body(message, "invalid_request_error", None))
    if role == "unknown":
        masked = f"{(key or '')[:3]}****{(key or '')[-4:]}"
        message = f"Incorrect API key provided: {masked}. Find your API keys in the dashboard."
        return Page(401, error_body(message, "invalid_request_error", "invalid_api_key"))
    if role != needed:
        message = "You have insufficient permissions for this operation. Missing scopes: " + (
            "api.usage.read." if needed == "admin" else "api.model.request."
        )
        return Page(403, error_body(message, "invalid_request_error", None))
    return None
