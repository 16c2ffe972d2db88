"""Spend anomaly detection on generated series (pure: ledger.anomaly)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest

from ledger.anomaly import baseline, detect, median

START = date(2026, 9, 7)  # a Monday
USD = 10**12


def steady(days: int, *, seed: int = 7, noise: float = 0.15, weekend: float = 0.4) -> list[int]:
    """Daily pico-USD around $50 on weekdays and `weekend` of it on Saturday and Sunday,
    with uniform ±`noise` (the generator is seeded: the same series every run)."""
    rng = random.Random(seed)
    series = []
    for i in range(days):
        level = 50 * (weekend if (START + timedelta(days=i)).weekday() >= 5 else 1)
        cents = round(level * 100 * (1 + rng.uniform(-noise, noise)))
        series.append(cents * USD // 100)
    return series


def as_days(series: list[int]) -> dict[date, int]:
    return {START + timedelta(days=i): v for i, v in enumerate(series)}


def spikes(by_model: dict[str, dict[date, int]], days: int, **options: object) -> list[date]:
    checked = [START + timedelta(days=i) for i in range(days)]
    return [d for d in checked if detect(by_model, d, START, **options) is not None]  # type: ignore[arg-type]


def test_median_is_exact():
    assert median([3, 1, 2]) == 2
    assert median([1, 2]) == Decimal("1.5")
    with pytest.raises(ValueError):
        median([])


@pytest.mark.parametrize("sensitivity", ["low", "medium", "high"])
@pytest.mark.parametrize("seed", range(5))
def test_a_steady_series_with_noise_and_a_weekly_rhythm_never_alerts(seed, sensitivity):
    series = as_days(steady(70, seed=seed))
    assert spikes({"m": series}, 70, sensitivity=sensitivity) == []


def test_a_ten_times_day_in_a_steady_28_day_series_is_one_spike_with_its_driver():
    series = steady(40)
    spike_day = 30  # a Wednesday with 30 days of history: the weekday-aware baseline
    other = {START + timedelta(days=i): 2 * USD for i in range(40)}  # flat, not the cause
    series[spike_day] *= 10
    by_model = {"ft:gpt-4o-mini-2024-07-18:acme:support:A1": as_days(series), "other": other}
    assert spikes(by_model, 40) == [START + timedelta(days=spike_day)]
    spike = detect(by_model, START + timedelta(days=spike_day), START)
    assert spike is not None
    assert spike.baseline.method == "weekday-median" and spike.baseline.history_days == 28
    assert spike.spend == series[spike_day] + 2 * USD
    assert 45 * USD < spike.baseline.expected < 60 * USD
    assert [d.model for d in spike.drivers] == ["ft:gpt-4o-mini-2024-07-18:acme:support:A1"]
    assert spike.drivers[0].excess > 400 * USD


def test_no_alert_during_the_first_seven_days_of_history():
    series = steady(20)
    series[5] *= 10
    series[7] *= 10
    found = spikes({"m": as_days(series)}, 20)
    assert found == [START + timedelta(days=7)]  # day 5 had 5 days of history
    assert baseline(as_days(series), START + timedelta(days=6), START, Decimal(4)) is None


def test_history_starts_at_the_first_day_with_spend_and_quiet_days_count_as_zero():
    daily = {START: 10 * USD, START + timedelta(days=9): 10 * USD}
    base = baseline(daily, START + timedelta(days=10), START, Decimal(4))
    assert base is not None and base.history_days == 10 and base.expected == 0
    # days before the first one are not history
    assert baseline(daily, START + timedelta(days=3), START + timedelta(days=1), Decimal(4)) is None


def test_min_amount_is_the_least_impact_worth_an_alert():
    series = [1 * USD] * 30
    series[29] = 3 * USD  # 3x, but only $2 over
    by_model = {"m": as_days(series)}
    day = START + timedelta(days=29)
    assert detect(by_model, day, START, min_amount=2 * USD) is not None
    assert detect(by_model, day, START, min_amount=2 * USD + 1) is None


def test_a_flat_series_needs_more_than_a_cent_to_alert():
    # MAD is 0; the spread floor (10 % of the expected spend) keeps a cent from alerting
    series = [10 * USD] * 30
    series[29] += USD // 100
    assert spikes({"m": as_days(series)}, 30) == []
    series[29] = 15 * USD  # +50 %: over expected + 4 x 10 %
    assert spikes({"m": as_days(series)}, 30) == [START + timedelta(days=29)]


def test_weekday_awareness_keeps_a_weekly_batch_day_quiet_once_there_are_four_weeks():
    # Every Saturday runs a batch at 4x the weekday spend. Before 4 weeks of history the
    # plain median flags Saturdays (the documented false positive); after, it does not.
    series = steady(63, weekend=1.0, noise=0.05)
    for i in range(63):
        if (START + timedelta(days=i)).weekday() == 5:
            series[i] *= 4
    found = spikes({"m": as_days(series)}, 63)
    assert found and all(d.weekday() == 5 for d in found)
    assert max(found) < START + timedelta(days=28)


def test_a_spike_does_not_raise_the_baseline_of_the_days_after_it():
    series = steady(45)
    series[30] *= 10
    daily = as_days(series)
    before = baseline(daily, START + timedelta(days=30), START, Decimal(4))
    after = baseline(daily, START + timedelta(days=37), START, Decimal(4))  # same weekday
    assert before is not None and after is not None
    assert abs(after.expected - before.expected) < 5 * USD
