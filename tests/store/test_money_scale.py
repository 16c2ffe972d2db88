"""Money at any scale: a $19M month reports exactly and its $10M budget alerts once each.

A month of hourly buckets of 5e9 input and 5e8 output tokens on a fine-tuned gpt-4o
costs $26,250 an hour: $18.9M over November, twice what a 64-bit sum of pico-USD holds.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from alert_receivers import http_receiver
from test_budgets_alerts import hook, write_budgets  # noqa: F401  (hook is a fixture)

from ledger.alerts import run_budget_check
from ledger.domain import UsageKey, UsageObservation
from ledger.period import Month
from ledger.settings import load_settings
from ledger.store.ledger import post_usage

FT_GPT4O = "ft:gpt-4o-2024-08-06:acme:bulk:Big1"
NOVEMBER = Month(2026, 11)
HOURLY = 5_000_000_000 * Decimal("3.75") / 10**6 + 500_000_000 * Decimal("15.00") / 10**6


def post_a_big_month(engine, book) -> None:
    observations = {}
    for hour in range((NOVEMBER.end - NOVEMBER.start) // 3600):
        start = NOVEMBER.start + hour * 3600
        key = UsageKey("test", start, start + 3600, FT_GPT4O, "proj_big")
        observations[key] = UsageObservation(key, 1000, 5_000_000_000, 0, 500_000_000)
    with engine.begin() as conn:
        post_usage(conn, observations, book)


def test_a_19_million_dollar_month_reports_to_the_last_digit(engine, book, cli):
    post_a_big_month(engine, book)
    want = HOURLY * 720
    assert want == Decimal("18900000")
    for fmt_by in ("model", "day", "project"):
        result = cli("report", "monthly", "--month", "2026-11", "--by", fmt_by, "-f", "json")
        assert result.exit_code == 0, result.stderr
        totals = json.loads(result.stdout)["totals"]
        assert Decimal(totals["usage_cost"]) == want
        assert Decimal(totals["base_model_cost"]) == want * 2 / 3  # 2.50 / 10.00 per 1M
    focus = cli("export", "focus", "--month", "2026-11")
    assert focus.exit_code == 0, focus.stderr
    rec = cli("reconcile", "--month", "2026-11", "-f", "json")
    assert rec.exit_code == 0, rec.stderr
    assert Decimal(json.loads(rec.stdout)["totals"]["computed_cost"]) == want


def test_a_10_million_dollar_budget_alerts_half_and_full_once_each(
    engine,
    book,
    config_dir,
    hook,  # noqa: F811
):
    post_a_big_month(engine, book)
    with http_receiver() as receiver:
        hook(receiver.url)
        write_budgets(
            config_dir, receiver.url, amount="10000000", thresholds=[50, 100], forecast=[]
        )
        at = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
        for _ in range(3):  # later checks find both thresholds already alerted
            result = run_budget_check(engine, load_settings(), now=at)
            assert not result.failed
        sent = sorted((r.json()["threshold"], r.json()["spend"]) for r in receiver.accepted)
    assert [t for t, _ in sent] == [50, 100]
    # Spend at decision time: the whole month up to the 30th's last bucket, exactly.
    assert {Decimal(str(s)) for _, s in sent} == {HOURLY * 720}
