"""Spend anomaly alerts against a real ledger: a spike alerts once per (anomaly, day)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest
from alert_receivers import http_receiver
from sqlalchemy import select

from ledger.alerts import run_budget_check
from ledger.budgets import load_budgets
from ledger.domain import UsageKey, UsageObservation
from ledger.errors import BudgetConfigError
from ledger.period import day_start
from ledger.settings import load_settings
from ledger.store.ledger import post_usage
from ledger.store.tables import AlertDecision

SUPPORT = "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2"
LEGAL = "ft:gpt-4o-mini-2024-07-18:acme:legal:Lx9"
FIRST = date(2026, 10, 1)
DAYS = 35


def post(engine, book, day: date, tokens: int, model=SUPPORT, project="proj_a"):
    """Fine-tuned gpt-4o-mini output: $1.20 per 1M tokens."""
    start = day_start(day)
    key = UsageKey("test", start, start + 86400, model, project)
    with engine.begin() as conn:
        post_usage(conn, {key: UsageObservation(key, 1, 0, 0, tokens)}, book, now=start)


def seed_steady(engine, book, days=DAYS, seed=3):
    """About $3 a day (weekends $1.20) with ±15 % noise on SUPPORT, $0.60 flat on LEGAL."""
    rng = random.Random(seed)
    for i in range(days):
        day = FIRST + timedelta(days=i)
        level = 2_500_000 * (0.4 if day.weekday() >= 5 else 1)
        post(engine, book, day, round(level * (1 + rng.uniform(-0.15, 0.15))))
        post(engine, book, day, 500_000, model=LEGAL)


def write_config(config_dir, **anomaly):
    fields = {"name": "spend-spikes", "channels": ["ops"], **anomaly}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
    config_dir.joinpath("budgets.toml").write_text(
        f"""
[[channel]]
name = "ops"
type = "webhook"
url = "${{OPS_HOOK}}"

[[anomaly]]
{body}
""",
        encoding="utf-8",
    )


def at(day: date, hour: int = 0, minute: int = 20) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def test_a_ten_times_day_sends_exactly_one_anomaly_alert(engine, book, config_dir, monkeypatch):
    seed_steady(engine, book)
    spike_day = FIRST + timedelta(days=DAYS)  # 2026-11-05, a Thursday, 35 days of history
    post(engine, book, spike_day, 25_000_000)  # $30: ten times a weekday
    post(engine, book, spike_day, 500_000, model=LEGAL)
    settings = load_settings()
    with http_receiver() as rx:
        monkeypatch.setenv("OPS_HOOK", rx.url)
        write_config(config_dir)
        first = run_budget_check(engine, settings, book, now=at(spike_day + timedelta(days=1)))
        assert first.decided == [("spend-spikes", "2026-11-05", "anomaly", 0)]
        assert [(d.kind, d.status) for d in first.deliveries] == [("anomaly", "delivered")]
        # later checks (the day is judged again for 3 days) send nothing new
        for hours in (1, 6, 24, 48, 72):
            later = at(spike_day + timedelta(days=1)) + timedelta(hours=hours)
            again = run_budget_check(engine, settings, book, now=later)
            assert again.decided == [] and again.deliveries == []
    assert len(rx.accepted) == 1
    payload = rx.accepted[0].json()
    assert payload["kind"] == "anomaly" and payload["anomaly"] == "spend-spikes"
    assert payload["day"] == "2026-11-05"
    assert payload["spend"] == "30.600000"
    assert 3 < float(payload["baseline"]) < 4.2
    assert payload["models"][0]["model"] == SUPPORT and payload["models"][0]["spend"] == (
        "30.000000"
    )
    assert [m["model"] for m in payload["models"]] == [SUPPORT]  # LEGAL did not move
    assert payload["method"] == "weekday-median" and payload["sensitivity"] == "medium"
    assert payload["idempotency_key"] == rx.accepted[0].headers["Idempotency-Key"]
    with engine.connect() as conn:
        kinds = conn.execute(select(AlertDecision.kind, AlertDecision.period)).all()
    assert kinds == [("anomaly", "2026-11-05")]


def test_a_steady_series_sends_none_checked_every_day(engine, book, config_dir, monkeypatch):
    seed_steady(engine, book, days=42)
    settings = load_settings()
    with http_receiver() as rx:
        monkeypatch.setenv("OPS_HOOK", rx.url)
        write_config(config_dir, sensitivity="high", min_amount="0")
        for i in range(1, 43):
            result = run_budget_check(engine, settings, book, now=at(FIRST + timedelta(days=i)))
            assert result.decided == [], FIRST + timedelta(days=i)
    assert rx.requests == []


def test_scope_limits_what_an_anomaly_watches(engine, book, config_dir, monkeypatch):
    seed_steady(engine, book)
    spike_day = FIRST + timedelta(days=DAYS)
    post(engine, book, spike_day, 2_500_000)
    post(engine, book, spike_day, 50_000_000, model=LEGAL)  # LEGAL 100x
    settings = load_settings()
    with http_receiver() as rx:
        monkeypatch.setenv("OPS_HOOK", rx.url)
        write_config(config_dir, models=["ft:*:acme:support:*"])
        assert (
            run_budget_check(engine, settings, book, now=at(spike_day + timedelta(1))).decided == []
        )
        write_config(config_dir, models=["ft:*:acme:legal:*"], name="legal")
        found = run_budget_check(engine, settings, book, now=at(spike_day + timedelta(1)))
        assert found.decided == [("legal", "2026-11-05", "anomaly", 0)]
    assert [m["model"] for m in rx.accepted[0].json()["models"]] == [LEGAL]


def test_no_anomaly_alert_during_the_first_seven_days(engine, book, config_dir, monkeypatch):
    seed_steady(engine, book, days=6)
    post(engine, book, FIRST + timedelta(days=6), 25_000_000)
    settings = load_settings()
    monkeypatch.setenv("OPS_HOOK", "http://127.0.0.1:9/hook")
    write_config(config_dir)
    result = run_budget_check(engine, settings, book, now=at(FIRST + timedelta(days=7)))
    assert result.decided == [] and result.deliveries == []


def test_anomaly_blocks_are_validated_with_their_key_paths(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text(
        """
