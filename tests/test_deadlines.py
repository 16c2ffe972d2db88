"""Wall-clock deadlines: a trickling upstream or alert channel cannot hold a poll, a
budget check or `ftledger serve` beyond its deadline (issue 12, items 4 and 5).

The servers here trickle: headers at once, then one byte every two seconds, for ever.
Every read returns within the per-read timeout, so only a deadline can end them.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alert_receivers import http_receiver
from reliability_helpers import child_env, ledger_toml
from sqlalchemy import select
from sync_helpers import NOW, SINCE, ledger_usage, sandbox, true_usage
from trickle import trickling_proxy

from ledger.budgets import Channel
from ledger.config_file import parse_ledger_config
from ledger.deadline import Deadline, bounded_call
from ledger.errors import DeadlineExceeded, DeliveryError, Interrupted, SettingsError
from ledger.notify import Alert, deliver
from ledger.period import day_start
from ledger.store.ledger import post_usage
from ledger.store.tables import AlertDelivery
from ledger.sync import COSTS_SOURCE, USAGE_SOURCE, poll_lock, read_watermark, read_watermarks

RATE = 0.5  # bytes per second
SLACK = 3.0  # seconds: thread hand-over, closing clients, recording the failure


def test_bounded_call_returns_reraises_and_gives_up_on_time():
    assert bounded_call(lambda: 42, Deadline(5), "adding") == 42
    with pytest.raises(ZeroDivisionError):
        bounded_call(lambda: 1 / 0, Deadline(5), "dividing")
    abandoned = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"^deadline of 0.5 s exceeded waiting$"):
        bounded_call(lambda: time.sleep(30), Deadline(0.5), "waiting", abandon=abandoned.set)
    assert time.monotonic() - started < 1.5
    assert abandoned.is_set()
    with pytest.raises(Interrupted):
        bounded_call(lambda: time.sleep(30), Deadline(60), "waiting", stop=lambda: True)
    with pytest.raises(DeadlineExceeded, match="exceeded before waiting"):
        bounded_call(lambda: 1, Deadline(0), "waiting")


def test_deadline_settings_are_validated_like_the_others():
    config = parse_ledger_config(
        {"poll": {"source_deadline_seconds": 2, "deadline_seconds": 7.5}}, source="t"
    )
    assert (config.source_deadline_seconds, config.deadline_seconds) == (2.0, 7.5)
    with pytest.raises(SettingsError) as caught:
        parse_ledger_config(
            {"poll": {"source_deadline_seconds": 0, "deadline_seconds": "soon"}}, source="t"
        )
    assert [str(p) for p in caught.value.problems] == [
        "t: poll.deadline_seconds: must be a number",
        "t: poll.source_deadline_seconds: must be more than 0 and at most 86400",
    ]


# --- item 4: a trickling upstream -------------------------------------------------------


def test_a_trickling_source_fails_at_its_deadline_and_the_others_complete(engine, book):
    with sandbox(days=2) as sb, trickling_proxy(sb.server.base_url, ("usage",), RATE) as tr:
        sb.config = dataclasses.replace(
            sb.config,
            base_url=tr.base_url,
            timeout_seconds=2.0,
            source_deadline_seconds=3.0,
            deadline_seconds=60.0,
        )
        started = time.monotonic()
        report = sb.poll(engine, book)
        took = time.monotonic() - started
        assert tr.started >= 1
        errors = {s.source: s.error for s in report.sources}
        assert errors[USAGE_SOURCE] == (
            "deadline of 3 s exceeded reading usage 2025-06-11T00:00:00Z..2025-06-15T16:00:00Z"
        )
        assert [e for name, e in errors.items() if name != USAGE_SOURCE] == [None] * 4
        assert took < 3.0 + SLACK + 2.0  # + the healthy sources
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.position is None and mark.consecutive_failures == 1
        assert mark.last_error == errors[USAGE_SOURCE]
        assert ledger_usage(engine) == {}  # the abandoned window wrote nothing

        tr.endpoints.clear()  # the upstream recovers: the next poll completes
        report = sb.poll(engine, book)
        assert report.failed == []
        assert ledger_usage(engine) == true_usage(sb.org, book, sb.org.start, NOW + 3600)


def test_the_whole_polls_deadline_bounds_every_source_together(engine, book):
    everything = ("usage", "costs", "jobs")
    with sandbox(days=2) as sb, trickling_proxy(sb.server.base_url, everything, RATE) as tr:
        sb.config = dataclasses.replace(
            sb.config,
            base_url=tr.base_url,
            timeout_seconds=2.0,
            source_deadline_seconds=2.0,
            deadline_seconds=3.0,
        )
        started = time.monotonic()
        report = sb.poll(engine, book)
        took = time.monotonic() - started
    assert took < 3.0 + SLACK
    errors = [s.error or "" for s in report.sources]
    assert errors[0].startswith("deadline of 2 s exceeded reading usage")
    assert errors[1].startswith("the poll's deadline of 3 s exceeded reading costs")
    assert errors[2:] == [
        f"the poll's deadline of 3 s exceeded before reading jobs of project {p}"
        for p in ("support", "legal", "research")
    ]
    assert all(m.consecutive_failures == 1 for m in read_watermarks(engine))


def test_ftledger_poll_against_a_trickling_upstream_ends_on_time_and_frees_the_lock(
    engine, db_url, tmp_path
):
    config_dir = tmp_path / "child-config"
    with sandbox(days=2, now=NOW) as sb, trickling_proxy(sb.server.base_url, ("usage",)) as tr:
        toml = ledger_toml(config_dir, tr.base_url, timeout=2, window_days=3, lookback_days=1)
        text = toml.read_text("utf-8").replace(
            "[poll]\n", "[poll]\nsource_deadline_seconds = 4\ndeadline_seconds = 30\n"
        )
        toml.write_text(text, "utf-8")
        env = child_env(db_url, config_dir, sb.env)
        args = ["poll", "--now", str(NOW), "--since", str(SINCE), "--no-alerts"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while tr.started == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert tr.started, "the poll never reached the trickling endpoint"
            if engine.dialect.name == "postgresql":
                with poll_lock(engine) as acquired:
                    assert not acquired  # the trickled poll holds it meanwhile
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert tr.first_at is not None
        took = time.monotonic() - tr.first_at  # from the first trickled byte to the exit
        print(f"\nftledger poll against a {RATE} B/s upstream: {took:.1f}s (deadline 4 s)")
        assert proc.returncode == 1, err
        assert "openai.usage: deadline of 4 s exceeded reading usage" in err
        assert took < 4 + SLACK + 2  # + the healthy sources after it
        if engine.dialect.name == "postgresql":
            with poll_lock(engine) as acquired:
                assert acquired  # a second poller takes the lock right after
        status = subprocess.run(
            [sys.executable, "-m", "ledger", "status", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    rows = {r["source"]: r for r in json.loads(status.stdout)["rows"]}
    assert rows[USAGE_SOURCE]["failures"] == 1
    assert rows[USAGE_SOURCE]["last_error"].startswith("deadline of 4 s exceeded reading usage")
    assert rows[COSTS_SOURCE]["last_error"] is None


# --- item 5: a trickling alert channel --------------------------------------------------

ALERT = Alert(
    "b", "2026-11", "actual", Decimal(80), Decimal(1), Decimal(1), None, idempotency_key="k" * 64
)


def test_a_trickling_webhook_fails_the_attempt_at_its_deadline():
    with http_receiver() as rx:
        rx.trickle = RATE
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            deliver(Channel("ops", "webhook", url=rx.url, deadline_seconds=1.5), ALERT, timeout=10)
        took = time.monotonic() - started
    assert took < 1.5 + 1.0
    assert str(caught.value) == (
        "webhook channel 'ops': no complete answer within its deadline of 1.5 s"
    )
    assert len(rx.requests) == 1


def test_a_trickling_smtp_server_fails_the_attempt_at_its_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def greet_slowly() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"220 slowly\r\n" * 100:
                if stop.wait(1 / RATE):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    threading.Thread(target=greet_slowly, daemon=True).start()
    channel = Channel(
        "cfo", "email", to=("a@b.c",), smtp_url=f"smtp://127.0.0.1:{port}", deadline_seconds=1.5
    )
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="no complete answer within its deadline"):
            deliver(channel, ALERT, timeout=10)
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - started < 1.5 + 1.0


def _budget_over_spent(engine, book, config_dir, *, deadline: float) -> None:
    """A spent budget with one webhook channel (its URL in $OPS_HOOK)."""
    start = day_start(datetime.now(UTC).date())
    from ledger.domain import UsageKey, UsageObservation

    key = UsageKey("test", start, start + 86400, "ft:gpt-4o-mini-2024-07-18:acme:s:A1", "p")
    with engine.begin() as conn:
        post_usage(conn, {key: UsageObservation(key, 1, 0, 0, 10_000_000)}, book, now=start)
    config_dir.mkdir(parents=True, exist_ok=True)
    config_dir.joinpath("budgets.toml").write_text(
        f"""
