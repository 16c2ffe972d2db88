"""Budget checks against a real ledger: each crossed threshold alerts once, whatever fails."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from alert_receivers import free_port, http_receiver
from sqlalchemy import select, text, update

from ledger.alerts import run_budget_check
from ledger.domain import JobObservation, UsageKey, UsageObservation
from ledger.period import day_start
from ledger.settings import load_settings
from ledger.store.engine import open_engine
from ledger.store.ledger import post_training_fee, post_usage
from ledger.store.tables import AlertDecision, AlertDelivery

SUPPORT = "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2"
LEGAL = "ft:gpt-4o-mini-2024-07-18:acme:legal:Lx9"
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
CANARY = "CANARY-s3cr3t-7f1e"


def spend(engine, book, day: date, cents: int, model=SUPPORT, project="proj_a"):
    """Post usage costing `cents`: fine-tuned output is $1.20 per 1M tokens."""
    assert cents % 3 == 0
    start = day_start(day)
    key = UsageKey("test", start, start + 86400, model, project)
    with engine.begin() as conn:
        post_usage(
            conn, {key: UsageObservation(key, 1, 0, 0, cents * 25_000 // 3)}, book, now=start
        )


def write_budgets(config_dir, webhook_url: str, *, amount="1.20", period="monthly", **extra):
    models = extra.get("models", [])
    config_dir.joinpath("budgets.toml").write_text(
        f"""
[[channel]]
name = "ops"
type = "webhook"
url = "${{OPS_HOOK}}"

