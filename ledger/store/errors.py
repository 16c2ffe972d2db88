"""The one seam for database errors, and the one retry of a lost race.

SQLAlchemy and driver exceptions never leave `store/`: every call into the database
runs inside `db_errors(...)`, which turns them into the LedgerError tree with one line
saying what was being done and why it failed (unreachable server, refused login,
missing database or folder, read-only file, schema behind). The URL is shown without
its password, and the driver's message is scrubbed of it too. A unique violation or a
PostgreSQL serialization failure or deadlock becomes ConflictError: a concurrent
writer won, and `retry_on_conflict` runs the work again against what it wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from ledger.errors import ConflictError, SchemaBehindError, StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

CONFLICT_ATTEMPTS = 5
CONFLICT_PAUSE_SECONDS = 0.05
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
_UNIQUE_SQLSTATE = "23505"
_UNDEFINED_TABLE_SQLSTATE = "42P01"
_AUTH_SQLSTATES = {"28000", "28P01"}
_NO_DATABASE_SQLSTATE = "3D000"
# libpq reports connection failures without a SQLSTATE: recognised by their text.
_CONNECT_FAILURES = (
    "connection refused",
    "could not connect",
    "failed to resolve host",
    "could not translate host name",
    "timeout expired",
    "no route to host",
    "network is unreachable",
)


@contextmanager
def db_errors(
    doing: str, url: str | URL | None = None, *, conflict: str | None = None
) -> Iterator[None]:
    """Translate database errors raised inside into StoreError (or ConflictError).

    `doing` reads "<doing> failed: ..." (e.g. "reading the ledger"); `url` names the
    database in the message; `conflict` replaces the message of a lost race.
    """
    try:
        yield
    except SQLAlchemyError as exc:
        raise translate(exc, doing, url, conflict=conflict) from None


def translate(
    exc: SQLAlchemyError, doing: str, url: str | URL | None = None, *, conflict: str | None = None
) -> StoreError:
    """The LedgerError for a SQLAlchemy error: one line, no SQL, no password."""
    shown = redact_url(url) if url is not None else "the database"
    detail = _scrub(first_db_line(exc), url)
    lowered = detail.lower()
    code = sqlstate(exc)
    if _is_conflict(exc, code, lowered):
        return ConflictError(conflict or f"{doing} failed: a concurrent writer won ({detail})")
    if code == _UNDEFINED_TABLE_SQLSTATE or "no such table" in lowered:
        return SchemaBehindError(
            f"{doing} failed: {shown} lacks a table ({detail}): run `ftledger db upgrade`"
        )
    if (
        code in _AUTH_SQLSTATES
        or "authentication failed" in lowered
        or ('role "' in lowered and "does not exist" in lowered)
    ):
        return StoreError(f"{doing} failed: {shown} refused the login: {_tail(detail)}")
    if code == _NO_DATABASE_SQLSTATE or ('database "' in lowered and "does not exist" in lowered):
        return StoreError(
            f"{doing} failed: {shown}: {_tail(detail)} (create it, then `ftledger db upgrade`)"
        )
    if "readonly database" in lowered or "read-only" in lowered:
        return StoreError(f"{doing} failed: {shown} is read-only ({detail})")
    if "unable to open database file" in lowered:
        return StoreError(f"{doing} failed: {_sqlite_open_reason(url, shown)}")
    if any(text in lowered for text in _CONNECT_FAILURES):
        return StoreError(f"{doing} failed: cannot connect to {shown}: {_tail(detail)}")
    return StoreError(f"{doing} failed: {detail}")


def retry_on_conflict(
    work: Callable[[], T],
    *,
    attempts: int = CONFLICT_ATTEMPTS,
    pause: float = CONFLICT_PAUSE_SECONDS,
) -> T:
    """Run `work` until it does not lose a race (ConflictError), at most `attempts` times.

    `work` must be a whole transaction, so each attempt re-reads what the winner wrote.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except ConflictError:
            if attempt == attempts:
                raise
        time.sleep(pause * attempt)
    raise AssertionError("attempts must be at least 1")


def in_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    doing: str,
    attempts: int = CONFLICT_ATTEMPTS,
) -> T:
    """`work(conn)` in one transaction, database errors translated, lost races retried."""

    def attempt() -> T:
        with db_errors(doing, engine.url), engine.begin() as conn:
            return work(conn)

    return retry_on_conflict(attempt, attempts=attempts)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error (psycopg 3 or psycopg2), if it has one."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def first_db_line(exc: BaseException) -> str:
    """The driver's own first line of a database error (no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def redact_url(url: str | URL) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def _is_conflict(exc: SQLAlchemyError, code: str | None, lowered: str) -> bool:
    if isinstance(exc, IntegrityError):
        return code == _UNIQUE_SQLSTATE or "unique constraint" in lowered
    return isinstance(exc, DBAPIError) and code in RETRYABLE_SQLSTATES


def _tail(detail: str) -> str:
    """libpq's own reason, without its "connection failed: ... failed:" preamble."""
    reason = detail.rsplit(" failed: ", 1)[-1]
    return reason.replace("FATAL:", "").strip() or detail


def _sqlite_open_reason(url: str | URL | None, shown: str) -> str:
    database = _url(url).database if url is not None else None
    if database and database != ":memory:":
        folder = Path(database).parent
        if not folder.is_dir():
            return f"the folder {folder} of the SQLite file {database} does not exist"
    return f"cannot open {shown}: the file is missing, unreadable or not a database"


def _scrub(text: str, url: str | URL | None) -> str:
    """`text` without the URL's password, should a driver ever echo it."""
    password = _url(url).password if url is not None else None
    return text.replace(str(password), "***") if password else text


def _url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        return URL.create("unknown")
