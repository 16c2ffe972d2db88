"""Output for people (issue 13): tables fit the terminal, money reads as money, flags
behave the same everywhere, every error is one line, read-only commands create nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from paths import ROOT

from ledger.reports.text import count, percent, shorten_middle, usd

NOW = "2025-06-15T15:20:00Z"  # just after the demo's simulated clock


def test_usd_is_two_decimals_with_separators_and_says_tiny_and_unknown():
    assert usd(Decimal("1234.5678")) == "$1,234.57"
    assert usd(1_500_000_000_000) == "$1.50"  # pico-USD
    assert usd("0.004") == "<$0.01" and usd("-0.004") == ">-$0.01"
    assert usd("0") == "$0.00" and usd(None) == "n/a"
    assert usd("-1234567.891") == "-$1,234,567.89"
    assert usd("2.5", "EUR") == "2.50 EUR"
    assert count(12345678) == "12,345,678" and count(None) == "n/a"
    assert percent("113.2178") == "113.2%" and percent(None) == "n/a"
    assert shorten_middle("ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3", 20).endswith("A1b2C3")
    assert len(shorten_middle("x" * 50, 20)) == 20
    name = "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3"
    assert shorten_middle(name, 30) == "ft:gpt-4o-mini…:support:A1b2C3"
    assert shorten_middle(name + ":ckpt-step-88", 28) == "ft:gpt-…:A1b2C3:ckpt-step-88"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """A ledger polled from the sandbox organisation (June 2025)."""
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    done = ftledger("demo", "--db", str(db), cwd=db.parent)
    assert done.returncode == 0, done.stderr
    return db


def ftledger(*args: str, cwd: Path, columns: int = 100) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(ROOT)}
    env.pop("LEDGER_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


TABLES = [
    ("report", "monthly", "--month", "2025-06"),
    ("report", "monthly", "--month", "2025-06", "--by", "project"),
    ("report", "whatif", "--month", "2025-06", "--model", "gpt-4.1"),
    ("reconcile", "--month", "2025-06"),
    ("forecast", "--now", NOW),
    ("budgets", "status", "--now", NOW),
    ("prices", "list"),
    ("status", "--now", NOW),
    ("report", "estimates"),
]


@pytest.mark.parametrize("width", [100, 80])
def test_every_table_fits_the_terminal(demo_db, tmp_path, width):
    config = tmp_path / "config"
    config.mkdir()
    (config / "budgets.toml").write_text(
        '[[channel]]\nname = "log"\ntype = "log"\n\n'
        '[[budget]]\nname = "organisation-wide fine-tuning spend"\namount = "150.00"\n'
        'period = "monthly"\nthresholds = [50, 80, 100]\nchannels = ["log"]\n',
        encoding="utf-8",
    )
    for args in TABLES:
        done = ftledger(*args, "--db", str(demo_db), cwd=tmp_path, columns=width)
        assert done.returncode in (0, 1), (args, done.stderr)
        assert done.stdout.strip(), args
        too_wide = [line for line in done.stdout.splitlines() if len(line) > width]
        assert not too_wide, (args, too_wide)
        assert "Traceback" not in done.stderr


def test_monthly_table_reads_as_money(demo_db, tmp_path):
    out = ftledger("report", "monthly", "-m", "2025-06", "--db", str(demo_db), cwd=tmp_path)
    header = out.stdout.splitlines()[2].split()
    assert header[:3] == ["model", "tokens", "in"]  # requests gave its room to the names
    assert "ft:gpt-4o-…:support:A1b2C3" in out.stdout  # a name that reads
    assert "Hidden to fit 100 columns: requests" in out.stdout
    roomy = ftledger("report", "monthly", "-m", "2025-06", "--db", str(demo_db), cwd=tmp_path,
                     columns=140)  # fmt: skip
    assert roomy.stdout.splitlines()[2].split()[:2] == ["model", "requests"]
    total = next(line for line in out.stdout.splitlines() if line.startswith("TOTAL")).split()
    assert total[-1].startswith("$") and "," in total[2]  # $131.94, 78,827,724
    assert "Previous month 2025-05" in out.stdout  # the comparison line stays
    wide = ftledger(
        "report", "monthly", "-m", "2025-06", "--wide", "--db", str(demo_db), cwd=tmp_path
    )
    assert "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3" in wide.stdout  # whole names
    picked = ftledger(
        "report", "monthly", "-m", "2025-06", "--columns", "model,total_cost",
        "--db", str(demo_db), cwd=tmp_path,
    )  # fmt: skip
    assert picked.stdout.splitlines()[2].split() == ["model", "total"]


def test_read_only_commands_in_an_empty_folder_create_no_ledger(tmp_path):
    tmp_path = tmp_path / "empty"
    tmp_path.mkdir()
    for args in (
        ("report", "monthly"),
        ("status",),
        ("budgets", "status"),
        ("forecast",),
        ("reconcile",),
        ("export", "focus"),
    ):
        done = ftledger(*args, cwd=tmp_path)
        assert done.returncode == 1, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "no ledger at" in lines[0], (args, lines)
        assert "ftledger poll" in lines[0]
        assert list(tmp_path.iterdir()) == [], args


def test_version_and_completion(tmp_path):
    done = ftledger("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("ftledger ")
    assert "--install-completion" in ftledger("--help", cwd=tmp_path).stdout


def test_output_extension_picks_the_format_and_dash_is_stdout(demo_db, tmp_path):
    db = ("--db", str(demo_db))
    done = ftledger("report", "monthly", "-m", "2025-06", "-o", "oct.html", *db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "oct.html").read_text().startswith("<!DOCTYPE html>")
    ftledger("report", "monthly", "-m", "2025-06", "-o", "oct.json", *db, cwd=tmp_path)
    assert (tmp_path / "oct.json").read_text().lstrip().startswith("{")
    ftledger("reconcile", "-m", "2025-06", "-o", "rec.csv", *db, cwd=tmp_path)
    assert (tmp_path / "rec.csv").read_text().startswith("day,computed_cost")
    md = ftledger("report", "monthly", "-m", "2025-06", "-o", "oct.md", "-f", "CSV", *db,
                  cwd=tmp_path)  # fmt: skip
    assert md.returncode == 0 and (tmp_path / "oct.md").read_text().startswith("model,")
    stdout = ftledger("report", "monthly", "-m", "2025-06", "-f", "Json", "-o", "-", *db,
                      cwd=tmp_path)  # fmt: skip
    assert stdout.stdout.lstrip().startswith("{")


def test_db_as_a_plain_path_before_or_after_the_command(demo_db, tmp_path):
    shutil.copy(demo_db, tmp_path / "ledger-copy.db")
    before = ftledger("--db", "ledger-copy.db", "report", "monthly", "-m", "2025-06", "-f", "json",
                      cwd=tmp_path)  # fmt: skip
    after = ftledger("report", "monthly", "-m", "2025-06", "-f", "json", "--db", "ledger-copy.db",
                     cwd=tmp_path)  # fmt: skip
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    first, second = json.loads(before.stdout), json.loads(after.stdout)
    first.pop("generated_at"), second.pop("generated_at")  # the clock ticked in between
    assert first == second and "total_cost" in second["totals"]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("report", "monthly", "-o", "no/such/folder/x.html"), 2, "does not exist"),
        (("reconcile", "--tolerance", "two%"), 2, "not a percentage"),
        (("report", "monthly", "-f", "pdf"), 2, "--format"),
        (("report", "whatif", "--model", "ft:gpt-4o-mni"), 1, "did you mean 'ft:gpt-4o-mini'"),
        (("estimate", "x.jsonl", "--model", "gpt4o-mini"), 1, "did you mean 'gpt-4o-mini'"),
        (("status", "--db", "no/such/folder/ledger.db"), 1, "does not exist"),
        (("db", "current", "--db", "postgresql+psycopg://u@127.0.0.1:9/x"), 1, "cannot connect"),
    ],
)
def test_each_error_is_one_line_with_its_exit_code(demo_db, tmp_path, args, code, needle):
    args = (*args, "--db", str(demo_db)) if "--db" not in args else args
    done = ftledger(*args, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, (args, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("ftledger: error: "), lines
    assert needle in lines[0]


def test_tolerance_accepts_a_percent_sign(demo_db, tmp_path):
    done = ftledger("reconcile", "-m", "2025-06", "--tolerance", "2%", "--db", str(demo_db),
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "tolerance 2%" in done.stdout


def test_status_exits_1_when_a_source_lags(demo_db, tmp_path):
    fresh = ftledger("status", "--now", NOW, "--db", str(demo_db), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    stale = ftledger("status", "--now", "2025-06-16T12:00:00Z", "--db", str(demo_db),
                     cwd=tmp_path)  # fmt: skip
    assert stale.returncode == 1
    assert "lags" in stale.stderr and "openai.usage" in stale.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")
def test_html_report_reads_at_1000px_without_horizontal_scroll(demo_db, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    done = ftledger("report", "monthly", "-m", "2025-06", "-o", "r.html", "--db", str(demo_db),
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page_file = tmp_path / "r.html"
    html = page_file.read_text()
    report = ftledger("report", "monthly", "-m", "2025-06", "-f", "json", "--db", str(demo_db),
                      cwd=tmp_path)  # fmt: skip
    total = usd(json.loads(report.stdout)["totals"]["total_cost"])
    assert "training fees" in html and "Data as of 2025-06-15" in html and total in html
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        page.goto(page_file.as_uri())
        scroll = page.evaluate("document.documentElement.scrollWidth")
        inner = page.evaluate("window.innerWidth")
        shot = tmp_path / "r.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert scroll <= inner == 1000
    import struct

    width = struct.unpack(">I", shot.read_bytes()[16:20])[0]  # PNG IHDR width
    assert width == 1000


def test_html_report_shows_budgets_and_fits_1000px_in_chromium(demo_db, tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("LEDGER_REQUIRE_BROWSER"):
            pytest.fail("LEDGER_REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    config = tmp_path / "config"
    config.mkdir()
    (config / "budgets.toml").write_text(
        '[[channel]]\nname = "log"\ntype = "log"\n\n'
        '[[budget]]\nname = "organisation-wide fine-tuning spend"\namount = "250.00"\n'
        'period = "monthly"\nchannels = ["log"]\n',
        encoding="utf-8",
    )
    page_file = tmp_path / "june.html"
    done = ftledger(
        "report", "monthly", "-m", "2025-06", "-o", str(page_file), "--db", str(demo_db),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = page_file.read_text(encoding="utf-8")
    assert "Budget and forecast for the month" in html and "Data as of 2025-06-" in html
    assert "organisation-wide fine-tuning spend" in html and "$250.00" in html
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(page_file.as_uri())
            widths = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            shot = tmp_path / "june.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert widths[0] <= widths[1] == 1000, widths  # no horizontal scroll of the page
    from struct import unpack

    assert unpack(">I", shot.read_bytes()[16:20])[0] == 1000  # PNG width
    keep = os.environ.get("LEDGER_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "monthly-report-1000px.png")
