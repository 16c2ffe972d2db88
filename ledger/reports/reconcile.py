"""Reconciliation: the ledger's computed cost per UTC day against OpenAI's billed costs.

Computed = priced usage of the day plus training fees of jobs that finished that day.
Billed = the sum of the day's Costs API rows (exact decimal text, summed as Decimal).
A day whose variance exceeds the tolerance is flagged with the likely cause, judged
from the direction of the difference and what the ledger knows about the day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.errors import PricingError
from ledger.money import EXACT, display, from_pico
from ledger.period import SECONDS_PER_DAY, Month, day_of
from ledger.store.tables import BilledCost, TrainingFee, UsageEntry, core

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

_usage = core(UsageEntry)
_fees = core(TrainingFee)
_billed = core(BilledCost)


def amount_text(amount: Decimal | None) -> str | None:
    """Exact decimal text with at least six decimals (billed amounts may carry more)."""
    if amount is None:
        return None
    exponent = EXACT.normalize(amount).as_tuple().exponent
    places = max(6, -exponent) if isinstance(exponent, int) else 6
    return display(amount, places)


@dataclass(frozen=True)
class Reconciliation:
    month: Month
    currency: str
    tolerance_pct: Decimal
    days: list[dict[str, Any]]
    totals: dict[str, Any]

    def document(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "currency": self.currency,
            "tolerance_pct": str(self.tolerance_pct),
            "days": self.days,
            "totals": self.totals,
        }


def _computed_by_day(conn: Connection, month: Month) -> tuple[dict[int, int], dict[int, set[str]]]:
    """Known cost per day number, and the models whose usage that day had no price."""
    computed: dict[int, int] = {}
    unpriced: dict[int, set[str]] = {}
    day = (_usage.c.bucket_start // SECONDS_PER_DAY).label("day")
    usage = (
        select(
            day,
            _usage.c.model,
            func.sum(_usage.c.cost_pico),
            func.sum(_usage.c.unpriced),  # above 0 while a key is held unpriced
        )
        .where(_usage.c.bucket_start >= month.start, _usage.c.bucket_start < month.end)
        .group_by(day, _usage.c.model)
    )
    for day_n, model, cost, nulls in conn.execute(usage):
        computed[int(day_n)] = computed.get(int(day_n), 0) + int(cost or 0)
        if nulls:
            unpriced.setdefault(int(day_n), set()).add(model)
    fee_day = (_fees.c.finished_at // SECONDS_PER_DAY).label("day")
    fees = (
        select(fee_day, _fees.c.model, func.sum(_fees.c.cost_pico))
        .where(_fees.c.finished_at >= month.start, _fees.c.finished_at < month.end)
        .group_by(fee_day, _fees.c.model)
    )
    for day_n, _model, cost in conn.execute(fees):
        computed[int(day_n)] = computed.get(int(day_n), 0) + int(cost or 0)
    return computed, unpriced


def _billed_by_day(conn: Connection, month: Month, currency: str) -> dict[int, Decimal]:
    query = select(_billed.c.bucket_start, _billed.c.amount, _billed.c.currency).where(
        _billed.c.bucket_start >= month.start, _billed.c.bucket_start < month.end
    )
    billed: dict[int, Decimal] = {}
    for start, amount, row_currency in conn.execute(query):
        if row_currency.upper() != currency.upper():
            raise PricingError(
                f"billed cost in {row_currency.upper()} cannot be compared with ledger "
                f"amounts in {currency.upper()}; ftledger does not convert currencies"
            )
        day_n = int(start) // SECONDS_PER_DAY
        billed[day_n] = EXACT.add(billed.get(day_n, Decimal(0)), Decimal(amount))
    return billed


def _cause(computed: Decimal, billed: Decimal | None, unpriced: set[str]) -> str:
    if billed is None:
        return CAUSE_NOT_POLLED
    if billed < computed:
        return CAUSE_BILLED_LOW
    if unpriced:
        return f"billed above computed: unpriced model(s) {', '.join(sorted(unpriced))}"
    return CAUSE_BILLED_HIGH


def reconcile(
    conn: Connection,
    month: Month,
    *,
    currency: str = "USD",
    tolerance_pct: Decimal = DEFAULT_TOLERANCE_PCT,
    now: int | None = None,
) -> Reconciliation:
    """Each day of `month` up to today (UTC): computed, billed, variance, flag and cause."""
    computed, unpriced = _computed_by_day(conn, month)
    billed = _billed_by_day(conn, month, currency)
    today = (int(time.time()) if now is None else now) // SECONDS_PER_DAY
    first = month.start // SECONDS_PER_DAY
    last = min(month.end // SECONDS_PER_DAY - 1, today)
    days: list[dict[str, Any]] = []
    total_computed, total_billed, flagged = Decimal(0), Decimal(0), 0
    for day_n in range(first, last + 1):
        mine = from_pico(computed.get(day_n, 0))
        theirs = billed.get(day_n)
        total_computed = EXACT.add(total_computed, mine)
        total_billed = EXACT.add(total_billed, theirs or 0)
        variance = None if theirs is None else EXACT.subtract(theirs, mine)
        flag = _beyond(mine, variance, tolerance_pct) or (theirs is None and mine != 0)
        flagged += flag
        days.append(
            {
                "day": day_of(day_n).isoformat(),
                "computed_cost": amount_text(mine),
                "billed_cost": amount_text(theirs),
                "variance": amount_text(variance),
                "variance_pct": _pct(variance, mine),
                "flagged": flag,
                "likely_cause": _cause(mine, theirs, unpriced.get(day_n, set())) if flag else "",
            }
        )
    variance_total = EXACT.subtract(total_billed, total_computed)
    totals = {
        "computed_cost": amount_text(total_computed),
        "billed_cost": amount_text(total_billed),
        "variance": amount_text(variance_total),
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


def _pct(variance: Decimal | None, computed: Decimal) -> str | None:
    if variance is None or computed == 0:
        return None
    return display(variance * 100 / computed, 2)
