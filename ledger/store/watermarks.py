"""Watermarks: how far each source has been read, and how its polling is going.

A watermark only moves forward, and it moves in the same transaction as the window
it covers (the caller's connection). A failure is recorded in a transaction of its
own, and never raises: the database itself may be why the poll failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.store.errors import db_errors, first_db_line
from ledger.store.ledger import insert_ignore
from ledger.store.tables import Watermark, core

log = logging.getLogger("ledger.sync")

_watermarks = core(Watermark)


@dataclass(frozen=True)
class WatermarkState:
    source: str
    position: int | None = None
    last_success_at: int | None = None
    last_attempt_at: int | None = None
    last_error: str | None = None
    failing_since: int | None = None
    consecutive_failures: int = 0


def read_watermark(engine: Engine, source: str) -> WatermarkState:
    with db_errors("reading the watermark", engine.url), engine.connect() as conn:
        row = conn.execute(select(_watermarks).where(_watermarks.c.source == source)).first()
    return WatermarkState(**row._mapping) if row else WatermarkState(source)


def read_watermarks(engine: Engine) -> list[WatermarkState]:
    with db_errors("reading the watermarks", engine.url), engine.connect() as conn:
        rows = conn.execute(select(_watermarks).order_by(_watermarks.c.source)).all()
    return [WatermarkState(**row._mapping) for row in rows]


def advance(conn: Connection, source: str, position: int, now: int) -> None:
    """Move the watermark forward (never back) and clear its failure state."""
    _ensure(conn, source)
    conn.execute(
        update(_watermarks)
        .where(_watermarks.c.source == source)
        .values(last_success_at=now, last_attempt_at=now, last_error=None, failing_since=None)
        .values(consecutive_failures=0)
    )
    conn.execute(
        update(_watermarks)
        .where(
            _watermarks.c.source == source,
            or_(_watermarks.c.position.is_(None), _watermarks.c.position < position),
        )
        .values(position=position)
    )


def record_failure(engine: Engine, source: str, message: str, now: int) -> None:
    """Note a failed attempt; `failing_since` keeps the start of the failing streak."""
    try:
        with engine.begin() as conn:
            _ensure(conn, source)
            conn.execute(
                update(_watermarks)
                .where(_watermarks.c.source == source)
                .values(
                    last_attempt_at=now,
                    last_error=message[:1000],
                    consecutive_failures=_watermarks.c.consecutive_failures + 1,
                )
            )
            conn.execute(
                update(_watermarks)
                .where(_watermarks.c.source == source, _watermarks.c.failing_since.is_(None))
                .values(failing_since=now)
            )
    except SQLAlchemyError as exc:  # the database itself may be why the poll failed
        log.error("could not record the failure of %s: %s", source, first_db_line(exc))


def _ensure(conn: Connection, source: str) -> None:
    insert_ignore(conn, _watermarks, [{"source": source, "consecutive_failures": 0}], ["source"])
