"""What-if repricing: the month's tokens priced as if they had run on another model.

Each (model, UTC day, batch) group of the month is re-priced at the target's prices in
force that day, batch discount kept, and compared with what the ledger priced. The
question it answers: would a bigger base model, or a different fine-tune, have been
cheaper for the same traffic?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.errors import PricingError
from ledger.period import SECONDS_PER_DAY, Month, day_of
from ledger.pricebook import PriceBook
from ledger.reports.monthly import money_text, percent_text
from ledger.store.tables import UsageEntry, core

COLUMNS = (
    "model",
    "priced",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "actual_cost",
    "whatif_cost",
    "difference",
    "difference_pct",
)

_usage = core(UsageEntry)


@dataclass
class _Row:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    actual: int | None = 0
    whatif: int | None = 0
    missing_days: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class WhatIf:
    month: Month
    target: str
    target_base_model: str
    currency: str
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    unpriced_models: list[str]
    target_unpriced_days: list[str]

    def document(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "target": self.target,
            "target_base_model": self.target_base_model,
            "currency": self.currency,
            "unpriced_models": self.unpriced_models,
            "target_unpriced_days": self.target_unpriced_days,
            "rows": self.rows,
            "totals": self.totals,
        }


def whatif_report(conn: Connection, book: PriceBook, month: Month, target: str) -> WhatIf:
    """Actual cost against the target's cost for every model used in `month`."""
    resolved = book.resolve(target)
    if resolved.spec is None or not (
        resolved.spec.fine_tuned_prices if resolved.fine_tuned else resolved.spec.prices
    ):
        raise PricingError(f"the price book has no price for {target!r}")
    day = (_usage.c.bucket_start // SECONDS_PER_DAY).label("day")
    query = (
        select(
            _usage.c.model,
            day,
            _usage.c.batch,
            func.sum(_usage.c.requests),
            func.sum(_usage.c.input_tokens),
            func.sum(_usage.c.cached_tokens),
            func.sum(_usage.c.output_tokens),
            func.sum(_usage.c.cost_pico),
            func.sum(_usage.c.unpriced),  # above 0 while a key is held unpriced
        )
        .where(_usage.c.bucket_start >= month.start, _usage.c.bucket_start < month.end)
        .group_by(_usage.c.model, day, _usage.c.batch)
    )
    rows: dict[str, _Row] = {}
    unpriced: set[str] = set()
    for model, day_n, batch, req, inp, cached, out, cost, nulls in conn.execute(query):
        row = rows.setdefault(model, _Row())
        row.requests += int(req)
        row.input_tokens += int(inp)
        row.cached_tokens += int(cached)
        row.output_tokens += int(out)
        if nulls:
            unpriced.add(model)
        row.actual = None if nulls or row.actual is None else row.actual + int(cost or 0)
        on = day_of(int(day_n))
        price = book.price_at(target, on)
        if price is None:
            row.missing_days.add(on.isoformat())
            row.whatif = None
        elif row.whatif is not None:
            rates = book.rates(price, batch=bool(batch))
            row.whatif += rates.cost(int(inp), int(cached), int(out))
    out_rows = []
    total_actual = total_whatif = 0
    missing: set[str] = set()
    totals_counts = [0, 0, 0, 0]
    for model in sorted(rows):
        r = rows[model]
        missing |= r.missing_days
        diff = None if r.actual is None or r.whatif is None else r.whatif - r.actual
        if diff is not None:
            total_actual += r.actual or 0
            total_whatif += r.whatif or 0
        for i, v in enumerate((r.requests, r.input_tokens, r.cached_tokens, r.output_tokens)):
            totals_counts[i] += v
        out_rows.append(
            {
                "model": model,
                "priced": r.actual is not None,
                "requests": r.requests,
                "input_tokens": r.input_tokens,
                "cached_input_tokens": r.cached_tokens,
                "output_tokens": r.output_tokens,
                "actual_cost": money_text(r.actual),
                "whatif_cost": money_text(r.whatif),
                "difference": money_text(diff),
                "difference_pct": percent_text(diff, r.actual),
            }
        )
    total_diff = total_whatif - total_actual
    totals = {
        "requests": totals_counts[0],
        "input_tokens": totals_counts[1],
        "cached_input_tokens": totals_counts[2],
        "output_tokens": totals_counts[3],
        "actual_cost": money_text(total_actual),
        "whatif_cost": money_text(total_whatif),
        "difference": money_text(total_diff),
        "difference_pct": percent_text(total_diff, total_actual),
    }
    return WhatIf(
        month=month,
        target=target,
        target_base_model=resolved.base_model,
        currency=book.currency,
        rows=out_rows,
        totals=totals,
        unpriced_models=sorted(unpriced),
        target_unpriced_days=sorted(missing),
    )
