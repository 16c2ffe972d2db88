"""uvicorn in a daemon thread beside the scheduler, stopped with it.

The scheduler owns the main thread and the SIGTERM/SIGINT handlers (ledger.service);
uvicorn in another thread installs none. On stop, uvicorn stops accepting, gives
requests in flight GRACE_SECONDS, then cancels them; the thread is a daemon, so a
request stuck in a database call cannot keep the process alive.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from ledger.errors import LedgerError

log = logging.getLogger("ledger.web")

GRACE_SECONDS = 3


class HttpServer:
    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.where = f"{host}:{port}"
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,  # our logging: one line per event, masked
            log_level="warning",  # no per-request chatter
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_SECONDS,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start listening; LedgerError when the address cannot be bound."""
        self.thread = threading.Thread(target=self._run, name="ftledger-http", daemon=True)
        self.thread.start()
        end = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < end:
            time.sleep(0.02)
        if not self.server.started:
            self.server.should_exit = True
            raise LedgerError(f"cannot listen on {self.where} (address in use or not local?)")
        log.info("HTTP listening on http://%s", self.where)

    def _run(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
            self.server.run()

    def request_stop(self) -> None:
        """Stop accepting and wind down (safe from a signal handler)."""
        self.server.should_exit = True

    def stop(self, timeout: float = GRACE_SECONDS + 1.0) -> bool:
        """Ask uvicorn to stop; whether it ended within `timeout` seconds."""
        self.server.should_exit = True
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()
