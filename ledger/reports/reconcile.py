"""Reconciliation: the ledger's computed cost per UTC day against OpenAI's billed costs.

A pure function over the read model's rows. Computed = the known cost of the day's
usage plus training fees of jobs that finished that day (`ledger.spend`: unpriced usage
is named as a likely cause, never guessed). Billed = the sum of the day's Costs API rows
(exact decimals).
A day whose variance exceeds the tolerance is flagged with the likely cause, judged
from the direction of the difference and what the ledger knows about the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.errors import PricingError
from ledger.money import EXACT, from_pico
from ledger.period import Month, utc_date
from ledger.store.read import BilledRow, FeeRow, UsageRow

DEFAULT_TOLERANCE_PCT = Decimal(2)
COLUMNS = (
    "day",
    "computed_cost",
    "billed_cost",
    "variance",
    "variance_pct",
    "flagged",
    "likely_cause",
)
CAUSE_NOT_POLLED = "no billed rows: the Costs API has not been polled for this day"
CAUSE_BILLED_LOW = "billed below computed: a promotion or discount, or a stale (higher) price"
CAUSE_BILLED_HIGH = "billed above computed: usage missing from the ledger, or an unpriced model"


@dataclass(frozen=True)
class Reconciliation:
    """Per day: computed and billed amounts (Decimal USD), variance, flag and cause."""

    month: Month
    currency: str
    tolerance_pct: Decimal
    days: list[dict[str, Any]]
    totals: dict[str, Any]


def _computed_by_day(
    usage: Sequence[UsageRow], fees: Sequence[FeeRow]
) -> tuple[dict[date, int], dict[date, set[str]]]:
    """Known cost per day, and the models whose usage that day had no price."""
    computed: dict[date, int] = {}
    unpriced: dict[date, set[str]] = {}
    rows: list[UsageRow | FeeRow] = [*usage, *fees]
    for row in rows:
        assert row.day is not None
        computed[row.day] = computed.get(row.day, 0) + row.cost.known
        if not row.cost.priced:
            unpriced.setdefault(row.day, set()).add(row.model)
    return computed, unpriced


def _billed_by_day(billed: Sequence[BilledRow], currency: str) -> dict[date, Decimal]:
    totals: dict[date, Decimal] = {}
    for row in billed:
        if row.currency.upper() != currency.upper():
            raise PricingError(
                f"billed cost in {row.currency.upper()} cannot be compared with ledger "
                f"amounts in {currency.upper()}; ftledger does not convert currencies"
            )
        totals[row.day] = EXACT.add(totals.get(row.day, Decimal(0)), row.value)
    return totals


def _cause(computed: Decimal, billed: Decimal | None, unpriced: set[str]) -> str:
    if billed is None:
        return CAUSE_NOT_POLLED
    if billed < computed:
        return CAUSE_BILLED_LOW
    if unpriced:
        return f"billed above computed: unpriced model(s) {', '.join(sorted(unpriced))}"
    return CAUSE_BILLED_HIGH


def reconcile(
    month: Month,
    usage: Sequence[UsageRow],
    fees: Sequence[FeeRow],
    billed_rows: Sequence[BilledRow],
    *,
    currency: str,
    tolerance_pct: Decimal,
    now: int,
) -> Reconciliation:
    """Each day of `month` up to today (UTC): computed, billed, variance, flag and cause."""
    computed, unpriced = _computed_by_day(usage, fees)
    billed = _billed_by_day(billed_rows, currency)
    today = utc_date(now)
    days: list[dict[str, Any]] = []
    total_computed, total_billed, flagged = Decimal(0), Decimal(0), 0
    for day in (d for d in month.days() if d <= today):
        mine = from_pico(computed.get(day, 0))
        theirs = billed.get(day)
        total_computed = EXACT.add(total_computed, mine)
        total_billed = EXACT.add(total_billed, theirs or 0)
        variance = None if theirs is None else EXACT.subtract(theirs, mine)
        flag = _beyond(mine, variance, tolerance_pct) or (theirs is None and mine != 0)
        flagged += flag
        days.append(
            {
                "day": day.isoformat(),
                "computed_cost": mine,
                "billed_cost": theirs,
                "variance": variance,
                "variance_pct": _pct(variance, mine),
                "flagged": flag,
                "likely_cause": _cause(mine, theirs, unpriced.get(day, set())) if flag else "",
            }
        )
    variance_total = EXACT.subtract(total_billed, total_computed)
    totals = {
        "computed_cost": total_computed,
        "billed_cost": total_billed,
        "variance": variance_total,
        "variance_pct": _pct(variance_total, total_computed),
        "flagged_days": flagged,
    }
    return Reconciliation(month, currency, tolerance_pct, days, totals)


def _beyond(computed: Decimal, variance: Decimal | None, tolerance_pct: Decimal) -> bool:
    if variance is None:
        return False
    if computed == 0:
        return variance != 0
    return EXACT.multiply(EXACT.abs(variance), 100) > EXACT.multiply(
        EXACT.abs(computed), tolerance_pct
    )


def _pct(variance: Decimal | None, computed: Decimal) -> tuple[Decimal, Decimal] | None:
    """The variance as a share of computed, kept exact for the renderer."""
    if variance is None or computed == 0:
        return None
    return (variance, computed)
