"""The canary sweep: keys and webhook URLs marked CANARY go through polls, failures (401,
a 500 that echoes the key), reports, alerts and `serve` with DEBUG logging; the canary
must appear in no log line, exception text, database row, report, alert payload or file
the program wrote. And config files holding secrets warn when others can read them.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alert_receivers import http_receiver
from reliability_helpers import child_env, dump_text, ledger_toml
from sync_helpers import NOW, sandbox

CANARY = "CANARY"
WRONG_KEY = "sk-admin-CANARY-wrong-9a9a9a"


def _budgets(config_dir: Path) -> None:
    config_dir.joinpath("budgets.toml").write_text(
        """
[[channel]]
name = "ops"
type = "webhook"
url = "${OPS_HOOK}"

[[channel]]
name = "chat"
type = "slack"
url = "${SLACK_HOOK}"

[[channel]]
name = "audit"
type = "log"

[[budget]]
name = "org"
amount = "0.50"
thresholds = [50, 100]
forecast_thresholds = []
channels = ["ops", "chat", "audit"]
""",
        encoding="utf-8",
    )
    config_dir.joinpath("budgets.toml").chmod(0o644)  # no secret in it: no warning due


def _files_text(*roots: Path) -> str:
    """Every file under the roots, as text (bytes decoded leniently; SQLite files too)."""
    parts = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                parts.append(f"{path}: " + path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_the_canary_never_leaves_memory(engine, cli, config_dir, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, the SDK's and httpx's included
    seen: list[str] = []

    def run(*args: str) -> str:
        result = cli(*args)
        seen.extend([result.stdout, result.stderr])
        return result.stdout

    with sandbox(days=3) as sb, http_receiver() as rx:
        ledger_toml(config_dir, sb.server.base_url, max_retries=1)
        (config_dir / "ledger.toml").write_text(
            (config_dir / "ledger.toml")
            .read_text()
            .replace("[poll]", "retry_backoff_seconds = 0.01\n[poll]")
        )
        _budgets(config_dir)
        for name, value in sb.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OPS_HOOK", rx.url + "/CANARY-ops-7d1c")
        monkeypatch.setenv("SLACK_HOOK", rx.url + "/services/CANARY-slack-2b2b")
        poll = ("poll", "--now", str(NOW), "--since", "2025-06-11")
        at = ("--now", "2025-06-15T16:00:00Z")

        # a server that echoes the key in its 500s, then a refused (wrong) key
        sb.server.faults.echo_key("usage")
        sb.server.faults.echo_key("jobs")
        rx.down = True  # the alert receivers fail first: their errors are recorded
        run(*poll)
        sb.server.faults.clear()
        monkeypatch.setenv("T_ADMIN", WRONG_KEY)
        run(*poll, "--no-alerts")
        monkeypatch.setenv("T_ADMIN", sb.env["T_ADMIN"])
        # a healthy poll, the alerts delivered, then every way of reading the ledger
        rx.down = False
        run(*poll, "--format", "json")
        run("budgets", "check", *at, "--format", "json")
        run("budgets", "status", *at, "--format", "json")
        run("status", "--format", "json")
        for fmt in ("table", "json", "csv", "markdown"):
            run("report", "monthly", "--month", "2025-06", "--format", fmt)
        run("report", "monthly", "--month", "2025-06", "--format", "html", "-o", "r.html")
        run("export", "focus", "--month", "2025-06", "-o", "focus.csv")
        alerts = [r.body.decode() + json.dumps(r.headers) for r in rx.requests]

    # two thresholds, two URL channels (Slack sends them as one message): alerts were seen
    assert len(rx.accepted) >= 3
    assert any("failed" in s or "HTTP 500" in s for s in seen)  # and the failures
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert "budget_alert" in logs  # the log channel wrote its line
    everything = {
        "output": "\n".join(seen),
        "logs": logs,
        "database": dump_text(engine),
        "alert payloads": "\n".join(alerts),
        "files": _files_text(tmp_path),
    }
    for where, text in everything.items():
        assert CANARY not in text, f"the canary leaked into {where}"
        assert WRONG_KEY[3:] not in text


@pytest.mark.slow
def test_serve_keeps_the_canary_out_of_its_logs(engine, db_url, config_dir, tmp_path):
    with sandbox(days=2) as sb, http_receiver() as rx:
        ledger_toml(config_dir, sb.server.base_url, max_retries=1)
        _budgets(config_dir)
        sb.server.faults.echo_key("usage")
        sb.server.faults.echo_key("jobs", times=2)
        rx.down = True
        env = child_env(
            db_url,
            config_dir,
            {
                **sb.env,
                "OPS_HOOK": rx.url + "/CANARY-ops-7d1c",
                "SLACK_HOOK": rx.url + "/CANARY-slack-2b2b",
            },
        )
        out = tmp_path / "serve.log"
        with out.open("w") as handle:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ledger", "serve", "--every-seconds", "1", "--no-http"],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 30  # a loaded machine polls late: wait for it
            while "failed" not in out.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # and a retry after the failure
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    log = out.read_text()
    assert code == 0, log
    assert "failed" in log  # the echoing server was logged...
    assert CANARY not in log  # ...without what it echoed
    assert CANARY not in dump_text(engine)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ledger.toml", "# the admin key is sk-admin-0123456789abcdef\n[openai]\n"),
        (
            "budgets.toml",
            '[[channel]]\nname = "ops"\ntype = "webhook"\nurl = "https://hooks.slack.com/services/T0/B0/abc"\n'
            '[[budget]]\nname = "b"\namount = "5"\nchannels = ["ops"]\n',
        ),
    ],
    ids=["ledger.toml", "budgets.toml"],
)
def test_a_config_file_holding_a_secret_warns_when_others_can_read_it(
    engine, cli, config_dir, name, content
):
    path = config_dir / name
    path.write_text(content, encoding="utf-8")
    command = ("status",) if name == "ledger.toml" else ("budgets", "status")
    warning = (
        f"{path} seems to hold a secret and is readable by other users (mode 644); "
        f"run `chmod 600 {path}`"
    )
    path.chmod(0o644)
    shown = cli(*command)
    assert warning in shown.stderr
    path.chmod(0o600)
    assert "readable by other users" not in cli(*command).stderr
