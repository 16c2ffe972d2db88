"""The one rule for usage without a price, applied by every view of the ledger.

**Known cost is counted; the unknown part is flagged and listed.** A usage key held
without a price (the price book had none when it was recorded) contributes its tokens
but no cost; a training fee without a price likewise. Every total is the sum of the
known costs, so it is additive: the same for a month whether it is summed by model, by
day, by project, per FOCUS row, per reconciled day or per budget. Whatever holds
unpriced usage says so (`priced: false`, the models listed); an amount whose usage is
*wholly* unpriced is unknown (None, shown as n/a), never a misleading 0. Comparisons
(premium over the base model, a what-if difference) are stated only for models whose
usage in the period is priced on both sides, so they compare like with like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Cost:
    """What a set of usage keys or fees cost, as far as it is known.

    `known` is the pico-USD of the priced part; `unpriced` counts keys or fees held
    without a price; `items` counts all of them.
    """

    known: int = 0
    unpriced: int = 0
    items: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.known + other.known, self.unpriced + other.unpriced, self.items + other.items
        )

    @property
    def priced(self) -> bool:
        """True when nothing in the set lacks a price."""
        return self.unpriced == 0

    @property
    def amount(self) -> int | None:
        """The amount to show: the known cost, or None when every item is unpriced."""
        return None if self.unpriced and self.unpriced >= self.items else self.known


def total(costs: Iterable[Cost]) -> Cost:
    """The sum of costs (the empty sum is a known zero)."""
    result = Cost()
    for cost in costs:
        result = result + cost
    return result


def comparable(cost: Cost, base: Cost) -> bool:
    """Whether a fine-tuned cost and its base-model cost may be compared: both priced."""
    return cost.priced and base.priced


@dataclass(frozen=True)
class DayCost:
    """What one model cost in one project (and team, when teams were allocated) on one
    UTC day: usage and training fees."""

    model: str
    project: str
    day: date
    cost: Cost
    team: str = ""


def by_day(
    rows: Iterable[DayCost], accept: Callable[[DayCost], bool] = lambda _: True
) -> dict[date, int]:
    """Known cost per day over the rows `accept` keeps (budgets, forecasts)."""
    totals: dict[date, int] = {}
    for row in rows:
        if accept(row):
            totals[row.day] = totals.get(row.day, 0) + row.cost.known
    return totals


def first_day(
    rows: Iterable[DayCost], accept: Callable[[DayCost], bool] = lambda _: True
) -> date | None:
    """The first day with usage or fees among the rows `accept` keeps."""
    return min((r.day for r in rows if accept(r)), default=None)
