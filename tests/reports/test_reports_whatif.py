"""`ftledger report whatif`: the month's tokens re-priced at another model's prices."""

from __future__ import annotations

import json

from reports_seed import FT, FT35, MYSTERY, post, usage


def whatif(cli, *args: str) -> dict:
    result = cli("report", "whatif", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_whatif_reprices_each_model_at_the_target_keeping_batch(engine, book, cli):
    post(
        engine,
        book,
        # Actual 0.87; on gpt-4.1: 800k x 2.00 + 200k x 0.50 + 500k x 8.00 = 5.70.
        usage(FT, "2025-06-01T00:00", inp=1_000_000, cached=200_000, out=500_000),
        # Batch: actual 0.15; on gpt-4.1 at half price: 1M x 1.00 = 1.00.
        usage(FT, "2025-06-02T00:00", inp=1_000_000, batch=True),
        usage(MYSTERY, "2025-06-03T00:00", inp=1_000_000),  # 2.00 on gpt-4.1
    )
    doc = whatif(cli, "--month", "2025-06", "--model", "gpt-4.1")
    rows = {r["model"]: r for r in doc["rows"]}
    assert doc["target_base_model"] == "gpt-4.1-2025-04-14"
    assert rows[FT]["actual_cost"] == "1.020000"
    assert rows[FT]["whatif_cost"] == "6.700000"
    assert rows[FT]["difference"] == "5.680000"
    assert rows[FT]["difference_pct"] == "556.86"
    assert rows[MYSTERY]["actual_cost"] is None and rows[MYSTERY]["whatif_cost"] == "2.000000"
    assert doc["unpriced_models"] == [MYSTERY]
    # Totals compare only models whose actual cost is known.
    assert doc["totals"]["actual_cost"] == "1.020000"
    assert doc["totals"]["whatif_cost"] == "6.700000"
    # A fine-tuned target prices at fine-tuned rates: gpt-4.1-nano ft 0.20/0.05/0.80.
    nano = whatif(cli, "--month", "2025-06", "--model", "ft:gpt-4.1-nano-2025-04-14")
    # 800k x 0.20 + 200k x 0.05 + 500k x 0.80 = 0.57; batch 1M x 0.10 = 0.10.
    assert {r["model"]: r for r in nano["rows"]}[FT]["whatif_cost"] == "0.670000"


def test_whatif_uses_the_target_price_in_force_each_day(engine, book, cli):
    post(
        engine,
        book,
        usage("gpt-3.5-turbo-0613", "2023-11-05T00:00", inp=1_000_000),
        usage("gpt-3.5-turbo-0613", "2023-11-06T00:00", inp=1_000_000),
    )
    doc = whatif(cli, "--month", "2023-11", "--model", FT35)
    row = doc["rows"][0]
    assert row["actual_cost"] == "3.000000"
    assert row["whatif_cost"] == "15.000000"  # 12.00 before the 2023-11-06 cut, 3.00 after


def test_whatif_days_before_the_target_existed_are_reported(engine, book, cli):
    post(engine, book, usage(FT, "2025-04-13T00:00", inp=10), usage(FT, "2025-04-14T00:00", inp=10))
    doc = whatif(cli, "--month", "2025-04", "--model", "gpt-4.1")
    assert doc["target_unpriced_days"] == ["2025-04-13"]
    assert doc["rows"][0]["whatif_cost"] is None


def test_whatif_unknown_target_is_one_line_error(engine, cli):
    result = cli("report", "whatif", "--month", "2025-06", "--model", "gpt-99")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "gpt-99" in result.stderr


def test_whatif_table_has_a_total_line(engine, book, cli):
    post(engine, book, usage(FT, "2025-06-01T00:00", inp=1_000_000))
    out = cli("report", "whatif", "--month", "2025-06", "--model", "gpt-4.1").stdout
    total = next(line for line in out.splitlines() if line.startswith("TOTAL")).split()
    assert total[-4:] == ["$0.30", "$2.00", "$1.70", "566.7%"]
