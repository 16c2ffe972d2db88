"""Each view of the ledger, assembled: rows from the read model, then the pure report.

The CLI, the budget check and the HTTP face call these, so a view reads the same rows
whoever asks. Reports themselves know nothing of SQL; this module knows nothing of
how numbers are shown.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from ledger.allocation import Allocation
from ledger.period import SECONDS_PER_DAY, Month, Period, utc_date
from ledger.pricebook import PriceBook
from ledger.reports.monthly import GRAIN, MonthlyReport, Previous, monthly_report
from ledger.spend import DayCost, total
from ledger.store import read

if TYPE_CHECKING:
    from ledger.budgets import Budget
    from ledger.forecast import Forecast
    from ledger.reports.focus import Account, FocusExport
    from ledger.reports.reconcile import Reconciliation
    from ledger.reports.whatif import WhatIf


def monthly(
    conn: Connection,
    book: PriceBook,
    month: Month,
    by: str = "model",
    now: int | None = None,
    allocation: Allocation | None = None,
) -> MonthlyReport:
    """`ftledger report monthly`: the month grouped `by`, against the previous month
    (`by="team"`: by the teams of `allocation`, none given: all unallocated)."""
    usage = read.usage_rows(conn, month.start, month.end, GRAIN.get(by, ()))
    fees = read.fee_rows(conn, month.start, month.end)
    start = read.data_start(conn)
    return monthly_report(
        book,
        month,
        by,
        usage,
        fees,
        previous_month(conn, month, start, now),
        None if start is None else utc_date(start),
        allocation,
    )


def previous_month(
    conn: Connection, month: Month, data_start: int | None, now: int | None = None
) -> Previous:
    """The previous month's known total; while `month` is in progress, over the same
    days (1..today) so month-to-date compares with month-to-date."""
    prev = month.previous()
    at = int(time.time()) if now is None else now
    through = utc_date(at).day if month.start <= at < month.end else None
    end = prev.end if through is None else min(prev.end, prev.start + through * SECONDS_PER_DAY)
    usage = read.usage_rows(conn, prev.start, end)
    fees = read.fee_rows(conn, prev.start, end)
    total_cost = total([*(r.cost for r in usage), *(f.cost for f in fees)])
    has_data = data_start is not None and data_start < end
    return Previous(prev, total_cost, through, has_data)


def daily_chart(conn: Connection, month: Month) -> dict[str, dict[str, int]]:
    """Known cost per day and model for the HTML report's chart."""
    from ledger.reports.monthly import daily_cost_by_model

    usage = read.usage_rows(conn, month.start, month.end, ("day",))
    return daily_cost_by_model(month, usage, read.fee_rows(conn, month.start, month.end))


def whatif(conn: Connection, book: PriceBook, month: Month, target: str) -> WhatIf:
    """`ftledger report whatif`: the month's usage priced on `target`."""
    usage = read.usage_rows(conn, month.start, month.end, ("day", "batch"))
    from ledger.reports.whatif import whatif_report

    return whatif_report(book, month, target, usage)


def focus(
    conn: Connection,
    book: PriceBook,
    month: Month,
    account: Account | None = None,
    allocation: Allocation | None = None,
) -> FocusExport:
    """`ftledger export focus`: the month as FOCUS 1.2 rows, billed costs from the
    mirrored Costs API lines, Tags from `allocation`'s teams."""
    grain = ["day", "project", "batch", "tier"]
    if allocation is not None and allocation.teams:
        grain.append("api_key")
    usage = read.usage_rows(conn, month.start, month.end, grain)
    fees = read.fee_rows(conn, month.start, month.end)
    billed = read.billed_rows(conn, month.start, month.end)
    from ledger.reports.focus import Account, focus_export

    return focus_export(book, month, usage, fees, account or Account(), billed, allocation)


def reconciliation(
    conn: Connection,
    book: PriceBook,
    month: Month,
    tolerance_pct: Decimal,
    now: int | None = None,
) -> Reconciliation:
    """`ftledger reconcile`: computed cost per day against OpenAI's billed costs."""
    usage = read.usage_rows(conn, month.start, month.end, ("day",))
    fees = read.fee_rows(conn, month.start, month.end)
    billed = read.billed_rows(conn, month.start, month.end)
    at = int(time.time()) if now is None else now
    from ledger.reports.reconcile import reconcile

    return reconcile(
        month, usage, fees, billed, currency=book.currency, tolerance_pct=tolerance_pct, now=at
    )


