"""Loopback receivers for alert tests: an HTTP endpoint that can fail, and an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every POST; answers 500 to the first `fail_first` and while `down` is set.

    While `trickle` is set (bytes per second), a POST gets 200 and its headers at once,
    then a body that never ends at that rate (recorded as answered 0).
    """

    url: str = ""
    fail_first: int = 0
    down: bool = False
    trickle: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.answered == 200]


@contextmanager
def http_receiver(fail_first: int = 0, path: str = "/hook") -> Iterator[Receiver]:
    receiver = Receiver(fail_first=fail_first)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.trickle:
                self._trickle(body)
                return
            with receiver.lock:
                failing = receiver.down or len(receiver.requests) < receiver.fail_first
                status = 500 if failing else 200
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), body, status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def _trickle(self, body: bytes) -> None:
            with receiver.lock:
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body, 0))
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.flush()
            while not receiver.stop.wait(1 / receiver.trickle):
                try:
                    self.wfile.write(b".")
                    self.wfile.flush()
                except OSError:  # the sender gave up
                    return

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        receiver.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def smtp_server(**smtp_kwargs: Any) -> Iterator[tuple[int, list[Any]]]:
    """An aiosmtpd server on loopback; yields (port, received envelopes)."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **smtp_kwargs)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
