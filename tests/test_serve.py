"""`ftledger serve`: polls on schedule, survives a failing run, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sync_helpers import ledger_usage, sandbox, true_usage, write_config

from ledger.sync import USAGE_SOURCE, read_watermark


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_serve_polls_on_schedule_keeps_going_after_errors_and_stops_on_sigterm(
    engine, book, config_dir, db_url
):
    now = int(time.time())
    with sandbox(days=2, now=now) as sb:
        write_config(config_dir, sb, window_days=31)
        sb.server.faults.error("jobs", 401, times=1)  # the first run has a failing source
        env = {**os.environ, **sb.env, "LEDGER_DATABASE_URL": db_url}
        env["LEDGER_CONFIG_DIR"] = str(config_dir)
        proc = subprocess.Popen(
            # --no-http: this test is about the schedule; port 8080 may be taken here
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
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # three ticks: every project's jobs listed at least three times
            assert _wait(lambda: sb.server.requests["jobs"] >= 9), "serve did not poll"
            assert read_watermark(engine, USAGE_SOURCE).last_success_at is not None
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()  # closes the pipes, or their ResourceWarnings fail a later test
        assert proc.returncode == 0, err
        assert "failed" in err  # the 401 was logged, and the next runs went ahead
        assert "stopped" in err
        assert ledger_usage(engine) == true_usage(sb.org, book, sb.org.start, now + 3600)
        assert "CANARY" not in out + err


def test_serve_rejects_a_bad_cron_before_starting(cli, config_dir):
    (config_dir / "ledger.toml").write_text("[poll]\ncron = 'every tuesday'\n", "utf-8")
    result = cli("serve")
    assert result.exit_code == 1
    assert "poll.cron" in result.stderr
