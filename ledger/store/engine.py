"""Opening the ledger database: engine settings per dialect and the schema check.

The embedded SQLite database is created and upgraded on first use. A server database
(PostgreSQL) that is behind is refused with a message telling the user to run
`ftledger db upgrade`, since several replicas may share it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from ledger.errors import SchemaBehindError, StoreError
from ledger.store.errors import first_db_line, redact_url

__all__ = ["SCHEMA_HEAD", "create_ledger_engine", "first_db_line", "open_engine", "redact_url"]

# The newest migration. Kept here so opening a database needs no Alembic import;
# a test checks it equals the head of migrations/versions.
SCHEMA_HEAD = "0010"


READ_ONLY = "ledger_read_only"


def read_connection(engine: Engine) -> Connection:
    """A connection for queries only: on SQLite it does not take the write lock, so a
    report never waits behind an import or a poll (WAL readers see the last commit)."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def create_ledger_engine(url: str) -> Engine:
    """An engine with the settings ftledger needs, without touching the schema."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {redact_url(url)}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    try:
        engine = create_engine(parsed, pool_pre_ping=True, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use database {redact_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_settings(engine)
    elif engine.dialect.name == "postgresql":
        _postgresql_settings(engine)
    return engine


# Entries are appended in time order, so a month's rows lie together on disk and a range
# read through the time index is close to sequential I/O. With PostgreSQL's default
# random_page_cost (4, spinning disks) the planner scans the whole table instead once the
# ledger holds a few months: 10M entries, one month read in 1.2 s instead of 0.45 s.
READ_RANDOM_PAGE_COST = "1.1"


def _postgresql_settings(engine: Engine) -> None:
    """Read-only transactions (the read model's) price index range reads as near
    sequential, as they are in an append-only ledger."""

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql(f"SET LOCAL random_page_cost = {READ_RANDOM_PAGE_COST}")


def _sqlite_settings(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so concurrent writers queue, not fail."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        # A new ledger's pages: 16 KiB instead of 4 KiB take a large import's rows in fewer
        # pages, written and checkpointed faster (bench/import_usage.py). It must come
        # before WAL; an existing database keeps the size it was made with.
        cursor.execute("PRAGMA page_size = 16384")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA cache_size = -65536")  # 64 MiB: bulk index inserts stay in memory
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def open_engine(url: str) -> Engine:
    """An engine on a database whose schema is current (SQLite is upgraded in place).

    A schema behind is refused on a server (run `ftledger db upgrade`), one ahead of
    this version everywhere (its migrations are unknown here: upgrade ftledger).
    """
    from ledger.store.migrate import current_revision, known_revision, newer_schema, upgrade

    engine = create_ledger_engine(url)
    try:
        current = current_revision(engine)
        if current != SCHEMA_HEAD:
            if current is not None and not known_revision(current):
                raise newer_schema(engine, current)
            if engine.dialect.name != "sqlite":
                state = "empty" if current is None else f"at revision {current}"
                raise SchemaBehindError(
                    f"database {redact_url(url)} is {state}, not {SCHEMA_HEAD}: "
                    "run `ftledger db upgrade`"
                )
            upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
