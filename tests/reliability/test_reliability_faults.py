"""Faults against the sandbox through the real SDK, and a database that drops the poll.

Every fault ends in a complete poll or a clean failure: the failing source is named with
a one-line reason, the ledger holds exactly the truth up to its watermark (nothing of an
unfinished window), and once the fault ends the next poll completes the ledger to what
an undisturbed poll writes.
"""

from __future__ import annotations

import json
import signal
import time
import uuid

import pytest
from reliability_helpers import child_env, ledger_toml, snapshot
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sync_helpers import NOW, SINCE_TS, ledger_usage, sandbox, true_usage

from ledger.sandbox import SandboxOrg, SandboxServer
from ledger.store.engine import open_engine
from ledger.sync import COSTS_SOURCE, USAGE_SOURCE, read_watermark

HOUR = 3600
FAST = {
    "max_retries": 1,
    "timeout_seconds": 0.5,
    "retry_backoff_seconds": 0.01,
    "max_retry_after_seconds": 5.0,
    "window_days": 1,
    "lookback_days": 1,
}

# (id, fault to arrange, the source that fails or None, what its error says)
CASES = [
    ("one-timeout", lambda f: f.slow("usage", 1.5, skip=1), None, ""),
    ("timeouts", lambda f: f.slow("usage", 1.5, times=-1, skip=2), USAGE_SOURCE, "timed out"),
    ("one-reset", lambda f: f.reset("costs", skip=1), None, ""),
    ("resets", lambda f: f.reset("usage", times=-1, skip=1), USAGE_SOURCE, "could not reach"),
    ("one-truncated-body", lambda f: f.truncate("usage", skip=1), None, ""),
    (
        "truncated-bodies",
        lambda f: f.truncate("usage", times=-1, skip=2),
        USAGE_SOURCE,
        "could not reach",
    ),
    (
        "has-more-without-next-page",
        lambda f: f.no_next_page("usage", skip=2),
        USAGE_SOURCE,
        "has_more is true but no next page",
    ),
    (
        "repeated-cursor",
        lambda f: f.repeat_cursor("usage", skip=2),
        USAGE_SOURCE,
        "the cursor repeated",
    ),
    ("429-short-retry-after", lambda f: f.rate_limit("usage", 0.05, skip=1), None, ""),
    (
        "429-very-long-retry-after",
        lambda f: f.rate_limit("usage", 3600, times=-1, skip=1),
        USAGE_SOURCE,
        "OpenAI asked to wait 3600s, longer than the 5s a poll will wait",
    ),
    ("one-503", lambda f: f.error("costs", 503, skip=1), None, ""),
    ("503-storm", lambda f: f.error("usage", 503, times=-1, skip=1), USAGE_SOURCE, "HTTP 503"),
    (
        "not-json",
        lambda f: f.garbage("usage", skip=1),
        USAGE_SOURCE,
        "the response body is not JSON",
    ),
]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory, book):
    """What an undisturbed poll of the same organisation writes (SQLite, once)."""
    from ledger.store import migrate
    from ledger.store.engine import create_ledger_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.db'}"
    raw = create_ledger_engine(url)
    migrate.upgrade(raw)
    raw.dispose()
    eng = open_engine(url)
    with sandbox(days=3, **FAST) as sb:
        assert sb.poll(eng, book).failed == []
    try:
        return snapshot(eng)
    finally:
        eng.dispose()


def _held_up_to_watermark(engine: Engine, sb, book) -> None:
    position = read_watermark(engine, USAGE_SOURCE).position
    upto = NOW + HOUR if position == NOW - NOW % HOUR else position
    held = true_usage(sb.org, book, SINCE_TS, upto) if position else {}
    assert ledger_usage(engine) == held


@pytest.mark.parametrize(
    ("arrange", "failing", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_fault_ends_complete_or_clean_and_recovers(
    engine, book, undisturbed, arrange, failing, message
):
    with sandbox(days=3, **FAST) as sb:
        arrange(sb.server.faults)
        started = time.monotonic()
        report = sb.poll(engine, book)
        assert time.monotonic() - started < 10
        failed = {s.source: s.error for s in report.failed}
        if failing is None:
            assert failed == {}
            assert snapshot(engine) == undisturbed
            return
        assert list(failed) == [failing]
        assert message in failed[failing]
        assert "\n" not in failed[failing]
        _held_up_to_watermark(engine, sb, book)
        mark = read_watermark(engine, failing)
        assert mark.consecutive_failures == 1 and mark.last_error == failed[failing]
        sb.server.faults.clear()
        assert sb.poll(engine, book).failed == []
    assert snapshot(engine) == undisturbed
    mark = read_watermark(engine, failing)
    assert (mark.consecutive_failures, mark.failing_since, mark.last_error) == (0, None, None)


def test_a_long_outage_is_one_failing_signal_in_status_not_a_flood(
    engine, book, cli, config_dir, undisturbed
):
    with sandbox(days=3, **FAST) as sb:
        ledger_toml(config_dir, sb.server.base_url)
        sb.server.faults.error("usage", 503, times=-1)
        sb.server.faults.error("costs", 503, times=-1)
        first = NOW
        for i in range(4):  # four polls, fifteen minutes apart, all failing
            report = sb.poll(engine, book, now=NOW + 900 * i)
            assert {s.source for s in report.failed} == {USAGE_SOURCE, COSTS_SOURCE}
        shown = cli("status", "--now", str(NOW + 3600), "--format", "json")
        assert shown.exit_code == 1  # unhealthy, for cron and health checks: one line says why
        assert shown.stderr.count("\n") == 1 and "openai.usage failed its last poll" in shown.stderr
        rows = {r["source"]: r for r in json.loads(shown.stdout)["rows"]}
        failing = {name: r for name, r in rows.items() if r["failing_since"]}
        assert set(failing) == {USAGE_SOURCE, COSTS_SOURCE}  # one row each, not four
        usage = failing[USAGE_SOURCE]
        assert usage["failures"] == 4
        assert usage["failing_since"] == "2025-06-15T15:06:40Z"  # the first failure
        assert usage["last_success"] is None and "HTTP 503" in usage["last_error"]
        sb.server.faults.clear()
        assert sb.poll(engine, book, now=first).failed == []
        rows = {
            r["source"]: r for r in json.loads(cli("status", "--format", "json").stdout)["rows"]
        }
    assert all(r["failing_since"] is None and r["failures"] == 0 for r in rows.values())
    assert snapshot(engine) == undisturbed


# --- the database drops the poll's connection ---------------------------------------------


def _postgres_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("simulates a PostgreSQL server dropping the connection")


def _named(db_url: str, app: str) -> str:
    return (
        make_url(db_url)
        .update_query_dict({"application_name": app})
        .render_as_string(hide_password=False)
    )


def _terminate(killer: Engine, app: str) -> int:
    with killer.connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :app AND pid <> pg_backend_pid()"
                ),
                {"app": app},
            ).all()
        )


