"""The poll lock: one poller per ledger at a time on PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.store.errors import db_errors, first_db_line

log = logging.getLogger("ledger.sync")

# (class, hashtext(current_schema())): one poller per ledger, and ledgers kept in
# different schemas of one database do not block each other.
ADVISORY_LOCK_CLASS = 0x6674_6C65  # "ftle"
_LOCK_ARGS = "(:k, hashtext(current_schema()))"


@contextmanager
def poll_lock(engine: Engine) -> Iterator[bool]:
    """Yield whether this process may poll now.

    PostgreSQL: a session advisory lock held on a dedicated connection for the whole
    cycle; if the holder dies its session ends and the lock with it, so another replica
    takes over at its next tick. SQLite (one machine): always True; concurrent pollers
    are serialised by BEGIN IMMEDIATE and kept from double counting by the unique keys.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    with db_errors("taking the poll lock", engine.url):
        conn = engine.connect()
    try:
        with db_errors("taking the poll lock", engine.url):
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock" + _LOCK_ARGS), {"k": ADVISORY_LOCK_CLASS}
                ).scalar()
            )
            conn.commit()
    except BaseException:
        conn.close()  # a failed attempt must not leak the pooled connection
        raise
    try:
        try:
            yield got
        finally:
            if got:
                try:
                    conn.execute(
                        text("SELECT pg_advisory_unlock" + _LOCK_ARGS), {"k": ADVISORY_LOCK_CLASS}
                    )
                    conn.commit()
                except SQLAlchemyError as exc:  # the session died, and its lock with it
                    log.warning("could not release the poll lock: %s", first_db_line(exc))
    finally:
        conn.close()