[[budget]]
name = "support"
amount = "{amount}"
period = "{period}"
models = {json.dumps(models)}
projects = {json.dumps(extra.get("projects", []))}
thresholds = {json.dumps(extra.get("thresholds", [50, 80, 100]))}
forecast_thresholds = {json.dumps(extra.get("forecast", [90] if period != "daily" else []))}
channels = ["ops"]
""",
        encoding="utf-8",
    )


@pytest.fixture
def hook(monkeypatch):
    def use(url: str) -> None:
        monkeypatch.setenv("OPS_HOOK", url)

    return use


def alerts_of(receiver) -> list[tuple[str, str, int]]:
    return sorted(
        (r.json()["period"], r.json()["kind"], r.json()["threshold"]) for r in receiver.accepted
    )


def seed_85_percent(engine, book):
    # $1.02 of a $1.20 budget (85%), spread over 1-9 November.
    for day, cents in zip(range(1, 10), [12, 12, 12, 12, 12, 12, 12, 12, 6], strict=True):
        if cents:
            spend(engine, book, date(2026, 11, day), cents)


def test_crossed_thresholds_alert_once_each_even_when_the_first_delivery_fails(
    engine, book, config_dir, hook
):
    seed_85_percent(engine, book)
    settings = load_settings()
    with http_receiver(fail_first=1) as rx:
        hook(rx.url)
        write_budgets(config_dir, rx.url)
        first = run_budget_check(engine, settings, book, now=NOW)
        assert [(b, p, k, str(t)) for b, p, k, t in first.decided] == [
            ("support", "2026-11", "actual", "50"),
            ("support", "2026-11", "actual", "80"),
            ("support", "2026-11", "forecast", "90"),
        ]
        assert [d.status for d in first.deliveries] == ["failed", "delivered", "delivered"]
        assert first.failed[0].error == "webhook channel 'ops': HTTP 500"
        second = run_budget_check(engine, settings, book, now=NOW + timedelta(minutes=5))
        assert second.decided == []
        assert [(d.kind, d.status, d.attempts) for d in second.deliveries] == [
            ("actual", "delivered", 2)
        ]
        for minutes in (10, 60, 600):
            later = run_budget_check(engine, settings, book, now=NOW + timedelta(minutes=minutes))
            assert later.decided == [] and later.deliveries == []
    assert alerts_of(rx) == [
        ("2026-11", "actual", 50),
        ("2026-11", "actual", 80),
        ("2026-11", "forecast", 90),
    ]
    # the retry carried the same idempotency key as the failed attempt
    failed, *_, retried = rx.requests
    assert failed.answered == 500 and retried.answered == 200
    assert failed.headers["Idempotency-Key"] == retried.headers["Idempotency-Key"]
    assert len({r.headers["Idempotency-Key"] for r in rx.accepted}) == 3
    payload = rx.accepted[0].json()
    assert payload["spend"] == "1.020000" and payload["amount"] == "1.200000"
    assert payload["idempotency_key"] == rx.accepted[0].headers["Idempotency-Key"]


def test_a_receiver_down_for_a_while_gets_everything_once_it_recovers(
    engine, book, config_dir, hook
):
    seed_85_percent(engine, book)
    settings = load_settings()
    with http_receiver() as rx:
        rx.down = True
        hook(rx.url)
        write_budgets(config_dir, rx.url)
        for hour in range(3):
            result = run_budget_check(engine, settings, book, now=NOW + timedelta(hours=hour))
            assert len(result.failed) == 3
        rx.down = False
        recovered = run_budget_check(engine, settings, book, now=NOW + timedelta(hours=3))
        assert [(d.status, d.attempts) for d in recovered.deliveries] == [("delivered", 4)] * 3
        assert (
            run_budget_check(engine, settings, book, now=NOW + timedelta(hours=4)).deliveries == []
        )
    assert len(rx.requests) == 12 and len(rx.accepted) == 3


def test_downward_revision_and_a_new_period(engine, book, config_dir, hook):
    seed_85_percent(engine, book)
    settings = load_settings()
    with http_receiver() as rx:
        hook(rx.url)
        write_budgets(config_dir, rx.url, forecast=[])
        run_budget_check(engine, settings, book, now=NOW)
        # the usage of 1 November is revised down to nothing: nothing re-sent, nothing deleted
        start = day_start(date(2026, 11, 1))
        key = UsageKey("test", start, start + 86400, SUPPORT, "proj_a")
        with engine.begin() as conn:
            post_usage(conn, {key: UsageObservation(key, 1, 0, 0, 0)}, book, now=start)
        assert run_budget_check(engine, settings, book, now=NOW).deliveries == []
        # December starts clean; November keeps its alerts
        spend(engine, book, date(2026, 12, 1), 60)
        december = run_budget_check(
            engine, settings, book, now=datetime(2026, 12, 1, 9, tzinfo=UTC)
        )
        assert [(p, k, str(t)) for _, p, k, t in december.decided] == [("2026-12", "actual", "50")]
    assert alerts_of(rx) == [
        ("2026-11", "actual", 50),
        ("2026-11", "actual", 80),
        ("2026-12", "actual", 50),
    ]
    with engine.connect() as conn:
        assert conn.execute(select(AlertDecision.period)).scalars().all().count("2026-11") == 2


def test_weekly_and_daily_periods(engine, book, config_dir, hook):
    settings = load_settings()
    with http_receiver() as rx:
        hook(rx.url)
        # weekly: Monday 23 to Sunday 29 November 2026 is 2026-W48
        write_budgets(config_dir, rx.url, period="weekly", thresholds=[100], forecast=[100])
        spend(engine, book, date(2026, 11, 22), 120)  # Sunday of W47: not this week
        for day in (23, 24, 25):
            spend(engine, book, date(2026, 11, day), 24)
        thursday = datetime(2026, 11, 26, 8, tzinfo=UTC)
        result = run_budget_check(engine, settings, book, now=thursday)
        (status,) = result.statuses
        assert status.period.label == "2026-W48" and status.spend == 72 * 10**10
        assert status.forecast is not None and status.forecast.point == 7 * 24 * 10**10
        assert status.crosses_on == date(2026, 11, 27)  # 0.24/day reaches 1.20 on day 5
        assert [(k, str(t)) for _, _, k, t in result.decided] == [("forecast", "100")]
        # daily: only today's spend counts, and yesterday's alerts stay with yesterday
        write_budgets(config_dir, rx.url, period="daily", amount="0.24", thresholds=[100])
        day1 = run_budget_check(engine, settings, book, now=datetime(2026, 11, 24, 23, tzinfo=UTC))
        day2 = run_budget_check(engine, settings, book, now=datetime(2026, 11, 25, 1, tzinfo=UTC))
        nothing = run_budget_check(
            engine, settings, book, now=datetime(2026, 11, 26, 1, tzinfo=UTC)
        )
        assert [p for _, p, _, _ in day1.decided + day2.decided] == ["2026-11-24", "2026-11-25"]
        assert nothing.decided == [] and nothing.statuses[0].spend == 0
    assert alerts_of(rx) == [
        ("2026-11-24", "actual", 100),
        ("2026-11-25", "actual", 100),
        ("2026-W48", "forecast", 100),
    ]


def test_glob_scopes_projects_and_training_fees(engine, book, config_dir, hook):
    settings = load_settings()
    spend(engine, book, date(2026, 11, 2), 60)  # support, proj_a
    spend(engine, book, date(2026, 11, 2), 120, model=LEGAL)  # another family
    spend(engine, book, date(2026, 11, 2), 120, project="proj_b")  # support, other project
    spend(engine, book, date(2026, 11, 2), 120, model=SUPPORT + ":ckpt-step-88")
    job = JobObservation(
        "ftjob-1", "gpt-4o-mini-2024-07-18", SUPPORT, "succeeded", "supervised", 3,
        100_000, day_start(date(2026, 11, 3)), day_start(date(2026, 11, 3)) + 60, project="proj_a",
    )  # fmt: skip
    with engine.begin() as conn:
        assert post_training_fee(conn, job, book).cost_pico == 300_000_000_000  # $0.30
    with http_receiver() as rx:
        hook(rx.url)
        write_budgets(
            config_dir,
            rx.url,
            amount="3.00",
            models=["ft:gpt-4o-mini-2024-07-18:acme:support:*"],
            projects=["proj_a"],
            thresholds=[10, 70],
            forecast=[],
        )
        (status,) = run_budget_check(engine, settings, book, now=NOW).statuses
    # support 0.60 + its checkpoint 1.20 + training 0.30 = 2.10 of 3.00: 70%
    assert status.spend == 210 * 10**10 and str(status.used) == "70.00"
    assert alerts_of(rx) == [("2026-11", "actual", 10), ("2026-11", "actual", 70)]


def test_two_concurrent_checks_alert_once(engine, db_url, book, config_dir, hook):
    seed_85_percent(engine, book)
    settings = load_settings()
    with http_receiver() as rx:
        hook(rx.url)
        write_budgets(config_dir, rx.url)
        engines = [open_engine(db_url) for _ in range(2)]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def check(eng):
            try:
                barrier.wait()
                run_budget_check(eng, settings, book, now=NOW)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=check, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e in engines:
            e.dispose()
    assert errors == []
    assert len(rx.requests) == 3 and len(alerts_of(rx)) == 3


def test_webhook_url_never_reaches_the_database_logs_or_output(
    engine, book, config_dir, hook, cli, caplog
):
    seed_85_percent(engine, book)
    url = f"http://127.0.0.1:{free_port()}/hooks/{CANARY}"
    hook(url)
    write_budgets(config_dir, url)
    with caplog.at_level(logging.DEBUG):
        result = run_budget_check(engine, load_settings(), book, now=NOW)
        run = cli("budgets", "check", "--now", "2026-11-10T13:00:00Z", "--format", "json")
    assert len(result.failed) == 3 and run.exit_code == 1
    assert "failed; they are retried at the next check" in run.stderr
    assert json.loads(run.stdout)["rows"][0]["error"] == "webhook channel 'ops': connection refused"
    with engine.connect() as conn:
        rows = [
            repr(tuple(row))
            for table in ("alert_decisions", "alert_deliveries")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        ]
        assert conn.execute(select(AlertDelivery.attempts)).scalars().all() == [2, 2, 2]
    for where in (*rows, caplog.text, run.stdout, run.stderr, repr(result)):
        assert CANARY not in where and "127.0.0.1" not in where


def test_status_and_forecast_commands(engine, book, config_dir, hook, cli):
    seed_85_percent(engine, book)
    spend(engine, book, date(2026, 11, 5), 120, model=LEGAL)
    with http_receiver() as rx:
        hook(rx.url)
        write_budgets(config_dir, rx.url, models=["*:support:*"])
        assert cli("budgets", "check", "--now", "2026-11-10T12:00:00Z").exit_code == 0
    # status needs no secret: the variable is gone
    hook("")
    status = cli("budgets", "status", "--now", "2026-11-10T12:00:00Z", "--format", "json")
    assert status.exit_code == 0, status.stderr
    (row,) = json.loads(status.stdout)["rows"]
    assert row["spend"] == "1.020000" and row["used_percent"] == "85.00"
    assert row["method"] == "run-rate" and row["crosses_on"] == "2026-11-11"
    assert [(a["kind"], a["threshold"], a["state"]) for a in row["alerted"]] == [
        ("actual", "50", "delivered"),
        ("actual", "80", "delivered"),
        ("forecast", "90", "delivered"),
    ]
    forecast = cli("forecast", "--month", "2026-11", "--now", "2026-11-10T12:00:00Z", "-f", "json")
    assert forecast.exit_code == 0, forecast.stderr
    doc = json.loads(forecast.stdout)
    assert doc["kind"] == "forecast" and doc["month"] == "2026-11"
    rows = {(r["kind"], r["name"]): r for r in [*doc["rows"], doc["totals"]]}
    assert set(rows) == {
        ("model", LEGAL),
        ("model", SUPPORT),
        ("total", "TOTAL"),
        ("budget", "support"),
    }
    assert rows[("total", "TOTAL")]["spend"] == "2.220000"
    assert rows[("budget", "support")]["crosses_on"] == "2026-11-11"
    past = cli("forecast", "--month", "2026-10", "--now", "2026-11-10T12:00:00Z", "-f", "csv")
    assert past.stdout.splitlines()[1].startswith("total,TOTAL,0.000000,0.000000")
    bad = cli("forecast", "--month", "2026-13")
    assert bad.exit_code == 2 and "is not a month" in bad.stderr


def test_a_claim_held_by_a_crashed_checker_is_retried_after_its_lease(
    engine, book, config_dir, hook
):
    seed_85_percent(engine, book)
    settings = load_settings()
    with http_receiver() as rx:
        rx.down = True
        hook(rx.url)
        write_budgets(config_dir, rx.url)
        run_budget_check(engine, settings, book, now=NOW)
        rx.down = False
        # another checker claimed every delivery at NOW and then died before marking them
        with engine.begin() as conn:
            conn.execute(
                update(AlertDelivery).values(claimed_by="dead", claimed_at=int(NOW.timestamp()))
            )
        held = run_budget_check(engine, settings, book, now=NOW + timedelta(minutes=1))
        assert {d.status for d in held.deliveries} == {"skipped"} and rx.accepted == []
        after = run_budget_check(engine, settings, book, now=NOW + timedelta(minutes=6))
        assert [d.status for d in after.deliveries] == ["delivered"] * 3
    assert len(alerts_of(rx)) == 3


def test_an_unset_secret_disables_that_channel_only(
    engine, book, config_dir, hook, cli, monkeypatch
):
    seed_85_percent(engine, book)
    with http_receiver() as rx:
        hook("")  # OPS_HOOK is empty: the "ops" webhook is disabled
        monkeypatch.setenv("TEAM_HOOK", rx.url + "/team")
        config_dir.joinpath("budgets.toml").write_text(
            """