[[channel]]
name = "ops"
type = "webhook"
url = "${{OPS_HOOK}}"
deadline_seconds = {deadline}

[[budget]]
name = "team"
amount = "1.00"
period = "monthly"
thresholds = [100]
channels = ["ops"]
""",
        encoding="utf-8",
    )


def _deliveries(engine) -> list[tuple[str, int, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(AlertDelivery.status, AlertDelivery.attempts, AlertDelivery.last_error)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_budgets_check_with_a_trickling_webhook_ends_on_time_and_retries_later(
    engine, book, db_url, tmp_path
):
    config_dir = tmp_path / "child-config"
    _budget_over_spent(engine, book, config_dir, deadline=2)
    with http_receiver() as rx:
        rx.trickle = RATE
        env = child_env(db_url, config_dir, {"OPS_HOOK": rx.url})
        result = subprocess.run(
            [sys.executable, "-m", "ledger", "budgets", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - rx.requests[0].at  # from the request to the exit
        print(f"\nbudgets check against a trickling webhook: {took:.1f}s (deadline 2 s)")
        assert result.returncode == 1, result.stderr
        assert took < 2 + SLACK
        assert _deliveries(engine) == [
            ("pending", 1, "webhook channel 'ops': no complete answer within its deadline of 2 s")
        ]
        rx.trickle = 0  # the receiver recovers: the next check delivers, under the same key
        again = subprocess.run(
            [sys.executable, "-m", "ledger", "budgets", "check"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert again.returncode == 0, again.stderr
    assert _deliveries(engine) == [("delivered", 2, None)]
    assert [r.headers["Idempotency-Key"] for r in rx.requests] == [
        rx.requests[0].headers["Idempotency-Key"]
    ] * 2


# --- item 5: serve stops within 10 s of SIGTERM -----------------------------------------


def _serve(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", "--every-seconds", "1", "--no-http", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(predicate, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[str]) -> tuple[float, str]:
    """SIGTERM; seconds until the process exited, and its stderr."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - sent, err


