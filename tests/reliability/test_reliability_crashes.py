"""Crashes: a poll SIGKILLed at seeded random moments, and an alert check killed mid-delivery.

Both run the real CLI in child processes against the sandbox over loopback (polls) or a
loopback webhook receiver (alerts), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from alert_receivers import http_receiver
from reliability_helpers import (
    POLL_ARGS,
    child_env,
    entry_counts,
    ftledger,
    ledger_toml,
    snapshot,
    worker,
)
from sqlalchemy import create_engine, select
from sync_helpers import NOW, SINCE_TS, ledger_usage, sandbox, true_usage
from test_budgets_alerts import NOW as ALERT_NOW
from test_budgets_alerts import seed_85_percent, write_budgets

from ledger.store.tables import AlertDecision, AlertDelivery
from ledger.sync import USAGE_SOURCE, read_watermark

KILLS = 4
HOUR = 3600
SEED = 20250615


def _reference(cli, sb, monkeypatch, tmp_path: Path) -> dict:
    """The ledger an uninterrupted `ftledger poll` writes (its own SQLite file)."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    for name, value in sb.env.items():
        monkeypatch.setenv(name, value)
    done = cli("--db", url, *POLL_ARGS)
    assert done.exit_code == 0, done.stderr
    eng = create_engine(url)
    try:
        return snapshot(eng)
    finally:
        eng.dispose()


@pytest.mark.slow
def test_a_poll_killed_repeatedly_at_random_moments_then_rerun_equals_an_uninterrupted_one(
    engine, book, cli, config_dir, db_url, tmp_path, monkeypatch
):
    rng = random.Random(SEED)
    with sandbox(days=4) as sb:
        ledger_toml(config_dir, sb.server.base_url, window_days=1, lookback_days=1)
        reference = _reference(cli, sb, monkeypatch, tmp_path)
        # Slow every endpoint so the child spends its time in reads AND writes; the jobs
        # pages, read last, so slowly that no poll can finish inside the kill window,
        # however much earlier polls already wrote (else a fast machine ends it first).
        for endpoint in ("usage", "costs"):
            sb.server.faults.slow(endpoint, 0.12, times=-1)
        sb.server.faults.slow("jobs", 1.0, times=-1)
        env = child_env(db_url, config_dir, sb.env)
        moments = []
        for _ in range(KILLS):
            moment = rng.uniform(0.9, 2.2)  # after start-up, before the end
            moments.append(round(moment, 2))
            proc = worker([*POLL_ARGS], env)
            time.sleep(moment)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            assert proc.returncode == -signal.SIGKILL, f"ended before the kill at {moment}s: {err}"
            # after every kill: the ledger is exactly the truth up to its watermark
            position = read_watermark(engine, USAGE_SOURCE).position
            # (the last window ends with the partial bucket holding `now`)
            upto = NOW + HOUR if position == NOW - NOW % HOUR else position
            held = true_usage(sb.org, book, SINCE_TS, upto) if position else {}
            assert ledger_usage(engine) == held, moments
        sb.server.faults.clear()
        done = ftledger([*POLL_ARGS], env)
        assert done.returncode == 0, done.stderr
    after = snapshot(engine)
    assert after == reference, moments
    # sanity: one entry per usage key (no revision happened), one fee per finished job
    assert all(v[-1] == 1 for v in after["usage"].values())
    counts = entry_counts(engine)
    assert counts["usage_entries"] == len(reference["usage"]) > 100
    assert counts["training_fees"] == len(reference["fees"]) > 0
    assert counts["fine_tuning_jobs"] == len(reference["jobs"])


def _alert_state(engine):
    with engine.connect() as conn:
        decisions = conn.execute(
            select(AlertDecision.kind, AlertDecision.threshold, AlertDecision.idempotency_key)
        ).all()
        deliveries = conn.execute(
            select(AlertDelivery.status, AlertDelivery.attempts, AlertDelivery.claimed_by)
        ).all()
    return sorted(decisions), sorted(deliveries, key=str)


