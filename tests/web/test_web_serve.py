"""`ftledger serve` with its HTTP face, as a process: refusals, SIGTERM, a real browser.

The browser test drives Debian's chromium through Playwright's driver (never
`playwright install`); it is skipped only when chromium is missing and
LEDGER_REQUIRE_BROWSER is not set (CI sets it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from paths import ROOT
from reliability_helpers import child_env, ledger_toml
from sync_helpers import sandbox
from trickle import trickling_proxy

TOKEN = "browser-test-token-0000"
CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / ".ci" / "out"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.communicate()[1]}")
        try:
            if _get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ledger", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> tuple[float, str]:
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return time.monotonic() - sent, err


def test_serve_refuses_a_non_loopback_address_without_a_token(cli, monkeypatch):
    monkeypatch.delenv("LEDGER_HTTP_TOKEN", raising=False)
    result = cli("serve", "--listen", "0.0.0.0:8080")
    assert result.exit_code == 2
    assert "LEDGER_HTTP_TOKEN" in result.stderr
    bad = cli("serve", "--listen", "nowhere")
    assert bad.exit_code == 2 and "--listen" in bad.stderr


@pytest.mark.slow
def test_sigterm_during_a_request_and_during_a_poll_stops_within_10s(
    engine, db_url, config_dir, tmp_path
):
    port = _port()
    env = {**os.environ, "LEDGER_DATABASE_URL": db_url, "LEDGER_CONFIG_DIR": str(config_dir)}
    env["LEDGER_HTTP_TOKEN"] = TOKEN
    # during a request: an estimate upload that trickles and never ends
    proc = _serve(env, "--no-poll", "--listen", f"127.0.0.1:{port}")
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        upload = socket.create_connection(("127.0.0.1", port))
        upload.sendall(
            b"POST /api/v1/estimate?model=gpt-4o-mini HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000000\r\n\r\n".encode()
            + b'{"messages": ['
        )
        time.sleep(0.5)
    finally:
        took, err = _stop(proc)
    upload.close()
    assert proc.returncode == 0, err
    assert took < 10, f"stopped {took:.1f}s after SIGTERM during a request"
    assert TOKEN not in err

    # during a poll: the usage endpoint trickles its answer and never ends it
    poll_config = tmp_path / "poll-config"
    with (
        sandbox(days=2, now=int(time.time())) as sb,
        trickling_proxy(sb.server.base_url, ("usage",)) as tr,
    ):
        ledger_toml(poll_config, tr.base_url, timeout=2, window_days=3, lookback_days=1)
        child = {**child_env(db_url, poll_config, sb.env), "LEDGER_HTTP_TOKEN": TOKEN}
        proc = _serve(child, "--no-alerts", "--listen", f"127.0.0.1:{port}")
        try:
            _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            end = time.monotonic() + 20
            while tr.started < 1 and time.monotonic() < end:
                time.sleep(0.05)
            assert tr.started, "serve never reached the trickling endpoint"
            assert _get(f"http://127.0.0.1:{port}/api/v1/status", TOKEN)[0] == 200
            time.sleep(1.0)
        finally:
            took, err = _stop(proc)
    assert proc.returncode == 0, err
    assert took < 10, f"stopped {took:.1f}s after SIGTERM during a poll"
    assert TOKEN not in err


def _chromium_or_skip() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("LEDGER_REQUIRE_BROWSER"):
            pytest.fail("LEDGER_REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
        pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.mark.slow
def test_dashboard_in_a_real_browser(tmp_path, config_dir, cli):
    _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    db = tmp_path / "demo.db"
    demo = cli("demo", "--db", str(db))
    assert demo.exit_code == 0, demo.stderr
    url = f"sqlite:///{db}"
    month = "2025-06"  # the sandbox's simulated clock
    report = cli("--db", url, "report", "monthly", "-m", month, "-f", "json")
    assert report.exit_code == 0, report.stderr
    expected = json.loads(report.stdout)["totals"]["total_cost"]
    from ledger.reports.dashboard import usd

    port = _port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_CONFIG_DIR": str(config_dir)}
    env["LEDGER_HTTP_TOKEN"] = TOKEN
    proc = _serve(env, "--no-poll", "--listen", f"127.0.0.1:{port}")
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 900})
                assert page.goto(f"{base}/?month={month}").status == 401
                page.fill("#token", TOKEN)
                page.click("button[type=submit]")
                page.wait_for_selector("[data-testid=total]")
                page.goto(f"{base}/?month={month}")
                shown = page.inner_text("[data-testid=total]")
                assert shown == usd(expected)
                assert page.evaluate("document.documentElement.scrollWidth") <= 1000
                page.screenshot(path=str(OUT / "dashboard.png"), full_page=True)
                page.select_option("#month", "2025-05")
                page.click("header button[type=submit]")
                page.wait_for_url("**month=2025-05**")
                assert "2025-05" in page.inner_text("h1")
                assert page.inner_text("[data-testid=total]") != shown
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.context.add_cookies(page.context.cookies())
                phone.goto(f"{base}/?month={month}")
                assert phone.inner_text("[data-testid=total]") == shown
                phone.screenshot(path=str(OUT / "dashboard-phone.png"))
            finally:
                browser.close()
    finally:
        _, err = _stop(proc)
    assert proc.returncode == 0, err
    assert TOKEN not in err
