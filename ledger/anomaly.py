"""Spend anomalies: is a complete UTC day's spend far above its recent normal? (pure, no I/O)

The anchor is AWS Cost Anomaly Detection: each day is compared with what the days before
it make normal, and only an upward spike with a real money impact alerts. The baseline
is robust, so one earlier spike (or a quiet holiday) does not move it much:

- the **window** is the 28 complete days before the day checked, counted from the first
  day with spend in scope (a day without spend since then is a day of zero spend; days
  before the first one are not history);
- with fewer than **7 days of history** nothing is judged (no alert);
- with fewer than **28 days** the expected spend is the window's median, its spread
  1.4826 × the median absolute deviation (MAD; 1.4826 × MAD estimates a standard
  deviation for normal noise without being moved by outliers);
- with **28 days** (4 whole weeks) it is day-of-week aware: the expected spend is the
  median of the 4 same weekdays in the window, the spread 1.4826 × MAD of every window
  day's difference from its own weekday median, so a weekly rhythm is not noise;
- the spread is at least 10 % of the expected spend (a perfectly flat series has MAD 0,
  and a cent above it must not alert);
- the day is a **spike** when spend > expected + k × spread, with k by sensitivity
  (high 3, medium 4, low 6), and spend − expected ≥ `min_amount` (the impact).

The models that drove a spike are those whose spend that day most exceeds their own
median over the same baseline days. Money is integer pico-USD; medians are exact
Decimals (a median of two integers is at most a half), never floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

WINDOW_DAYS = 28
MIN_HISTORY_DAYS = 7
WEEKDAY_AWARE_DAYS = 28  # 4 whole weeks: each weekday seen 4 times
MAD_SCALE = Decimal("1.4826")
SPREAD_FLOOR = Decimal("0.1")  # of the expected spend
SENSITIVITY_K = {"high": Decimal(3), "medium": Decimal(4), "low": Decimal(6)}
DEFAULT_SENSITIVITY = "medium"
MAX_DRIVERS = 5


def median(values: list[int] | list[Decimal]) -> Decimal:
    """The middle value, or the mean of the two middle values (exact)."""
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(Decimal(v) for v in values)
    n = len(ordered)
    middle = n // 2
    return ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(frozen=True)
class Baseline:
    """What the history before a day makes normal for it."""

    expected: Decimal  # pico-USD
    spread: Decimal  # pico-USD, a robust standard deviation (floored)
    limit: Decimal  # expected + k × spread: above it is a spike
    method: str  # "median" | "weekday-median"
    history_days: int  # days in the window
    days: tuple[date, ...]  # the days the expected spend is the median of


def baseline_days(day: date, first_day: date) -> list[date]:
    """The window before `day`: up to 28 days, none before `first_day`."""
    start = max(first_day, day - timedelta(days=WINDOW_DAYS))
    return [start + timedelta(days=i) for i in range((day - start).days)]


def baseline(
    daily: Mapping[date, int], day: date, first_day: date | None, k: Decimal
) -> Baseline | None:
    """The baseline of `day` from `daily` spend (missing days are 0), or None while the
    history since `first_day` is shorter than MIN_HISTORY_DAYS."""
    if first_day is None:
        return None
    window = baseline_days(day, first_day)
    if len(window) < MIN_HISTORY_DAYS:
        return None
    values = {d: daily.get(d, 0) for d in window}
    if len(window) >= WEEKDAY_AWARE_DAYS:
        by_weekday: dict[int, list[int]] = {}
        for d, v in values.items():
            by_weekday.setdefault(d.weekday(), []).append(v)
        weekday_median = {w: median(vs) for w, vs in by_weekday.items()}
        expected = weekday_median[day.weekday()]
        residuals = [abs(Decimal(v) - weekday_median[d.weekday()]) for d, v in values.items()]
        mad = median(residuals)
        days = tuple(d for d in window if d.weekday() == day.weekday())
        method = "weekday-median"
    else:
        expected = median(list(values.values()))
        mad = median([abs(Decimal(v) - expected) for v in values.values()])
        days = tuple(window)
        method = "median"
    spread = max(MAD_SCALE * mad, SPREAD_FLOOR * expected)
    return Baseline(expected, spread, expected + k * spread, method, len(window), days)


@dataclass(frozen=True)
class Driver:
    """A model's part in a spike: its spend that day against its own median."""

    model: str
    spend: int  # pico-USD
    expected: Decimal  # pico-USD
    excess: Decimal  # spend - expected


@dataclass(frozen=True)
class Spike:
    day: date
    spend: int  # pico-USD
    baseline: Baseline
    drivers: tuple[Driver, ...]

    @property
    def excess(self) -> Decimal:
        return self.spend - self.baseline.expected


def detect(
    by_model: Mapping[str, Mapping[date, int]],
    day: date,
    first_day: date | None,
    *,
    sensitivity: str = DEFAULT_SENSITIVITY,
    min_amount: int = 0,
) -> Spike | None:
    """The spike on `day` in spend per model and day (pico-USD), or None.

    `first_day` is the first day with spend in scope (history starts there);
    `min_amount` the least excess over the expected spend (pico-USD) worth an alert.
    """
    daily: dict[date, int] = {}
    for days in by_model.values():
        for d, v in days.items():
            daily[d] = daily.get(d, 0) + v
    base = baseline(daily, day, first_day, SENSITIVITY_K[sensitivity])
    if base is None:
        return None
    spend = daily.get(day, 0)
    if spend <= base.limit or spend - base.expected < min_amount:
        return None
    drivers = []
    for model, days in by_model.items():
        expected = median([days.get(d, 0) for d in base.days])
        model_spend = days.get(day, 0)
        if model_spend > expected:
            drivers.append(Driver(model, model_spend, expected, model_spend - expected))
    drivers.sort(key=lambda d: (-d.excess, d.model))
    return Spike(day, spend, base, tuple(drivers[:MAX_DRIVERS]))


def days_to_check(today: date, lookback: int) -> list[date]:
    """The complete UTC days before `today` that a check looks at, oldest first: the
    last `lookback` of them, so usage reported late still gets its day judged."""
    return [today - timedelta(days=i) for i in range(lookback, 0, -1)]