def test_a_crash_between_deciding_and_delivering_an_alert_delivers_it_once_after_restart(
    engine, book, cli, config_dir, db_url, monkeypatch
):
    seed_85_percent(engine, book)
    with http_receiver() as rx:
        monkeypatch.setenv("OPS_HOOK", rx.url)
        write_budgets(config_dir, rx.url)
        env = child_env(db_url, config_dir, {"OPS_HOOK": rx.url})
        at = ALERT_NOW.isoformat()
        # the process dies the moment it would send the first alert
        crashed = worker(["budgets", "check", "--now", at], env, mode="kill-on-deliver")
        crashed.communicate(timeout=60)
        assert crashed.returncode == -signal.SIGKILL
        assert rx.requests == []
        decisions, deliveries = _alert_state(engine)
        assert len(decisions) == 3  # the decisions were recorded before the crash
        assert [d.status for d in deliveries] == ["pending"] * 3
        assert sum(d.claimed_by is not None for d in deliveries) == 1  # the one in flight

        # restarted soon: the two never claimed go out; the claimed one waits for its lease
        # (restarts run in-process: a new AppContext and engine, as a new process has)
        soon = cli("budgets", "check", "--now", at)
        assert soon.exit_code == 0, soon.stderr
        assert len(rx.accepted) == 2
        # after the lease: the crashed delivery goes out, once, with the decision's key
        later = (ALERT_NOW + timedelta(minutes=6)).isoformat()
        for _ in range(2):
            again = cli("budgets", "check", "--now", later)
            assert again.exit_code == 0, again.stderr
    keys = [r.headers["Idempotency-Key"] for r in rx.accepted]
    decisions, deliveries = _alert_state(engine)
    assert sorted(keys) == sorted(d.idempotency_key for d in decisions)  # each once
    assert [r.json()["idempotency_key"] for r in rx.accepted] == keys
    assert [(d.status, d.attempts) for d in deliveries] == [("delivered", 1)] * 3
    assert len(decisions) == 3 and entry_counts(engine)["alert_decisions"] == 3


def test_a_sender_killed_while_the_receiver_stalls_resends_under_the_same_key(
    engine, book, cli, config_dir, db_url, monkeypatch
):
    seed_85_percent(engine, book)
    with stalling_receiver() as rx:
        monkeypatch.setenv("OPS_HOOK", rx.url)
        write_budgets(config_dir, rx.url, thresholds=[50], forecast=[])
        env = child_env(db_url, config_dir, {"OPS_HOOK": rx.url})
        proc = worker(["budgets", "check", "--now", ALERT_NOW.isoformat()], env)
        assert rx.arrived.wait(30), "the alert never reached the receiver"
        proc.send_signal(signal.SIGKILL)  # while the receiver holds the request
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        rx.release.set()
        decisions, deliveries = _alert_state(engine)
        assert [(d.status, d.attempts) for d in deliveries] == [("pending", 0)]
        later = (ALERT_NOW + timedelta(minutes=6)).isoformat()
        for _ in range(2):
            done = cli("budgets", "check", "--now", later)
            assert done.exit_code == 0, done.stderr
    decisions, deliveries = _alert_state(engine)
    assert [(d.status, d.attempts) for d in deliveries] == [("delivered", 1)]
    assert len(decisions) == 1
    # the receiver saw the alert twice (the first answer never reached the sender), both
    # times under the decision's key, so it can drop the repeat
    assert rx.keys == [decisions[0].idempotency_key] * 2


class _Stalling:
    def __init__(self) -> None:
        self.url = ""
        self.keys: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()


@contextmanager
def stalling_receiver() -> Iterator[_Stalling]:
    """A webhook that holds its first request until released, then answers 200."""
    rx = _Stalling()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rx.keys.append(self.headers["Idempotency-Key"])
            if len(rx.keys) == 1:
                rx.arrived.set()
                rx.release.wait(30)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rx.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rx
    finally:
        rx.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
