"""Writing the alert log: decisions, their pending deliveries, claims and outcomes.

A decision is inserted once per (budget, period, kind, threshold): the unique
constraints, not the code, decide which of two concurrent checks records it. A
delivery is claimed by an atomic UPDATE with a lease before it is sent, and released
with its outcome afterwards. What is held is read through `store.read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine

from ledger.store.errors import in_transaction
from ledger.store.ledger import insert_ignore
from ledger.store.read import delivery_attempts
from ledger.store.tables import AlertDecision, AlertDelivery, core

_decisions = core(AlertDecision)
_deliveries = core(AlertDelivery)


@dataclass(frozen=True)
class Decision:
    """A crossed threshold as recorded: figures at decision time, never revised."""

    budget: str
    period: str
    kind: str
    threshold: str  # percent, exact decimal text
    idempotency_key: str
    amount_pico: int
    spend_pico: int
    forecast_pico: int | None
    scope: str  # JSON
    decided_at: int
    detail: str | None = None  # JSON, anomalies only: baseline and drivers


def record_decision(conn: Connection, decision: Decision, channels: Sequence[str]) -> bool:
    """Insert a decision and one pending delivery per channel; False when already recorded."""
    # One row, RETURNING: a row comes back only when this check inserted the decision.
    # No conflict target: the idempotency key is unique too, and a concurrent check
    # inserting the same decision may trip either constraint first (PostgreSQL).
    decision_id = conn.execute(
        _insert(conn)(_decisions)
        .values(asdict(decision))
        .on_conflict_do_nothing()
        .returning(_decisions.c.id)
    ).scalar_one_or_none()
    if decision_id is None:
        return False
    insert_ignore(
        conn,
        _deliveries,
        [
            {"decision_id": decision_id, "channel": name, "status": "pending", "attempts": 0}
            for name in channels
        ],
        ["decision_id", "channel"],
    )
    return True


def claim_delivery(engine: Engine, delivery_id: int, claimer: str, now: int, lease: int) -> bool:
    """Claim a pending delivery unless another checker holds an unexpired claim on it."""

    def claim(conn: Connection) -> bool:
        claimed = conn.execute(
            update(_deliveries)
            .where(
                _deliveries.c.id == delivery_id,
                _deliveries.c.status == "pending",
                (_deliveries.c.claimed_at.is_(None)) | (_deliveries.c.claimed_at < now - lease),
            )
            .values(claimed_by=claimer, claimed_at=now)
        ).rowcount
        return claimed == 1

    return in_transaction(engine, claim, doing="claiming an alert delivery")


def finish_delivery(
    engine: Engine, delivery_id: int, claimer: str, now: int, error: str | None
) -> int:
    """Release a claim with its outcome (delivered, or the error); the attempts so far."""
    values: dict[str, Any] = {
        "attempts": _deliveries.c.attempts + 1,
        "last_attempt_at": now,
        "claimed_by": None,
        "claimed_at": None,
    }
    if error is None:
        values |= {"status": "delivered", "delivered_at": now, "last_error": None}
    else:
        values |= {"last_error": error}

    def finish(conn: Connection) -> int:
        conn.execute(
            update(_deliveries)
            .where(_deliveries.c.id == delivery_id, _deliveries.c.claimed_by == claimer)
            .values(**values)
        )
        return delivery_attempts(conn, delivery_id)

    return in_transaction(engine, finish, doing="recording an alert delivery")


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert
