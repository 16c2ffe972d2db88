"""The read model: the only code that SELECTs from the ledger's tables.

Every view of the ledger (reports, FOCUS, reconcile, budgets, forecast, the HTTP API,
metrics) reads through the functions here. They return typed rows at a declared grain
with integer money (pico-USD) and the unpriced counts, never text; what a view does
with usage that has no price is decided once, in `ledger.spend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ledger.store.tables import AlertDecision, AlertDelivery, BilledCost, core

_billed = core(BilledCost)
_decisions = core(AlertDecision)
_deliveries = core(AlertDelivery)

# --- usage and training fees ---------------------------------------------------------


# --- billed costs (OpenAI's Costs API) -----------------------------------------------


@dataclass(frozen=True)
class BilledLine:
    """One mirrored Costs API line: a day, project, line item and currency."""

    bucket_start: int
    project_id: str
    line_item: str
    currency: str
    amount: str  # the exact decimal text OpenAI sent

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.bucket_start, self.project_id, self.line_item, self.currency)


def billed_lines(conn: Connection, start: int, end: int) -> list[BilledLine]:
    """The mirrored lines whose day starts in [start, end)."""
    c = _billed.c
    query = select(c.bucket_start, c.project_id, c.line_item, c.currency, c.amount).where(
        c.bucket_start >= start, c.bucket_start < end
    )
    return [BilledLine(int(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(query)]


# --- alert log -----------------------------------------------------------------------


def alerted(conn: Connection, budget: str, period: str) -> tuple[tuple[str, Decimal, str], ...]:
    """(kind, threshold, delivered|pending) of the decisions recorded for a budget period.

    A decision with any delivery still pending is pending; one without channels counts
    as delivered (there was nothing to send).
    """
    query = (
        select(_decisions.c.kind, _decisions.c.threshold, _deliveries.c.status)
        .join(_deliveries, _deliveries.c.decision_id == _decisions.c.id, isouter=True)
        .where(_decisions.c.budget == budget, _decisions.c.period == period)
    )
    states: dict[tuple[str, Decimal], str] = {}
    for kind, threshold, status in conn.execute(query):
        key = (kind, Decimal(threshold))
        if states.get(key) != "pending":
            states[key] = status or "delivered"
    return tuple((k, t, s) for (k, t), s in sorted(states.items()))


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery not yet accepted by its channel, with the decision it announces."""

    delivery_id: int
    channel: str
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


def pending_deliveries(conn: Connection) -> list[PendingDelivery]:
    """Every pending delivery, oldest decision first (claimed ones included)."""
    d = _decisions.c
    query = (
        select(
            _deliveries.c.id.label("delivery_id"),
            _deliveries.c.channel,
            d.budget,
            d.period,
            d.kind,
            d.threshold,
            d.idempotency_key,
            d.amount_pico,
            d.spend_pico,
            d.forecast_pico,
            d.scope,
            d.decided_at,
        )
        .join(_decisions, d.id == _deliveries.c.decision_id)
        .where(_deliveries.c.status == "pending")
        .order_by(d.id, _deliveries.c.id)
    )
    return [PendingDelivery(**row._mapping) for row in conn.execute(query)]


def delivery_attempts(conn: Connection, delivery_id: int) -> int:
    """How often a delivery has been tried."""
    query = select(_deliveries.c.attempts).where(_deliveries.c.id == delivery_id)
    return int(conn.execute(query).scalar_one())


# --- training estimates --------------------------------------------------------------