@pytest.mark.postgres
def test_a_connection_dropped_during_a_polls_write_fails_it_cleanly_and_the_next_succeeds(
    engine, db_url, book, cli, config_dir, monkeypatch, undisturbed
):
    _postgres_only(engine)
    app = f"ftl-victim-{uuid.uuid4().hex[:8]}"
    killer = create_engine(db_url, isolation_level="AUTOCOMMIT")
    dropped: list[str] = []

    def drop_mid_write(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        first_write = not dropped and statement.lstrip().startswith("INSERT INTO usage_entries")
        if first_write and _terminate(killer, app):
            dropped.append(statement)

    with sandbox(days=3, **FAST) as sb:
        ledger_toml(config_dir, sb.server.base_url)
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        event.listen(Engine, "before_cursor_execute", drop_mid_write)
        try:
            failed = cli(
                "--db",
                _named(db_url, app),
                "poll",
                "--now",
                str(NOW),
                "--since",
                "2025-06-11",
                "--no-alerts",
            )
        finally:
            event.remove(Engine, "before_cursor_execute", drop_mid_write)
            killer.dispose()
        assert dropped, "the connection was never dropped"
        assert failed.exit_code == 1
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ftledger: error: "), failed.stderr
        assert lines[0].startswith(
            "ftledger: error: 1 of 5 sources failed; openai.usage: writing the ledger failed: "
        )
        _held_up_to_watermark(engine, sb, book)
        again = cli("poll", "--now", str(NOW), "--since", "2025-06-11", "--no-alerts")
        assert again.exit_code == 0, again.stderr
    assert snapshot(engine) == undisturbed


@pytest.mark.postgres
@pytest.mark.slow
def test_serve_keeps_running_while_the_database_drops_its_connections(
    engine, db_url, config_dir, tmp_path
):
    _postgres_only(engine)
    app = f"ftl-serve-{uuid.uuid4().hex[:8]}"
    now = int(time.time())
    org = SandboxOrg(now=now, days=1, extra_jobs=2)
    from sync_helpers import ADMIN_KEY, project_key

    names = ["support", "legal", "research"]
    killer = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with SandboxServer(
        org, admin_key=ADMIN_KEY, project_keys={n: project_key(n) for n in names}
    ) as server:
        ledger_toml(config_dir, server.base_url, window_days=30, lookback_days=0)
        path = config_dir / "ledger.toml"
        path.write_text(
            path.read_text().replace("[poll]", "retry_backoff_seconds = 0.01\n[poll]"),
            encoding="utf-8",
        )
        env = child_env(
            _named(db_url, app),
            config_dir,
            {"T_ADMIN": ADMIN_KEY, **{f"T_KEY_{n.upper()}": project_key(n) for n in names}},
        )
        import subprocess
        import sys

        log = tmp_path / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledger",
                    "serve",
                    "--every-seconds",
                    "1",
                    "--no-alerts",
                    "--no-http",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                # started (it refuses to start on an unreachable database) and polled once
                deadline = time.monotonic() + 30
                while read_watermark(engine, USAGE_SOURCE).last_success_at is None:
                    assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.1)
                deadline = time.monotonic() + 4
                killed = 0
                while time.monotonic() < deadline:  # an unstable database for four seconds
                    killed += _terminate(killer, app)
                    time.sleep(0.05)
                    assert proc.poll() is None, log.read_text()
                assert killed > 0
                # the database is stable again: a later tick completes the ledger
                truth = true_usage(org, _book(), org.start, now + HOUR)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and ledger_usage(engine) != truth:
                    time.sleep(0.2)
                assert ledger_usage(engine) == truth, log.read_text()
                assert proc.poll() is None
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=30)
                killer.dispose()
    output = log.read_text()
    assert code == 0, output
    assert "Traceback" not in output
    assert "poll failed" in output or "failed:" in output  # the drops were logged...
    assert "stopped" in output  # ...and the service ran on until SIGTERM


def _book():
    from ledger.pricebook import load_pricebook
    from ledger.resources import bundled_config_dir

    return load_pricebook(bundled_config_dir() / "prices.toml")
