"""Wall-clock deadlines for work that talks to other servers, and the shutdown request.

Why: every timeout the HTTP and SMTP clients offer is per socket operation. A server
that sends one byte a second never trips a 2 s read timeout, so a poll (holding the
PostgreSQL poll lock) or an alert delivery could run for ever. A deadline bounds the
whole thing, whatever the server does: trickle the headers, the body, the TLS
handshake or the SMTP greeting.

Two mechanisms, one per kind of work, both built on public APIs only:

- **Reads from OpenAI** (`bounded_call`, `BoundedReader`): the read of one window (or
  of one project's jobs) runs in a daemon worker thread; the caller waits until the
  deadline and then abandons it: it closes the source's HTTP clients, so the worker's
  next socket operation fails and it cannot start another request, and raises
  `DeadlineExceeded`. The sockets sit deep inside the SDK's connection pool, where
  only private attributes reach them; a thread bounds every stage of a request
  (connect, TLS, headers, body, retries and their sleeps) without knowing them. It is
  safe to abandon a read because sync writes only in the caller: a window is written,
  with its watermark, in one transaction after it was read whole, so an abandoned
  window leaves nothing behind. The caller returns at the deadline; the abandoned
  worker ends at its next socket operation (the next trickled byte, or the per-read
  timeout).
- **Alert deliveries** (`SocketWatchdog`): notify.py owns its sockets (urllib and
  smtplib), so a watchdog thread shuts the socket down at the deadline
  (`shutdown(SHUT_RDWR)` wakes a `recv` blocked in another thread); the attempt fails
  with the channel's usual DeliveryError and no thread is left behind.

Shutdown: `request_shutdown()` (serve's SIGTERM handler) sets one process-wide event.
Signals are process-wide too, and this reaches a delivery deep inside a budget check
without threading a flag through every call. Bounded reads and watchdogs wake on it
and give up at once, so `serve` stops within seconds even mid-request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from ledger.errors import DeadlineExceeded, Interrupted
from ledger.period import iso_utc

T = TypeVar("T")
SLICE_SECONDS = 0.1  # how often a waiter looks at the shutdown request and its stop flag
_DAY = 86400
_shutdown = threading.Event()


def request_shutdown() -> None:
    """Ask every bounded read and delivery in this process to give up now."""
    _shutdown.set()


def shutdown_requested() -> bool:
    return _shutdown.is_set()


def clear_shutdown() -> None:
    """Forget an earlier request (a new `serve` in the same process, tests)."""
    _shutdown.clear()


class Deadline:
    """A moment on the monotonic clock, and how to name it in a message."""

    def __init__(self, seconds: float, name: str = "deadline") -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.name = name

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def sooner(self, other: Deadline | None) -> Deadline:
        """Whichever of the two ends first."""
        return self if other is None or self.at <= other.at else other

    def describe(self) -> str:
        return f"{self.name} of {self.seconds:g} s"


def bounded_call(
    fn: Callable[[], T],
    deadline: Deadline,
    what: str,
    *,
    abandon: Callable[[], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> T:
    """`fn()` in a worker thread, waited for until `deadline`, `stop()` or a shutdown.

    Past the deadline: `abandon()` (close what the worker uses), then DeadlineExceeded
    naming the deadline and `what` ("reading usage 2026-11-01..2026-11-04"). On stop or
    shutdown: `abandon()`, then Interrupted. The worker's exceptions are re-raised here.
    """
    if deadline.expired:
        raise DeadlineExceeded(f"{deadline.describe()} exceeded before {what}")
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=work, name="ftledger-bounded-read", daemon=True).start()
    halt = stop or (lambda: False)
    while not done.wait(min(deadline.remaining(), SLICE_SECONDS)):
        if shutdown_requested() or halt():
            _quietly(abandon)
            raise Interrupted(f"stopping: abandoned {what}")
        if deadline.expired:
            _quietly(abandon)
            raise DeadlineExceeded(f"{deadline.describe()} exceeded {what}")
    ok, value = outcome[0]
    if ok:
        return cast(T, value)
    raise value


def _quietly(fn: Callable[[], None] | None) -> None:
    if fn is None:
        return
    with contextlib.suppress(Exception):  # closing a client mid-request may complain
        fn()


def span(start: int, end: int) -> str:
    """[start, end) as days when both are midnights, else as timestamps."""
    if start % _DAY == 0 and end % _DAY == 0:
        return f"{iso_utc(start)[:10]}..{iso_utc(end)[:10]}"
    return f"{iso_utc(start)}..{iso_utc(end)}"


class BoundedReader:
    """A source reader (sync.AdminReader / JobReader) whose every read ends in time.

    Each call reads its window whole in a worker thread (sync reads windows whole
    anyway) and returns the pages; past the deadline the reader is closed.
    """

    def __init__(
        self, reader: Any, deadline: Deadline, stop: Callable[[], bool] | None = None
    ) -> None:
        self._reader = reader
        self._deadline = deadline
        self._stop = stop

    def _read(self, fn: Callable[[], list[T]], what: str) -> Iterator[T]:
        return iter(bounded_call(fn, self._deadline, what, abandon=self.close, stop=self._stop))

    def usage_pages(self, start: int, end: int, bucket_width: str) -> Iterator[list[Any]]:
        return self._read(
            lambda: list(self._reader.usage_pages(start, end, bucket_width)),
            f"reading usage {span(start, end)}",
        )

    def cost_pages(self, start: int, end: int) -> Iterator[list[Any]]:
        return self._read(
            lambda: list(self._reader.cost_pages(start, end)), f"reading costs {span(start, end)}"
        )

    def jobs(self, project_name: str | None = None) -> Iterator[Any]:
        project = f" of project {project_name}" if project_name else ""
        return self._read(lambda: list(self._reader.jobs(project_name)), f"reading jobs{project}")

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()


class SocketWatchdog:
    """Shuts watched sockets down at a deadline or on a shutdown request.

    `with SocketWatchdog(deadline) as dog:` then `dog.watch(lambda: conn.sock)` once
    the socket exists (the getter is read when the dog fires, so a socket replaced by
    STARTTLS is the one shut down). After a failure, `dog.fired` tells whether the
    watchdog caused it and `dog.reason` says why.
    """

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.reason: str | None = None
        self._getters: list[Callable[[], socket.socket | None]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ftledger-watchdog", daemon=True)

    @property
    def fired(self) -> bool:
        return self.reason is not None

    def watch(self, get: Callable[[], socket.socket | None]) -> None:
        with self._lock:
            self._getters.append(get)
            if self.fired:  # too late already: do not let it start talking
                _shut(get())

    def __enter__(self) -> SocketWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(min(self.deadline.remaining(), SLICE_SECONDS)):
            if shutdown_requested():
                reason = "interrupted: ftledger is stopping"
            elif self.deadline.expired:
                reason = f"no complete answer within its {self.deadline.describe()}"
            else:
                continue
            with self._lock:
                self.reason = reason
                for get in self._getters:
                    _shut(get())
            return


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):  # not connected yet, or already closed
        sock.shutdown(socket.SHUT_RDWR)
