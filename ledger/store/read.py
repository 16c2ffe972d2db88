"""The read model: the only code that SELECTs from the ledger's tables.

Every view of the ledger (reports, FOCUS, reconcile, budgets, forecast, the HTTP API,
metrics) reads through the functions here. They return typed rows at a declared grain
with integer money (pico-USD) and the unpriced counts, never text; what a view does
with usage that has no price is decided once, in `ledger.spend`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, case, column, func, literal_column, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import TableClause

from ledger.domain import UsageKey
from ledger.period import SECONDS_PER_DAY, day_of
from ledger.spend import Cost

if TYPE_CHECKING:
    from sqlalchemy import Table

# The ledger tables as bare Core clauses (names only; ledger.store.tables declares them):
# a report reads through these without importing the ORM, whose import alone costs a
# command's start-up more than its query. A test holds the names to the models.
USAGE_KEY_COLUMNS = UsageKey._fields
_TEXT = {"source", "model", "project_id", "api_key_id", "user_id", "service_tier", "job_id"}
_TEXT |= {"base_model", "method", "project", "line_item", "currency", "amount"}
_TEXT |= {"budget", "period", "kind", "threshold", "status", "price_version"}


def _table(name: str, *columns: str) -> TableClause:
    """A bare table clause: integers typed as BigInteger (integer division, sums), batch
    as Boolean, text untyped."""
    types: dict[str, Any] = {"batch": Boolean}
    return table(
        name, *(column(c, None if c in _TEXT else types.get(c, BigInteger)) for c in columns)
    )


_usage = _table(
    "usage_entries",
    *USAGE_KEY_COLUMNS,
    *("revision", "requests", "input_tokens", "cached_tokens", "output_tokens"),
    *("cost_pico", "base_cost_pico", "unpriced", "base_unpriced", "price_version"),
)
_fees = _table(
    "training_fees",
    *("job_id", "model", "base_model", "method", "project", "finished_at"),
    *("trained_tokens", "cost_pico"),
)
_billed = _table("billed_costs", "bucket_start", "project_id", "line_item", "currency", "amount")
_watermarks = _table("watermarks", "last_success_at")
_decisions = _table("alert_decisions", "id", "budget", "period", "kind", "threshold")
_deliveries = _table("alert_deliveries", "id", "decision_id", "status", "attempts")
TABLE_CLAUSES = (_usage, _fees, _billed, _watermarks, _decisions, _deliveries)


def _alert_tables() -> tuple[Table, Table]:
    """The alert log's tables (typed: amounts are PicoAmount), for the alert reads only."""
    from ledger.store.tables import AlertDecision, AlertDelivery, core

    return core(AlertDecision), core(AlertDelivery)


# --- usage and training fees ---------------------------------------------------------

USAGE_GRAINS = ("day", "project", "batch", "tier", "api_key")
# Money is summed as two exact integer sums, amount // 10^6 and amount % 10^6 (SQL's
# truncating division keeps hi * 10^6 + lo == amount, negatives too), so a sum stays
# exact on SQLite's 64-bit SUM up to $9.2 * 10^12, not $9.2M; PostgreSQL sums bigint as
# NUMERIC anyway.
_SPLIT = 1_000_000


@dataclass(frozen=True)
class UsageRow:
    """Summed usage of one group at the requested grain; dimensions not requested are None.

    Grains: day, project, batch, service tier, API key id (teams are allocated from
    project, model and key by `ledger.allocation`, outside the read model).

    Usage counts on the UTC day its bucket starts.
    """

    model: str
    day: date | None
    project: str | None
    batch: bool | None
    tier: str | None
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost: Cost
    base_cost: Cost
    api_key: str | None = None  # the API key id ("" when ungrouped) at the api_key grain