[[channel]]
name = "ops"
type = "webhook"
url = "${OPS_HOOK}"

[[channel]]
name = "team"
type = "webhook"
url = "${TEAM_HOOK}"

[[budget]]
name = "support"
amount = "1.20"
thresholds = [80]
channels = ["ops", "team"]
""",
            encoding="utf-8",
        )
        run = cli("budgets", "check", "--now", "2026-11-10T12:00:00Z", "-f", "json")
        assert run.exit_code == 1  # a delivery failed: the disabled channel's
        assert "environment variable OPS_HOOK is empty: channel 'ops' is disabled" in run.stderr
        assert "Traceback" not in run.stderr
        rows = {r["channel"]: r for r in json.loads(run.stdout)["rows"]}
        assert rows["team"]["status"] == "delivered"  # the other channel still works
        assert rows["ops"]["status"] == "failed"
        assert rows["ops"]["error"] == (
            "channel 'ops' is disabled: channel[0].url: environment variable OPS_HOOK is empty"
        )
        assert [r.path for r in rx.accepted] == ["/hook/team"]
        hook(rx.url + "/ops")  # set it: the waiting alert goes out at the next check
        again = cli("budgets", "check", "--now", "2026-11-10T12:05:00Z", "-f", "json")
        assert again.exit_code == 0, again.stderr
        assert sorted(r.path for r in rx.accepted) == ["/hook/ops", "/hook/team"]


def test_people_get_one_message_naming_every_threshold_crossed_at_once(
    engine, book, config_dir, monkeypatch
):
    import email
    import email.policy

    from alert_receivers import smtp_server

    seed_85_percent(engine, book)
    spend(engine, book, date(2026, 11, 9), 3, model=LEGAL)  # a second model, smaller
    spend(engine, book, date(2026, 11, 9), 3, model="mystery-model-2099")  # no price
    config_dir.joinpath("ledger.toml").write_text(
        '[http]\npublic_url = "https://ledger.acme.test/"\n', encoding="utf-8"
    )
    with http_receiver() as rx, smtp_server() as (port, mails):
        monkeypatch.setenv("SLACK_HOOK", rx.url + "/slack")
        monkeypatch.setenv("OPS_HOOK", rx.url + "/ops")
        config_dir.joinpath("budgets.toml").write_text(
            f"""