def day_costs(
    conn: Connection, start: int, end: int, allocation: Allocation | None = None
) -> list[DayCost]:
    """Usage and fees per (model, project, UTC day) in [start, end): budgets, forecasts.

    With an `allocation` that defines teams, each row also carries its team (usage is
    read per API key too, since team rules may match keys)."""
    if allocation is None or not allocation.teams:
        rows = [
            DayCost(r.model, r.project or "", r.day, r.cost)
            for r in read.usage_rows(conn, start, end, ("day", "project"))
            if r.day is not None
        ]
        fees = read.fee_rows(conn, start, end)
        return rows + [DayCost(f.model, f.project, f.day, f.cost) for f in fees]
    team = allocation.team_of
    rows = [
        DayCost(r.model, r.project or "", r.day, r.cost, team(r.model, r.project, r.api_key))
        for r in read.usage_rows(conn, start, end, ("day", "project", "api_key"))
        if r.day is not None
    ]
    rows += [
        DayCost(f.model, f.project, f.day, f.cost, team(f.model, f.project, None))
        for f in read.fee_rows(conn, start, end)
    ]
    return rows


def as_of(conn: Connection) -> int | None:
    """When the ledger's data was last brought up to date (the newest successful poll)."""
    return read.last_poll_success(conn)


@dataclass(frozen=True)
class ForecastLine:
    """One line of `ftledger forecast`: a model, a monthly budget, or the total."""

    kind: str  # model | budget | total
    name: str
    spend: int
    forecast: Forecast | None
    budget_amount: int | None = None
    crosses_on: date | None = None


def forecast(
    conn: Connection,
    budgets: Sequence[Budget],
    period: Period,
    at: datetime,
    allocation: Allocation | None = None,
) -> list[ForecastLine]:
    """Month-end projection per model, in total, and per monthly budget, as of `at`
    (a budget scoped to teams needs the `allocation` that defines them)."""
    from ledger.alerts import evaluate, spend_window
    from ledger.forecast import forecast_period
    from ledger.spend import by_day, first_day

    today = at.date()
    spend = day_costs(conn, *spend_window(period, today))
    of_model: dict[str, list[DayCost]] = {}
    for r in spend:
        of_model.setdefault(r.model, []).append(r)
    models = sorted({r.model for r in spend if r.day >= period.start})
    lines: list[ForecastLine] = []
    for name in [*models, None]:
        rows = spend if name is None else of_model[name]
        daily = by_day(rows)
        projection = forecast_period(daily, period, today, first_day=first_day(rows))
        lines.append(
            ForecastLine(
                "model" if name else "total",
                name or "TOTAL",
                sum(v for d, v in daily.items() if d >= period.start),
                projection,
            )
        )
    for budget in budgets:
        if budget.period != "monthly":
            continue
        state = evaluate(conn, budget, at, period, allocation, spend)
        lines.append(
            ForecastLine(
                "budget",
                budget.name,
                state.spend,
                state.forecast,
                budget.amount_pico,
                state.crosses_on,
            )
        )
    return lines


TRAINING_SERIES = "training fees"


def dashboard_daily(conn: Connection, month: Month) -> dict[str, dict[str, int]]:
    """Known cost per day: inference by model, training fees as a series of their own."""
    from ledger.reports.monthly import daily_cost_by_model

    usage = read.usage_rows(conn, month.start, month.end, ("day",))
    days = daily_cost_by_model(month, usage, [])
    for fee in read.fee_rows(conn, month.start, month.end):
        per_day = days[fee.day.isoformat()]
        per_day[TRAINING_SERIES] = per_day.get(TRAINING_SERIES, 0) + fee.cost.known
    return days


def months(conn: Connection, now: int | None = None, limit: int = 24) -> list[Month]:
    """The months from the ledger's first data to the current one, newest first."""
    current = Month.current(now)
    start = read.data_start(conn)
    first = current if start is None else min(current, Month.current(start))
    out = [current]
    while out[-1] > first and len(out) < limit:
        out.append(out[-1].previous())
    return out