[[channel]]
name = "ops"
type = "log"

[[budget]]
name = "same"
amount = "10"
channels = ["ops"]

[[anomaly]]
name = "same"
channels = ["nope"]
sensitivity = "extreme"
min_amount = 1.5
colour = "red"

[[anomaly]]
models = "ft:*"
channels = []
min_amount = "-1"
""",
        encoding="utf-8",
    )
    with pytest.raises(BudgetConfigError) as failed:
        load_budgets(path, env={})
    found = sorted(str(p).removeprefix(f"{path}: ") for p in failed.value.problems)
    assert found == sorted(
        [
            "anomaly[0].colour: unknown key",
            "anomaly[0].sensitivity: 'extreme' is not one of low, medium, high",
            "anomaly[0].min_amount: 1.5 is a float; write amounts as decimal strings, "
            'e.g. "500.00"',
            "anomaly[0].channels[0]: no channel named 'nope'",
            "anomaly[1].name: is required (a non-empty string)",
            "anomaly[1].models: must be a list of model name patterns",
            "anomaly[1].channels: is empty: name at least one [[channel]]",
            "anomaly[1].min_amount: -1 must be greater than 0",
        ]
    )
    path.write_text(
        """
[[channel]]
name = "ops"
type = "log"

[[budget]]
name = "same"
amount = "10"
channels = ["ops"]

[[anomaly]]
name = "same"
channels = ["ops"]
""",
        encoding="utf-8",
    )
    with pytest.raises(BudgetConfigError) as failed:
        load_budgets(path, env={})
    assert [p.message for p in failed.value.problems] == ["'same' is already a budget's name"]
    path.write_text(
        '[[channel]]\nname = "ops"\ntype = "log"\n\n'
        '[[anomaly]]\nname = "all"\nchannels = ["ops"]\nmin_amount = "0"\nsensitivity = "low"\n',
        encoding="utf-8",
    )
    (anomaly,) = load_budgets(path, env={}).anomalies
    assert anomaly.min_amount_pico == 0 and anomaly.sensitivity == "low"
