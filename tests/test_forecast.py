"""Spend projections: when they start, which model they use, their interval and crossing."""

from __future__ import annotations

from datetime import date, timedelta

from ledger.forecast import crossing_date, forecast_period
from ledger.period import period_containing

NOV = period_containing("monthly", date(2026, 11, 1))
USD = 10**12


def days(start: date, values: list[int]) -> dict[date, int]:
    return {start + timedelta(days=i): v for i, v in enumerate(values)}


def test_no_forecast_before_three_complete_days_in_the_period():
    daily = days(date(2026, 11, 1), [USD, USD, USD])
    assert forecast_period(daily, NOV, date(2026, 11, 3)) is None  # 2 complete days
    forecast = forecast_period(daily, NOV, date(2026, 11, 4))
    assert forecast is not None and forecast.days_of_data == 3


def test_run_rate_projects_the_mean_day_over_the_rest_of_the_month():
    daily = days(date(2026, 11, 1), [2 * USD, 4 * USD, 6 * USD, USD])  # day 4 is today
    forecast = forecast_period(daily, NOV, date(2026, 11, 4))
    assert forecast is not None and forecast.method == "run-rate"
    # 12 spent in 3 complete days, 4/day for the 27 days from today: 12 + 108.
    assert forecast.point == 120 * USD
    assert forecast.low < forecast.point < forecast.high
    assert forecast.low >= 13 * USD  # never below what was already spent


def test_constant_spend_has_no_uncertainty():
    forecast = forecast_period(days(date(2026, 11, 1), [USD] * 5), NOV, date(2026, 11, 6))
    assert forecast is not None
    assert (forecast.low, forecast.point, forecast.high) == (30 * USD, 30 * USD, 30 * USD)


def test_today_counts_when_it_already_exceeds_the_typical_day():
    daily = days(date(2026, 11, 1), [USD, USD, USD, 10 * USD])
    forecast = forecast_period(daily, NOV, date(2026, 11, 4))
    assert forecast is not None and forecast.point == 3 * USD + 10 * USD + 26 * USD


def test_day_of_week_projection_after_fourteen_days_of_history():
    # Weekdays cost 10, weekends 1, from Monday 2026-10-19 (history before the period).
    start = date(2026, 10, 19)
    values = [(10 if (start + timedelta(days=i)).weekday() < 5 else 1) * USD for i in range(20)]
    daily = days(start, values)  # up to Saturday 2026-11-07; today is Sunday 08
    forecast = forecast_period(daily, NOV, date(2026, 11, 8))
    assert forecast is not None and forecast.method == "day-of-week"
    in_period = sum(v for d, v in daily.items() if d.month == 11 and d.day < 8)
    # 8..30 November: 16 weekdays, 7 weekend days.
    assert forecast.point == in_period + (16 * 10 + 7 * 1) * USD
    assert forecast.low == forecast.point == forecast.high  # the pattern is exact
    run_rate = forecast_period(
        {d: v for d, v in daily.items() if d.month == 11}, NOV, date(2026, 11, 8)
    )
    assert run_rate is not None and run_rate.method == "run-rate"
    assert run_rate.point != forecast.point


def test_days_before_the_first_data_are_unknown_not_zero():
    daily = days(date(2026, 11, 10), [USD] * 4)
    forecast = forecast_period(daily, NOV, date(2026, 11, 14))
    assert forecast is not None and forecast.days_of_data == 4
    assert forecast.point == 4 * USD + 17 * USD


def test_an_ended_period_reports_its_actual_spend():
    forecast = forecast_period(days(date(2026, 11, 1), [USD] * 30), NOV, date(2026, 12, 2))
    assert forecast is not None and forecast.method == "actual"
    assert forecast.point == forecast.low == forecast.high == 30 * USD


def test_crossing_date_actual_and_projected():
    daily = days(date(2026, 11, 1), [4 * USD] * 5)  # today is the 5th
    forecast = forecast_period(daily, NOV, date(2026, 11, 5))
    assert crossing_date(10 * USD, daily, NOV, date(2026, 11, 5), forecast) == date(2026, 11, 3)
    assert crossing_date(50 * USD, daily, NOV, date(2026, 11, 5), forecast) == date(2026, 11, 13)
    assert crossing_date(500 * USD, daily, NOV, date(2026, 11, 5), forecast) is None
    assert crossing_date(50 * USD, daily, NOV, date(2026, 11, 5), None) is None


def test_weekly_periods_are_iso_weeks_starting_monday():
    week = period_containing("weekly", date(2026, 11, 26))  # a Thursday
    assert (week.start, week.end, week.label) == (
        date(2026, 11, 23),
        date(2026, 11, 30),
        "2026-W48",
    )
    assert period_containing("weekly", date(2027, 1, 1)).label == "2026-W53"
    assert period_containing("daily", date(2026, 11, 25)).label == "2026-11-25"
    assert period_containing("monthly", date(2026, 12, 31)).end == date(2027, 1, 1)
    daily = days(week.start, [USD] * 3)
    forecast = forecast_period(daily, week, date(2026, 11, 26))
    assert forecast is not None and forecast.point == 7 * USD
