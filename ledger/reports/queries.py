"""The report's SQL: integer sums grouped by model and one more dimension, over a time range.

Usage is filtered on `bucket_start` (served by ix_usage_entries_bucket_model), training
fees on `finished_at` (indexed). Rows are grouped in the database, so a month of a million
entries comes back as a few hundred tuples; no ORM object is built per entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Table, case, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ledger.period import SECONDS_PER_DAY
from ledger.store.tables import TrainingFee, UsageEntry, core

Dimension = Literal["none", "project", "day", "batch"]

_usage = core(UsageEntry)
_fees = core(TrainingFee)


@dataclass(frozen=True)
class UsageSums:
    """Summed entries of one (model, dimension) group.

    The cost is None while a key of the group is held unpriced (its entries' unpriced
    flags sum above 0); the base cost likewise, by the base_unpriced flags.
    """

    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_pico: int | None
    base_cost_pico: int | None


@dataclass(frozen=True)
class FeeSums:
    trained_tokens: int
    cost_pico: int | None


def _nulls(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.sum(case((column.is_(None), 1), else_=0))


def _dimension(table: Table, time_column: str, dim: Dimension) -> ColumnElement[Any]:
    if dim == "project":
        return table.c.project_id if table is _usage else table.c.project
    if dim == "day":
        return table.c[time_column] // SECONDS_PER_DAY
    if dim == "batch" and table is _usage:
        return table.c.batch
    return literal("")


def usage_sums(
    conn: Connection, start: int, end: int, dim: Dimension = "none"
) -> dict[tuple[str, Any], UsageSums]:
    """Sums per (model, dimension value) of usage whose bucket starts in [start, end)."""
    key = _dimension(_usage, "bucket_start", dim).label("dim")
    query = (
        select(
            _usage.c.model,
            key,
            func.sum(_usage.c.requests),
            func.sum(_usage.c.input_tokens),
            func.sum(_usage.c.cached_tokens),
            func.sum(_usage.c.output_tokens),
            func.sum(_usage.c.cost_pico),
            func.sum(_usage.c.base_cost_pico),
            func.sum(_usage.c.unpriced),
            func.sum(_usage.c.base_unpriced),
        )
        .where(_usage.c.bucket_start >= start, _usage.c.bucket_start < end)
        .group_by(_usage.c.model, key)
    )
    result: dict[tuple[str, Any], UsageSums] = {}
    for model, value, req, inp, cached, out, cost, base, unpriced, base_unpriced in conn.execute(
        query
    ):
        result[(model, _plain(value))] = UsageSums(
            int(req),
            int(inp),
            int(cached),
            int(out),
            None if unpriced else int(cost or 0),
            None if base_unpriced else int(base or 0),
        )
    return result


def fee_sums(
    conn: Connection, start: int, end: int, dim: Dimension = "none"
) -> dict[tuple[str, Any], FeeSums]:
    """Training fees per (fine-tuned model, dimension value) of jobs finished in [start, end)."""
    key = _dimension(_fees, "finished_at", dim).label("dim")
    query = (
        select(
            _fees.c.model,
            key,
            func.sum(_fees.c.trained_tokens),
            func.sum(_fees.c.cost_pico),
            _nulls(_fees.c.cost_pico),
        )
        .where(_fees.c.finished_at >= start, _fees.c.finished_at < end)
        .group_by(_fees.c.model, key)
    )
    return {
        (model, _plain(value)): FeeSums(int(tokens), None if nulls else int(cost or 0))
        for model, value, tokens, cost, nulls in conn.execute(query)
    }


def _plain(value: Any) -> Any:
    """Dimension values as Python ints/bools/strs whatever the driver returned."""
    if isinstance(value, bool | str) or value is None:
        return value
    return int(value)