@pytest.mark.slow
def test_serve_stops_within_10s_of_sigterm_during_a_trickling_poll(engine, db_url, tmp_path):
    config_dir = tmp_path / "child-config"
    now = int(time.time())
    with sandbox(days=2, now=now) as sb, trickling_proxy(sb.server.base_url, ("usage",)) as tr:
        ledger_toml(config_dir, tr.base_url, timeout=2, window_days=3, lookback_days=1)
        proc = _serve(child_env(db_url, config_dir, sb.env), "--no-alerts")
        try:
            assert _wait(lambda: tr.started >= 1), "serve never reached the trickling endpoint"
            time.sleep(1.0)  # well inside the trickled read
        finally:
            took, err = _stop(proc)
        print(f"\nserve stopped {took:.1f}s after SIGTERM during a trickling poll")
        assert proc.returncode == 0, err
        assert took < 10
        assert "stopped" in err
        assert "work still running" not in err  # the poll let go by itself, in time
        if engine.dialect.name == "postgresql":
            with poll_lock(engine) as acquired:
                assert acquired  # released, not left to a dying session
    # an interrupted read is not a failure of the source
    assert read_watermark(engine, USAGE_SOURCE).consecutive_failures == 0


@pytest.mark.slow
def test_serve_keeps_polling_during_a_trickling_delivery_and_stops_within_10s(
    engine, book, db_url, tmp_path
):
    config_dir = tmp_path / "child-config"
    now = int(time.time())
    _budget_over_spent(engine, book, config_dir, deadline=60)
    with sandbox(days=1, now=now) as sb, http_receiver() as rx:
        rx.trickle = RATE
        ledger_toml(config_dir, sb.server.base_url, timeout=2, window_days=3, lookback_days=0)
        env = child_env(db_url, config_dir, {**sb.env, "OPS_HOOK": rx.url})
        proc = _serve(env)
        try:
            assert _wait(lambda: len(rx.requests) >= 1), "serve never delivered the alert"
            polls = sb.server.requests["jobs"]
            # the delivery trickles for up to 60 s; polls go on every second meanwhile
            assert _wait(lambda: sb.server.requests["jobs"] >= polls + 6, timeout=15)
        finally:
            took, err = _stop(proc)
        print(f"\nserve stopped {took:.1f}s after SIGTERM during a trickling delivery")
    assert proc.returncode == 0, err
    assert took < 10
    # the attempt in flight failed and stays pending: a later check sends it again
    assert _deliveries(engine) == [
        ("pending", 1, "webhook channel 'ops': interrupted: ftledger is stopping")
    ]