@dataclass(frozen=True)
class FeeRow:
    """One fine-tuning job's training fee, on the UTC day and in the project it finished."""

    job_id: str
    model: str  # the fine-tuned model
    base_model: str
    method: str
    project: str
    finished_at: int
    trained_tokens: int
    cost: Cost

    @property
    def day(self) -> date:
        return day_of(self.finished_at // SECONDS_PER_DAY)


def _exact_sum(column: ColumnElement[Any], name: str) -> list[ColumnElement[Any]]:
    sql = f"{_usage.name}.{column.name}"
    return [
        func.coalesce(func.sum(literal_column(f"{sql} / {_SPLIT}")), 0).label(f"{name}_hi"),
        func.coalesce(func.sum(literal_column(f"{sql} % {_SPLIT}")), 0).label(f"{name}_lo"),
    ]


def usage_rows(
    conn: Connection, start: int, end: int, grain: Collection[str] = ()
) -> list[UsageRow]:
    """Usage whose bucket starts in [start, end), summed per model and the `grain`
    dimensions (any of USAGE_GRAINS), ordered by them."""
    unknown = set(grain) - set(USAGE_GRAINS)
    if unknown:
        raise ValueError(f"no usage grain {sorted(unknown)}; choose from {USAGE_GRAINS}")
    dims: dict[str, ColumnElement[Any]] = {
        "day": (_usage.c.bucket_start // SECONDS_PER_DAY).label("day"),
        "project": _usage.c.project_id.label("project"),
        "batch": _usage.c.batch.label("batch"),
        "tier": _usage.c.service_tier.label("tier"),
        "api_key": _usage.c.api_key_id.label("api_key"),
    }
    keys = [_usage.c.model, *(dims[g] for g in USAGE_GRAINS if g in grain)]
    query = (
        select(
            *keys,
            func.sum(_usage.c.requests).label("requests"),
            func.sum(_usage.c.input_tokens).label("input_tokens"),
            func.sum(_usage.c.cached_tokens).label("cached_tokens"),
            func.sum(_usage.c.output_tokens).label("output_tokens"),
            *_exact_sum(_usage.c.cost_pico, "cost"),
            *_exact_sum(_usage.c.base_cost_pico, "base"),
            func.sum(_usage.c.unpriced).label("unpriced"),
            func.sum(_usage.c.base_unpriced).label("base_unpriced"),
            # Every key has exactly one first revision: this counts the group's keys.
            func.sum(case((_usage.c.revision == 1, 1), else_=0)).label("key_count"),
        )
        .where(_usage.c.bucket_start >= start, _usage.c.bucket_start < end)
        .group_by(*keys)
        .order_by(*keys)
    )
    # Positional reads, each day built once: a month at (day, project) is ~10^5 rows,
    # and per-row attribute lookups would cost more than the query.
    at = {g: 1 + i for i, g in enumerate(g for g in USAGE_GRAINS if g in grain)}
    d, p, b, t, k = (at.get(g) for g in USAGE_GRAINS)
    width = len(keys)
    days: dict[int, date] = {}
    rows = []
    for r in conn.execute(query):
        req, inp, cached, out, c_hi, c_lo, b_hi, b_lo, unpriced, b_unpriced, count = r[width:]
        day = None
        if d is not None:
            number = int(r[d])
            day = days.get(number) or days.setdefault(number, day_of(number))
        keys_count = int(count)
        rows.append(
            UsageRow(
                model=r[0],
                day=day,
                project=None if p is None else r[p],
                batch=None if b is None else bool(r[b]),
                tier=None if t is None else r[t],
                requests=int(req),
                input_tokens=int(inp),
                cached_tokens=int(cached),
                output_tokens=int(out),
                cost=Cost(int(c_hi) * _SPLIT + int(c_lo), int(unpriced), keys_count),
                base_cost=Cost(int(b_hi) * _SPLIT + int(b_lo), int(b_unpriced), keys_count),
                api_key=None if k is None else r[k],
            )
        )
    return rows


def fee_rows(conn: Connection, start: int, end: int) -> list[FeeRow]:
    """Training fees of jobs that finished in [start, end), in finishing order.

    A job's fee is the sum of its entries (the first and its corrections); it is
    unpriced while none of them has a cost.
    """
    c = _fees.c
    finished = func.min(c.finished_at).label("finished_at")
    query = (
        select(
            c.job_id,
            func.min(c.model).label("model"),
            func.min(c.base_model).label("base_model"),
            func.min(c.method).label("method"),
            func.min(c.project).label("project"),
            finished,
            func.sum(c.trained_tokens).label("trained_tokens"),
            func.sum(c.cost_pico).label("cost_pico"),
            func.count(c.cost_pico).label("priced"),
        )
        .where(c.finished_at >= start, c.finished_at < end)
        .group_by(c.job_id)
        .order_by(finished, c.job_id)
    )
    return [
        FeeRow(
            job_id=r.job_id,
            model=r.model,
            base_model=r.base_model,
            method=r.method,
            project=r.project,
            finished_at=int(r.finished_at),
            trained_tokens=int(r.trained_tokens),
            cost=Cost(int(r.cost_pico), 0, 1) if r.priced else Cost(0, 1, 1),
        )
        for r in conn.execute(query)
    ]


def data_start(conn: Connection) -> int | None:
    """The earliest instant the ledger holds usage or a fee for (None: it holds nothing)."""
    firsts = [
        conn.execute(select(func.min(_usage.c.bucket_start))).scalar(),
        conn.execute(select(func.min(_fees.c.finished_at))).scalar(),
    ]
    known = [int(v) for v in firsts if v is not None]
    return min(known) if known else None


def unpriced_keys(conn: Connection, start: int | None, end: int | None) -> list[UsageKey]:
    """Keys whose bucket starts in [start, end) held unpriced (cost or base-model cost).

    Only flagged entries (unpriced != 0) can move the sum, so the rest are skipped
    before grouping.
    """
    columns = [_usage.c[name] for name in USAGE_KEY_COLUMNS]
    query = (
        select(*columns)
        .where((_usage.c.unpriced != 0) | (_usage.c.base_unpriced != 0))
        .group_by(*columns)
        .having((func.sum(_usage.c.unpriced) > 0) | (func.sum(_usage.c.base_unpriced) > 0))
    )
    return _keys_in(conn, query, start, end)


def stale_keys(
    conn: Connection, version: str, start: int | None, end: int | None
) -> list[UsageKey]:
    """Keys whose bucket starts in [start, end) with an entry posted under a price book
    other than `version`: the only keys whose held cost may differ from that book's."""
    columns = [_usage.c[name] for name in USAGE_KEY_COLUMNS]
    query = select(*columns).where(_usage.c.price_version != version).distinct()
    return _keys_in(conn, query, start, end)


def _keys_in(
    conn: Connection, query: Select[Any], start: int | None, end: int | None
) -> list[UsageKey]:
    """The usage keys `query` selects whose bucket starts in [start, end)."""
    if start is not None:
        query = query.where(_usage.c.bucket_start >= start)
    if end is not None:
        query = query.where(_usage.c.bucket_start < end)
    return [
        UsageKey(*(r[0], int(r[1]), int(r[2]), r[3], r[4], r[5], r[6], bool(r[7]), r[8]))
        for r in conn.execute(query)
    ]


# --- billed costs (OpenAI's Costs API) -----------------------------------------------


@dataclass(frozen=True)
class BilledRow:
    """One mirrored Costs API line: a day, project, line item and currency."""

    bucket_start: int
    project_id: str
    line_item: str
    currency: str
    amount: str  # the exact decimal text OpenAI sent (it may carry more than 12 decimals)

    @property
    def key(self) -> tuple[int, str, str, str]:
        return (self.bucket_start, self.project_id, self.line_item, self.currency)

    @property
    def day(self) -> date:
        return day_of(self.bucket_start // SECONDS_PER_DAY)

    @property
    def value(self) -> Decimal:
        return Decimal(self.amount)


def billed_rows(conn: Connection, start: int, end: int) -> list[BilledRow]:
    """The mirrored lines whose day starts in [start, end), in day order."""
    c = _billed.c
    query = (
        select(c.bucket_start, c.project_id, c.line_item, c.currency, c.amount)
        .where(c.bucket_start >= start, c.bucket_start < end)
        .order_by(c.bucket_start, c.project_id, c.line_item, c.currency)
    )
    return [BilledRow(int(r[0]), r[1], r[2], r[3], r[4]) for r in conn.execute(query)]


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
    detail: str | None = None  # JSON, anomalies only


def pending_deliveries(conn: Connection) -> list[PendingDelivery]:
    """Every pending delivery, oldest decision first (claimed ones included)."""
    decisions, deliveries = _alert_tables()
    d = decisions.c
    query = (
        select(
            deliveries.c.id.label("delivery_id"),
            deliveries.c.channel,
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
            d.detail,
        )
        .join(decisions, d.id == deliveries.c.decision_id)
        .where(deliveries.c.status == "pending")
        .order_by(d.id, deliveries.c.id)
    )
    return [PendingDelivery(**row._mapping) for row in conn.execute(query)]


def delivery_attempts(conn: Connection, delivery_id: int) -> int:
    """How often a delivery has been tried."""
    query = select(_deliveries.c.attempts).where(_deliveries.c.id == delivery_id)
    return int(conn.execute(query).scalar_one())


# --- training estimates --------------------------------------------------------------


# --- service face: data as of, alert deliveries ----------------------------------------


def last_poll_success(conn: Connection) -> int | None:
    """The newest successful poll of any source (None: never polled): "data as of"."""
    value = conn.execute(select(func.max(_watermarks.c.last_success_at))).scalar()
    return None if value is None else int(value)


def delivery_counts(conn: Connection) -> dict[str, int]:
    """Alert deliveries by status (delivered, pending, failed, ...) for /metrics."""
    query = select(_deliveries.c.status, func.count()).group_by(_deliveries.c.status)
    return {str(status): int(n) for status, n in conn.execute(query)}


# --- training estimates ------------------------------------------------------------


def estimate_job_rows(conn: Connection) -> list[Any]:
    """Every recorded estimate joined with each succeeded job that trained its file
    (the job's trained tokens and fee; None where no such job exists)."""
    from ledger.store.estimate_tables import TrainingEstimate
    from ledger.store.tables import FineTuningJob, TrainingFee

    est = TrainingEstimate.__table__.c
    job = FineTuningJob.__table__.c
    entries = TrainingFee.__table__.c
    # A job's fee is the sum of its entries; unpriced while none has a cost.
    fees = (
        select(
            entries.job_id,
            case((func.count(entries.cost_pico) > 0, func.sum(entries.cost_pico))).label(
                "cost_pico"
            ),
        )
        .group_by(entries.job_id)
        .subquery("fee")
    )
    fee = fees.c
    query = (
        select(
            est.id,
            est.file_name,
            est.model,
            est.openai_file_id,
            est.trained_tokens,
            est.cost_pico,
            job.id.label("job_id"),
            job.trained_tokens.label("actual_tokens"),
            fee.cost_pico.label("actual_cost"),
        )
        .select_from(
            TrainingEstimate.__table__.outerjoin(
                FineTuningJob.__table__,
                (job.training_file == est.openai_file_id)
                & (est.openai_file_id != "")
                & (job.status == "succeeded")
                & job.trained_tokens.is_not(None),
            ).outerjoin(fees, fee.job_id == job.id)
        )
        .order_by(est.id, job.id)
    )
    return list(conn.execute(query).all())
