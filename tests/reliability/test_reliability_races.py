"""Races between processes: two pollers and two budget checks on one database.

Children start their command at the same instant (a file barrier), so the race is
real: on PostgreSQL once through the advisory lock, and once without it so only the
unique keys stand between the two; on SQLite through BEGIN IMMEDIATE and the keys.
"""

from __future__ import annotations

import pytest
from alert_receivers import http_receiver
from reliability_helpers import POLL_ARGS, child_env, entry_counts, ledger_toml, snapshot, worker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sync_helpers import NOW, SINCE_TS, fees, ledger_usage, sandbox, true_usage
from test_budgets_alerts import NOW as ALERT_NOW
from test_budgets_alerts import seed_85_percent, write_budgets

from ledger.store.engine import open_engine
from ledger.sync import poll_lock

REFUSED = "another poll is running against this database"


def _race(procs_args, env, tmp_path, **options):
    barrier = tmp_path / "go"
    procs = [worker(args, env, barrier=str(barrier), **options) for args in procs_args]
    barrier.touch()
    return [(p, *p.communicate(timeout=120)) for p in procs]


@pytest.mark.parametrize("mode", ["locked", "nolock"])
def test_two_pollers_at_once_count_everything_once(
    engine, book, config_dir, db_url, tmp_path, mode
):
    if mode == "nolock" and engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no poll lock to bypass")
    with sandbox(days=3) as sb:
        ledger_toml(config_dir, sb.server.base_url, window_days=1)
        env = child_env(db_url, config_dir, sb.env)
        options = {"mode": "nolock"} if mode == "nolock" else {}
        results = _race([list(POLL_ARGS)] * 2, env, tmp_path, **options)
        for proc, _out, err in results:
            # each either polled or (PostgreSQL, locked) was refused in one line
            assert proc.returncode == 0 or REFUSED in err, err
        assert any(p.returncode == 0 for p, _, _ in results)
        truth = true_usage(sb.org, book, SINCE_TS, NOW + 3600)
        assert ledger_usage(engine) == truth
        assert all(v[-1] == 1 for v in snapshot(engine)["usage"].values())
        finished = {j.id for j in sb.org.jobs() if j.trained_tokens and j.status == "succeeded"}
        assert set(fees(engine)) >= finished
        assert entry_counts(engine)["training_fees"] == len(fees(engine))


def test_two_budget_checks_at_once_alert_once(engine, book, config_dir, db_url, tmp_path):
    seed_85_percent(engine, book)
    with http_receiver() as rx:
        write_budgets(config_dir, rx.url)
        env = child_env(db_url, config_dir, {"OPS_HOOK": rx.url})
        check = ["budgets", "check", "--now", ALERT_NOW.isoformat()]
        results = _race([check, check], env, tmp_path)
        for proc, _out, err in results:
            assert proc.returncode == 0, err
    keys = [r.headers["Idempotency-Key"] for r in rx.requests]
    assert len(keys) == 3 and len(set(keys)) == 3  # three thresholds, each sent once
    counts = entry_counts(engine)
    assert counts["alert_decisions"] == 3 and counts["alert_deliveries"] == 3


@pytest.mark.postgres
def test_the_poll_lock_is_per_ledger_not_per_database(db_url, engine, tmp_path):
    """Two ledgers in two schemas of one database poll independently; one ledger is
    polled by one replica at a time."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    other_schema = f"{make_url(db_url).query['options'].split('=')[-1]}_b"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{other_schema}"'))
    other_url = make_url(db_url).update_query_dict({"options": f"-csearch_path={other_schema}"})
    other = create_engine(other_url)
    same = open_engine(db_url)
    try:
        with poll_lock(engine) as first, poll_lock(other) as elsewhere, poll_lock(same) as again:
            assert (first, elsewhere, again) == (True, True, False)
        with poll_lock(same) as after:
            assert after
    finally:
        other.dispose()
        same.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{other_schema}" CASCADE'))
        admin.dispose()
