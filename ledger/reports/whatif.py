"""What-if repricing: the month's tokens priced as if they had run on another model.

Each (model, UTC day, batch) group of the month is re-priced at the target's prices in
force that day, batch discount kept, and compared with what the ledger priced. The
question it answers: would a bigger base model, or a different fine-tune, have been
cheaper for the same traffic? The actual side follows `ledger.spend` (known cost
counted, so its total equals the monthly report's usage cost); the what-if cost and
the difference are totalled over models whose actual and what-if costs are both wholly
known, so the totals compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import PricingError
from ledger.period import Month
from ledger.pricebook import PriceBook, unknown_model
from ledger.spend import Cost
from ledger.store.read import UsageRow

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
MONEY_FIELDS = ("actual_cost", "whatif_cost", "difference")


@dataclass
class _Model:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    actual: Cost = field(default_factory=Cost)
    whatif: int = 0
    missing_days: set[str] = field(default_factory=set)

    @property
    def comparable(self) -> bool:
        return self.actual.priced and not self.missing_days


@dataclass(frozen=True)
class WhatIf:
    month: Month
    target: str
    target_base_model: str
    currency: str
    rows: list[dict[str, Any]]  # COLUMNS; money as pico-USD, difference_pct as (part, whole)
    totals: dict[str, Any]
    unpriced_models: list[str]
    target_unpriced_days: list[str]


def whatif_report(book: PriceBook, month: Month, target: str, usage: Sequence[UsageRow]) -> WhatIf:
    """Actual cost against the target's cost for every model used in `month`, from
    usage rows at the (model, day, batch) grain."""
    resolved = book.resolve(target)
    if resolved.spec is None:
        raise unknown_model(book, target)
    if not (resolved.spec.fine_tuned_prices if resolved.fine_tuned else resolved.spec.prices):
        raise PricingError(f"the price book has no price for {target!r}")
    models: dict[str, _Model] = {}
    for row in usage:
        assert row.day is not None and row.batch is not None
        m = models.setdefault(row.model, _Model())
        m.requests += row.requests
        m.input_tokens += row.input_tokens
        m.cached_tokens += row.cached_tokens
        m.output_tokens += row.output_tokens
        m.actual += row.cost
        price = book.price_at(target, row.day)
        if price is None:
            m.missing_days.add(row.day.isoformat())
        else:
            rates = book.rates(price, batch=row.batch)
            m.whatif += rates.cost(row.input_tokens, row.cached_tokens, row.output_tokens)
    rows = []
    totals = _Model()
    missing: set[str] = set()
    compared_actual = compared_whatif = 0
    for name in sorted(models):
        m = models[name]
        diff = m.whatif - m.actual.known if m.comparable else None
        if m.comparable:
            compared_actual += m.actual.known
            compared_whatif += m.whatif
        totals.requests += m.requests
        totals.input_tokens += m.input_tokens
        totals.cached_tokens += m.cached_tokens
        totals.output_tokens += m.output_tokens
        totals.actual += m.actual
        missing |= m.missing_days
        rows.append(
            {
                "model": name,
                "priced": m.actual.priced,
                **_numbers(m, None if m.missing_days else m.whatif, diff),
            }
        )
    total_diff = compared_whatif - compared_actual
    return WhatIf(
        month=month,
        target=target,
        target_base_model=resolved.base_model,
        currency=book.currency,
        rows=rows,
        totals={
            **_numbers(totals, compared_whatif, total_diff),
            "actual_cost": totals.actual.known,  # a total is always the known sum
            "difference_pct": (total_diff, compared_actual) if compared_actual else None,
        },
        unpriced_models=sorted(n for n, m in models.items() if not m.actual.priced),
        target_unpriced_days=sorted(missing),
    )


def _numbers(m: _Model, whatif: int | None, diff: int | None) -> dict[str, Any]:
    return {
        "requests": m.requests,
        "input_tokens": m.input_tokens,
        "cached_input_tokens": m.cached_tokens,
        "output_tokens": m.output_tokens,
        "actual_cost": m.actual.amount,
        "whatif_cost": whatif,
        "difference": diff,
        "difference_pct": None if diff is None or not m.actual.known else (diff, m.actual.known),
    }
