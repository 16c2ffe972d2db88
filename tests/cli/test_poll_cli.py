"""`ftledger poll`, `status` and `demo` as a user runs them, in-process and in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sync_helpers import NOW, SINCE_TS, ledger_usage, sandbox, true_usage, write_config

from ledger.sync import USAGE_SOURCE, poll_lock, read_watermark

POLL = ("poll", "--now", str(NOW), "--since", "2025-06-11", "--no-alerts")


@pytest.fixture
def keys(monkeypatch):
    def set_keys(sb) -> None:
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)

    return set_keys


def test_poll_prints_what_it_read_and_a_second_poll_posts_nothing(
    engine, book, cli, config_dir, keys
):
    with sandbox() as sb:
        write_config(config_dir, sb)
        keys(sb)
        first = cli(*POLL, "--format", "json")
        assert first.exit_code == 0, first.stderr
        sources = {s["source"]: s for s in json.loads(first.stdout)["rows"]}
        assert set(sources) == {
            "openai.usage",
            "openai.costs",
            "openai.jobs:support",
            "openai.jobs:legal",
            "openai.jobs:research",
        }
        assert sources["openai.usage"]["posted"] > 0
        assert sources["openai.usage"]["unpriced_models"] == ["mystery-model-2099"]
        assert ledger_usage(engine) == true_usage(sb.org, book, SINCE_TS, NOW + 3600)
        second = cli(*POLL)
        assert second.exit_code == 0
        usage_line = next(x for x in second.stdout.splitlines() if x.startswith("openai.usage"))
        assert usage_line.split()[3] == "0"  # posted


def test_poll_with_a_missing_key_fails_in_one_line_and_status_tells(engine, cli, config_dir):
    with sandbox() as sb:
        write_config(config_dir, sb)
        result = cli(*POLL)
    assert result.exit_code == 1
    error_lines = [x for x in result.stderr.splitlines() if x.startswith("ftledger: error")]
    assert error_lines == [
        "ftledger: error: 5 of 5 sources failed; openai.usage: T_ADMIN is not set: "
        "an admin key is needed to read usage and costs"
    ]
    status = cli("status", "--now", str(NOW + 600), "--format", "json")
    rows = {r["source"]: r for r in json.loads(status.stdout)["rows"]}
    assert rows["openai.usage"]["last_success"] is None
    assert rows["openai.usage"]["failures"] == 1
    assert "T_ADMIN is not set" in rows["openai.usage"]["last_error"]
    assert rows["openai.usage"]["state"] == "failing"


def test_status_shows_last_success_lag_and_position(engine, cli, config_dir, keys):
    with sandbox() as sb:
        write_config(config_dir, sb)
        keys(sb)
        assert cli(*POLL).exit_code == 0
    status = cli("status", "--now", str(NOW + 3725), "--format", "csv")
    header, *rows = status.stdout.splitlines()
    assert header == "source,last_success,lag,read_up_to,failing_since,failures,state,last_error"
    # 1h 2m without a success is more than 2 poll intervals of 15 min: lagging, exit 1
    assert "openai.usage,2025-06-15T15:06:40Z,1h 2m,2025-06-15T15:00:00Z,,0,lagging," in rows
    assert status.exit_code == 1
    fresh = json.loads(cli("status", "--now", str(NOW + 600), "--format", "json").stdout)
    assert {r["state"] for r in fresh["rows"]} <= {"ok", "never"}
    assert fresh["totals"]["lagging"] == 0


def test_ledger_toml_problems_are_reported_together(cli, config_dir):
    (config_dir / "ledger.toml").write_text(
        "[poll]\nbucket_width = '2h'\nlookback_days = -1\ncolour = 'red'\n"
        "[[projects]]\nname = 'x'\nkey_env = 'sk-abcdefgh12345678'\n",
        encoding="utf-8",
    )
    result = cli(*POLL)
    assert result.exit_code == 1
    path = config_dir / "ledger.toml"
    for where in ("poll.bucket_width", "poll.lookback_days", "poll.colour", "projects[0].key_env"):
        assert f"{path}: {where}:" in result.stderr
    assert "sk-abcdefgh" not in result.stderr


def test_a_readable_config_holding_a_secret_earns_a_warning(cli, config_dir):
    path = config_dir / "ledger.toml"
    path.write_text("# old key: sk-abcdefgh12345678\n[poll]\nlookback_days = 2\n", "utf-8")
    path.chmod(0o644)
    assert "readable by other users" in cli("status").stderr
    path.chmod(0o600)
    assert "readable by other users" not in cli("status").stderr


def test_poll_runs_the_budget_check_unless_told_not_to(engine, cli, config_dir, keys, monkeypatch):
    import ledger.alerts

    calls: list[object] = []
    monkeypatch.setattr(ledger.alerts, "run_budget_check", lambda *a, **k: calls.append(k["now"]))
    with sandbox() as sb:
        write_config(config_dir, sb)
        keys(sb)
        assert cli(*POLL).exit_code == 0
        assert calls == []
        assert cli(*POLL[:-1]).exit_code == 0
    assert calls == [NOW]


def test_a_poll_held_by_another_replica_is_refused_on_postgresql(engine, cli, config_dir, keys):
    if engine.dialect.name != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite relies on BEGIN IMMEDIATE")
    with sandbox() as sb:
        write_config(config_dir, sb)
        keys(sb)
        with poll_lock(engine) as held:
            assert held
            result = cli(*POLL)
        assert result.exit_code == 1
        assert "another poll is running" in result.stderr
        assert ledger_usage(engine) == {}
        assert cli(*POLL).exit_code == 0


def test_demo_needs_no_key_and_prints_the_month(cli, tmp_path):
    db = tmp_path / "demo.db"
    result = cli("demo", "--db", str(db))
    assert result.exit_code == 0, result.stderr
    assert "Sandbox organisation" in result.stdout
    assert "2025-06" in result.stdout and "A1b2C3" in result.stdout  # names shortened to fit
    assert max(len(line) for line in result.stdout.splitlines()[4:]) <= 100
    again = cli("demo", "--db", str(db))
    assert again.exit_code == 1 and "fresh database" in again.stderr
    plain = cli("demo", "--format", "json")
    assert plain.exit_code == 0
    assert json.loads(plain.stdout)["month"] == "2025-06"


def test_demo_never_loads_the_fault_plan():
    """Faults are test-only: the demo's whole import path, run end to end, leaves them out."""
    code = (
        "import sys, ledger.demo, ledger.cli.demo\n"
        "from ledger.cli.app import main\n"
        "try:\n    main(['demo', '--format', 'json'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('ledger.sandbox')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.rsplit("LOADED", 1)[1]
    assert "'ledger.sandbox.server'" in loaded, out.stdout[-500:]  # the demo did serve
    assert "faults" not in loaded


# --- a poll killed mid-way --------------------------------------------------------------


def _subprocess_env(sb, url: str, config_dir: Path) -> dict[str, str]:
    env = {**os.environ, **sb.env, "LEDGER_DATABASE_URL": url}
    env["LEDGER_CONFIG_DIR"] = str(config_dir)
    return env


@pytest.mark.slow
def test_a_poll_killed_at_any_moment_and_rerun_equals_an_uninterrupted_one(
    engine, book, config_dir, db_url
):
    with sandbox() as sb:
        write_config(config_dir, sb, window_days=1, lookback_days=0)
        # 5 one-day windows at 0.6 s a read; each run is killed part-way through a read
        # once it has posted a window (lookback 0: the next run resumes after it). Waiting
        # for the watermark to move, not a clock, keeps this true on a loaded machine.
        sb.server.faults.slow("usage", 0.6, times=-1)
        env = _subprocess_env(sb, db_url, config_dir)
        command = [sys.executable, "-m", "ledger", *POLL]
        positions = []
        position = None
        for into_read in (0.1, 0.3, 0.5):
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if read_watermark(engine, USAGE_SOURCE).position != position:
                    break  # this run posted a window: kill it inside the next read
                time.sleep(0.05)
            time.sleep(into_read)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            position = read_watermark(engine, USAGE_SOURCE).position
            positions.append(position)
            held = true_usage(sb.org, book, SINCE_TS, position) if position else {}
            assert ledger_usage(engine) == held  # nothing of an unfinished window
        assert len(set(positions)) >= 2  # the kills landed between different windows
        assert positions[-1] is None or positions[-1] < NOW - 3600  # all before the end
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert ledger_usage(engine) == true_usage(sb.org, book, SINCE_TS, NOW + 3600)
