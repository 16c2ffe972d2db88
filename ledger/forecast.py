"""Projecting a period's spend to its end: pure arithmetic on daily sums, no I/O.

Rules (from the budgets issue):
- No forecast before 3 complete days of data in the period: a day or two says little.
- With fewer than 14 complete days of history, a run-rate: the mean of the period's
  complete days, for each remaining day.
- From 14 days of history on (the last 28 complete days, before the period too), a
  day-of-week-aware projection: each remaining day gets the mean of its weekday, since
  spend on working days and weekends differs.
- The interval is a 90% band from the daily scatter around the model (normal
  approximation): s² × (n + Σ_w c_w² / m_w) for n remaining days, c_w of weekday
  group w and m_w history days in that group. It never goes below the actual spend.

Days before the first day with data are unknown, not zero. Today is partial: its
projection is the model's day, unless today's actual spend already exceeds it.
Amounts are integer pico-USD; the arithmetic is Decimal, rounded once to integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from ledger.period import Period

MIN_PERIOD_DAYS = 3
DOW_HISTORY_DAYS = 14
HISTORY_WINDOW_DAYS = 28
Z_90 = Decimal("1.6449")


@dataclass(frozen=True)
class Forecast:
    method: str  # run-rate | day-of-week | actual (the period has ended)
    point: int  # projected spend of the whole period, pico-USD
    low: int
    high: int
    days_of_data: int  # complete days the projection rests on
    daily: tuple[tuple[date, int], ...]  # projected spend of each remaining day, from today


def _day_range(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def forecast_period(
    daily: Mapping[date, int], period: Period, today: date, *, first_day: date | None = None
) -> Forecast | None:
    """The projected spend of `period` as seen on `today`, or None when too early.

    `daily` holds spend per UTC day (pico-USD); it may include days before the period,
    which the day-of-week model uses as history. `first_day` is the first day with
    data (default: the earliest day in `daily`).
    """
    if today < period.start:
        return None
    in_period = {d: v for d, v in daily.items() if period.start <= d < period.end}
    if today >= period.end:
        total = sum(in_period.values())
        return Forecast("actual", total, total, total, period.days, ())
    if first_day is None:
        first_day = min(daily) if daily else None
    if first_day is None:
        return None
    observed = _day_range(max(period.start, first_day), today)
    if len(observed) < MIN_PERIOD_DAYS:
        return None
    history = _day_range(max(first_day, today - timedelta(days=HISTORY_WINDOW_DAYS)), today)
    remaining = _day_range(today, period.end)
    if len(history) >= DOW_HISTORY_DAYS:
        method, basis = "day-of-week", history

        def group(d: date) -> int:
            return d.weekday()
    else:
        method, basis = "run-rate", observed

        def group(d: date) -> int:
            return 0

    sums: dict[int, int] = {}
    counts: dict[int, int] = {}
    for d in basis:
        sums[group(d)] = sums.get(group(d), 0) + daily.get(d, 0)
        counts[group(d)] = counts.get(group(d), 0) + 1
    means = {g: Decimal(sums[g]) / counts[g] for g in sums}
    overall = Decimal(sum(sums.values())) / len(basis)
    residuals = sum(((Decimal(daily.get(d, 0)) - means[group(d)]) ** 2 for d in basis), Decimal(0))
    dof = len(basis) - len(means)
    variance = residuals / dof if dof > 0 else Decimal(0)

    projected: list[tuple[date, int]] = []
    weight = Decimal(len(remaining))
    remaining_groups: dict[int, int] = {}
    for d in remaining:
        expected = means.get(group(d), overall)
        if d == today:
            expected = max(expected, Decimal(daily.get(today, 0)))
        projected.append((d, _int(expected)))
        remaining_groups[group(d)] = remaining_groups.get(group(d), 0) + 1
    for g, c in remaining_groups.items():
        weight += Decimal(c * c) / counts.get(g, len(basis))
    half_width = _int(Z_90 * (variance * weight).sqrt()) if variance > 0 else 0

    before_today = sum(v for d, v in in_period.items() if d < today)
    actual = before_today + in_period.get(today, 0)
    point = before_today + sum(v for _, v in projected)
    return Forecast(
        method=method,
        point=point,
        low=max(actual, point - half_width),
        high=point + half_width,
        days_of_data=len(observed),
        daily=tuple(projected),
    )


def crossing_date(
    amount: int,
    daily: Mapping[date, int],
    period: Period,
    today: date,
    forecast: Forecast | None,
) -> date | None:
    """The day the period's cumulative spend reaches `amount`: already, or as projected.

    None when neither the actual spend so far nor the projection reaches it in the period.
    """
    total = 0
    last_actual = min(today, period.end - timedelta(days=1))
    for d in _day_range(period.start, last_actual + timedelta(days=1)):
        total += daily.get(d, 0)
        if total >= amount:
            return d
    if forecast is None or not forecast.daily:
        return None
    total -= daily.get(today, 0)  # today's projection replaces its partial actual
    for d, expected in forecast.daily:
        total += expected
        if total >= amount:
            return d
    return None


def percent(part: int, whole: int) -> Decimal:
    """part / whole in percent, exact to two decimals (half-even), for display and rules."""
    if whole <= 0:
        return Decimal(0)
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
