"""Spend read from the ledger: usage cost and training fees per model and UTC day.

Usage counts on the day its bucket starts; a training fee on the day its job finished.
Sums are integer pico-USD computed by the database; model glob patterns are applied in
Python to the few (model, day) groups, so the rule is exactly fnmatch's on every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import BigInteger, case, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ledger.store.tables import TrainingFee, UsageEntry, core

_usage = core(UsageEntry)
_fees = core(TrainingFee)
_EPOCH = date(1970, 1, 1)
_DAY = literal_column("86400", BigInteger)


@dataclass(frozen=True)
class DaySpend:
    """Spend of one model on one UTC day; `unpriced` counts usage keys held unpriced and
    training fees without a price."""

    model: str
    day: date
    cost: int
    unpriced: int


def daily_spend(
    conn: Connection, start_ts: int, end_ts: int, projects: Sequence[str] = ()
) -> list[DaySpend]:
    """Usage and training-fee spend per (model, day) in [start_ts, end_ts)."""
    rows: dict[tuple[str, int], list[int]] = {}
    # A usage key is unpriced while its flags sum above 0; a training fee, with no cost.
    fee_unpriced: ColumnElement[Any] = case((_fees.c.cost_pico.is_(None), 1), else_=0)
    for table, time_col, project_col, unpriced_col in (
        (_usage, _usage.c.bucket_start, _usage.c.project_id, _usage.c.unpriced),
        (_fees, _fees.c.finished_at, _fees.c.project, fee_unpriced),
    ):
        day = time_col // _DAY
        query = (
            select(
                table.c.model,
                day,
                func.coalesce(func.sum(table.c.cost_pico), 0),
                func.sum(unpriced_col),
            )
            .where(time_col >= start_ts, time_col < end_ts)
            .group_by(table.c.model, day)
        )
        if projects:
            query = query.where(project_col.in_(list(projects)))
        for model, day_index, cost, unpriced in conn.execute(query):
            held = rows.setdefault((model, int(day_index)), [0, 0])
            held[0] += int(cost)
            held[1] += int(unpriced or 0)
    return [
        DaySpend(model, _EPOCH + timedelta(days=index), cost, unpriced)
        for (model, index), (cost, unpriced) in sorted(rows.items())
    ]


def by_day(rows: Sequence[DaySpend], model_filter: Callable[[str], bool]) -> dict[date, int]:
    """Daily totals over the models the filter accepts."""
    totals: dict[date, int] = {}
    for row in rows:
        if model_filter(row.model):
            totals[row.day] = totals.get(row.day, 0) + row.cost
    return totals


def first_day(rows: Sequence[DaySpend], model_filter: Callable[[str], bool]) -> date | None:
    days = [r.day for r in rows if model_filter(r.model)]
    return min(days) if days else None
