"""The billed-cost mirror: OpenAI's own Costs API figures, kept equal to what it reports.

Not ledger entries: a mirror, made equal per window to the latest reading (a line
OpenAI no longer reports is removed, a revised amount replaced). Amounts are the exact
decimal text OpenAI sent. What is held is read through `store.read`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ledger.domain import CostObservation
from ledger.errors import ConflictError
from ledger.store.ledger import insert_ignore
from ledger.store.read import billed_rows
from ledger.store.tables import BilledCost, core

CostKey = tuple[int, str, str, str]  # (bucket_start, project_id, line_item, currency)

_costs = core(BilledCost)


def mirror_costs(
    conn: Connection, lines: Mapping[CostKey, CostObservation], start: int, end: int, now: int
) -> int:
    """Make the mirror of [start, end) equal what OpenAI reported; returns rows changed."""
    held = {line.key: line.amount for line in billed_rows(conn, start, end)}
    changed = 0
    for key in held.keys() - lines.keys():  # OpenAI no longer reports it (e.g. revised to 0)
        conn.execute(delete(_costs).where(*_matches(key)))
        changed += 1
    for key, line in lines.items():
        text = decimal_text(line.amount)
        if held.get(key) == text:
            continue
        if key in held:
            conn.execute(
                update(_costs)
                .where(*_matches(key))
                .values(amount=text, bucket_end=line.bucket_end, observed_at=now)
            )
        else:
            inserted = insert_ignore(
                conn,
                _costs,
                [
                    {
                        "bucket_start": key[0],
                        "bucket_end": line.bucket_end,
                        "project_id": key[1],
                        "line_item": key[2],
                        "currency": key[3],
                        "amount": text,
                        "observed_at": now,
                    }
                ],
                ["bucket_start", "project_id", "line_item", "currency"],
            )
            if not inserted:  # a concurrent poller inserted it first: re-read and retry
                raise ConflictError("another poller mirrored the same costs at the same time")
        changed += 1
    return changed


def decimal_text(amount: Decimal) -> str:
    """The exact decimal as plain text (no exponent), as OpenAI sent it."""
    return format(amount, "f")


def _matches(key: CostKey) -> tuple[ColumnElement[bool], ...]:
    return (
        _costs.c.bucket_start == key[0],
        _costs.c.project_id == key[1],
        _costs.c.line_item == key[2],
        _costs.c.currency == key[3],
    )
