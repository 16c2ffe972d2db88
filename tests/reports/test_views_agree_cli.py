"""On a polled organisation whose price book prices two fine-tuned families part-way
through the month, every command a user runs tells the same total for the month."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

from sync_helpers import SINCE, sandbox

from ledger.pricebook import load_pricebook
from ledger.resources import bundled_config_dir

MONTH = "2025-06"
AFTER = "2025-07-02T00:00:00Z"  # the month is over: forecasts are its actual spend
# gpt-4o-mini and gpt-4.1 fine-tunes get their prices on the 13th and 12th: usage and
# fees before then are held unpriced.
LATE_PRICES = {
    "  [[model.fine_tuned_price]]\n  effective = 2024-07-23": (
        "  [[model.fine_tuned_price]]\n  effective = 2025-06-13"
    ),
    '  [[model.fine_tuned_price]]\n  effective = 2025-04-14\n  training = "25.00"': (
        '  [[model.fine_tuned_price]]\n  effective = 2025-06-12\n  training = "25.00"'
    ),
}
BUDGETS = """
[[channel]]
name = "log"
type = "log"

[[budget]]
name = "organisation"
amount = "1000000"
thresholds = [100]
channels = ["log"]
"""


def late_price_book(config_dir: Path) -> None:
    text = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    for old, new in LATE_PRICES.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    (config_dir / "prices.toml").write_text(text, encoding="utf-8")
    (config_dir / "budgets.toml").write_text(BUDGETS, encoding="utf-8")


def run_json(cli, *args: str) -> dict:
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_every_command_tells_the_same_total(engine, config_dir, cli, tmp_path):
    late_price_book(config_dir)
    book = load_pricebook(config_dir / "prices.toml")
    with sandbox(days=8) as sb:
        report = sb.poll(engine, book, since=SINCE)
    assert not report.failed

    monthly = run_json(cli, "report", "monthly", "--month", MONTH)
    assert monthly["unpriced_models"], "the late prices must leave some usage unpriced"
    total = Decimal(monthly["totals"]["total_cost"])
    assert total > 0
    totals: dict[str, Decimal] = {}
    for by in ("model", "project", "day", "base-model"):
        doc = run_json(cli, "report", "monthly", "--month", MONTH, "--by", by)
        totals[f"monthly --by {by}"] = Decimal(doc["totals"]["total_cost"])
        rows = cli("report", "monthly", "--month", MONTH, "--by", by, "-f", "csv").stdout
        known = [
            Decimal(r["usage_cost"] or 0) + Decimal(r["training_cost"] or 0)
            for r in csv.DictReader(io.StringIO(rows))
        ]
        totals[f"monthly csv --by {by}"] = sum(known, Decimal(0))
    page = tmp_path / "june.html"
    assert cli("report", "monthly", "-m", MONTH, "-f", "html", "--output", str(page)).exit_code == 0
    html_total = re.search(r'<tr class="total">(.*?)</tr>', page.read_text(encoding="utf-8"))
    assert html_total is not None
    # People read the page in dollars and cents: its total is the same total, rounded.
    cents = re.findall(r">\$([-0-9.,]+)<", html_total.group(1))[-1].replace(",", "")
    assert Decimal(cents) == total.quantize(Decimal("0.01"))

    focus = cli("export", "focus", "--month", MONTH).stdout
    effective = [Decimal(r["EffectiveCost"] or 0) for r in csv.DictReader(io.StringIO(focus))]
    totals["export focus"] = sum(effective, Decimal(0))
    rec = run_json(cli, "reconcile", "--month", MONTH)
    totals["reconcile"] = Decimal(rec["totals"]["computed_cost"])
    whatif = run_json(cli, "report", "whatif", "--month", MONTH, "--model", "gpt-4.1")
    training = Decimal(monthly["totals"]["training_cost"])
    totals["whatif actual + training"] = Decimal(whatif["totals"]["actual_cost"]) + training
    forecast = run_json(cli, "forecast", "--month", MONTH, "--now", AFTER)
    totals["forecast"] = Decimal(forecast["totals"]["forecast"])
    status = run_json(cli, "budgets", "status", "--now", "2025-06-30T23:00:00Z")
    [budget] = [b for b in status["rows"] if b["budget"] == "organisation"]
    totals["budget spend"] = Decimal(budget["spend"])

    assert totals == dict.fromkeys(totals, total)