[[channel]]
name = "slack"
type = "slack"
url = "${{SLACK_HOOK}}"

[[channel]]
name = "mail"
type = "email"
to = ["cfo@acme.test"]
smtp_url = "smtp://127.0.0.1:{port}"

[[channel]]
name = "ops"
type = "webhook"
url = "${{OPS_HOOK}}"

[[budget]]
name = "support"
amount = "1.20"
thresholds = [50, 80]
forecast_thresholds = [90]
channels = ["slack", "mail", "ops"]
""",
            encoding="utf-8",
        )
        result = run_budget_check(engine, load_settings(), book, now=NOW)
        assert len(result.decided) == 3 and not result.failed
        assert len(result.delivered) == 9  # every (threshold, channel) is marked delivered
        slack = [r.json() for r in rx.accepted if r.path == "/hook/slack"]
        hooks = [r.json() for r in rx.accepted if r.path == "/hook/ops"]
    assert len(slack) == 1 and len(mails) == 1  # people: one message for three thresholds
    assert len(hooks) == 3  # machines: one document per decision, its own idempotency key
    text = slack[0]["text"]
    first, *rest = text.splitlines()
    assert first.startswith(
        "Budget support is at 87.5 % of $1.20 in 2026-11 "
        "(thresholds 50 %, 80 % and forecast 90 %): spent $1.05"
    )
    assert f"Top models: {SUPPORT} $1.02, {LEGAL} $0.03." in rest
    assert "Unpriced models (their cost is not counted): mystery-model-2099." in rest
    assert "Details: https://ledger.acme.test/" in rest
    message = email.message_from_bytes(mails[0].content, policy=email.policy.default)
    assert " ".join(message["Subject"].split()) == (
        "[ftledger] support: spend at 87.5 % of $1.20 "
        "(2026-11, thresholds 50 %, 80 % and forecast 90 %)"
    )
    body = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert body.get_content().startswith(first)  # readable text, the JSON only attached
    for hook in hooks:
        assert hook["currency"] == "USD" and hook["evaluated_at"] == "2026-11-10T12:00:00Z"
        assert hook["unpriced_models"] == ["mystery-model-2099"]
        assert hook["top_models"][0] == {"model": SUPPORT, "spend": "1.020000"}
        assert hook["link"] == "https://ledger.acme.test/"
