"""A loopback proxy in front of the sandbox that trickles chosen endpoints.

A trickled request gets its status line and headers at once, then a body of spaces at
`rate` bytes per second that never ends: every read returns within the client's
per-read timeout, so only a wall-clock deadline can end the request. Other requests
are passed to the sandbox unchanged.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# Path prefixes of the sandbox's endpoints, by the names its fault plan uses.
PATHS = {
    "usage": "/v1/organization/usage",
    "costs": "/v1/organization/costs",
    "jobs": "/v1/fine_tuning/jobs",
}


@dataclass
class Trickle:
    base_url: str = ""
    endpoints: set[str] = field(default_factory=set)  # may change while serving
    started: int = 0  # trickled requests begun
    first_at: float | None = None  # time.monotonic() of the first
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def trickles(self, path: str) -> bool:
        return any(path.startswith(PATHS[e]) for e in self.endpoints)


@contextmanager
def trickling_proxy(
    upstream: str, endpoints: tuple[str, ...] = ("usage",), rate: float = 0.5
) -> Iterator[Trickle]:
    """Yields the proxy; point the poller's base_url at `trickle.base_url`."""
    target = urlsplit(upstream)
    trickle = Trickle(endpoints=set(endpoints))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if trickle.trickles(self.path):
                self._trickle()
                return
            conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(method, self.path, body=body or None, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            finally:
                conn.close()

        def _trickle(self) -> None:
            with trickle.lock:
                trickle.started += 1
                if trickle.first_at is None:
                    trickle.first_at = time.monotonic()
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.flush()
            while not trickle.stop.wait(1 / rate):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    trickle.base_url = f"http://127.0.0.1:{server.server_address[1]}{target.path}"
    try:
        yield trickle
    finally:
        trickle.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()
