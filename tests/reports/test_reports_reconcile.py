"""`ftledger reconcile`: computed against billed cost per UTC day, with flagged causes."""

from __future__ import annotations

import json

from reports_seed import FT, MYSTERY, fee, post, ts, usage
from sqlalchemy import insert

from ledger.store.tables import BilledCost


def billed(engine, day: str, amount: str, *, line_item: str = "ft-inference", currency="usd"):
    start = ts(day)
    with engine.begin() as conn:
        conn.execute(
            insert(BilledCost).values(
                bucket_start=start,
                bucket_end=start + 86400,
                project_id="proj_a",
                line_item=line_item,
                currency=currency,
                amount=amount,
                observed_at=start + 86400,
            )
        )


def seed(engine, book) -> None:
    post(
        engine,
        book,
        usage(FT, "2024-11-01T00:00", inp=1_000_000),  # 0.30
        usage(FT, "2024-11-02T00:00", inp=1_000_000),  # 0.30
        usage(FT, "2024-11-03T00:00", inp=1_000_000),  # 0.30
        usage(FT, "2024-11-04T00:00", inp=1_000_000),  # 0.30
        usage(MYSTERY, "2024-11-04T01:00", inp=1_000),
    )
    fee(engine, book, "ftjob-1", FT, "2024-11-02T12:00", 1_000_000)  # 3.00 on the 2nd
    billed(engine, "2024-11-01", "0.300000000000000004")  # matches within tolerance
    billed(engine, "2024-11-02", "3.1", line_item="ft-inference")  # 3.30 computed: 3.3
    billed(engine, "2024-11-02", "0.2", line_item="ft-training")
    billed(engine, "2024-11-03", "0.25")  # billed low: -16.67%
    billed(engine, "2024-11-04", "0.40")  # billed high with an unpriced model
    # 2024-11-05: no usage, no billed rows; later days too.


def run(cli, *args: str) -> dict:
    result = cli("reconcile", "--month", "2024-11", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_reconcile_flags_days_beyond_tolerance_with_a_cause(engine, book, cli):
    seed(engine, book)
    doc = run(cli)
    days = {d["day"]: d for d in doc["rows"]}
    assert len(days) == 30
    first = days["2024-11-01"]
    assert first["computed_cost"] == "0.300000"
    assert first["billed_cost"] == "0.300000000000000004"  # exact, not rounded
    assert first["variance"] == "0.000000000000000004" and not first["flagged"]
    second = days["2024-11-02"]
    assert (second["computed_cost"], second["billed_cost"]) == ("3.300000", "3.300000")
    assert second["variance"] == "0.000000" and not second["flagged"]
    low = days["2024-11-03"]
    assert low["variance"] == "-0.050000" and low["variance_pct"] == "-16.67"
    assert low["flagged"] and "promotion" in low["likely_cause"]
    high = days["2024-11-04"]
    assert high["flagged"] and MYSTERY in high["likely_cause"]
    quiet = days["2024-11-05"]
    assert quiet["billed_cost"] is None and not quiet["flagged"]
    assert doc["totals"]["flagged_days"] == 2
    assert doc["totals"]["computed_cost"] == "4.200000"
    assert doc["totals"]["billed_cost"] == "4.250000000000000004"


def test_tolerance_decides_what_is_flagged(engine, book, cli):
    seed(engine, book)
    doc = run(cli, "--tolerance", "20")
    assert doc["totals"]["flagged_days"] == 1  # the 4th: +33.33%
    assert doc["tolerance_pct"] == "20"
    assert cli("reconcile", "--month", "2024-11", "--tolerance", "x").exit_code == 2


def test_days_with_usage_but_no_billed_rows_point_at_polling(engine, book, cli):
    post(engine, book, usage(FT, "2024-11-07T00:00", inp=1_000))
    day = {d["day"]: d for d in run(cli)["rows"]}["2024-11-07"]
    assert day["flagged"] and "not been polled" in day["likely_cause"]
    assert day["variance"] is None


def test_reconcile_formats_carry_the_same_numbers(engine, book, cli):
    seed(engine, book)
    doc = run(cli)
    csv_out = cli("reconcile", "--month", "2024-11", "-f", "csv").stdout.splitlines()
    assert csv_out[0] == "day,computed_cost,billed_cost,variance,variance_pct,flagged,likely_cause"
    assert csv_out[3].startswith("2024-11-03,0.300000,0.250000,-0.050000,-16.67,true,")
    table = cli("reconcile", "--month", "2024-11").stdout
    assert doc["totals"]["billed_cost"] == "4.250000000000000004"  # exact, never a float
    total = next(line for line in table.splitlines() if line.startswith("TOTAL")).split()
    assert total[1:4] == ["$4.20", "$4.25", "$0.05"]  # people read dollars and cents
    assert "2 day(s) flagged" in table


def test_other_currency_is_refused(engine, book, cli):
    billed(engine, "2024-11-01", "1.00", currency="eur")
    result = cli("reconcile", "--month", "2024-11")
    assert result.exit_code == 1 and "EUR" in result.stderr


def test_billed_amounts_beyond_28_digits_are_summed_exactly(engine, cli):
    billed(engine, "2024-11-01", "1000.000000000000000000000000000001", line_item="a")
    billed(engine, "2024-11-01", "0.000000000000000000000000000002", line_item="b")
    doc = run(cli)
    first = {d["day"]: d for d in doc["rows"]}["2024-11-01"]
    assert first["billed_cost"] == "1000.000000000000000000000000000003"
    assert doc["totals"]["billed_cost"] == "1000.000000000000000000000000000003"
    assert first["variance"] == "1000.000000000000000000000000000003"
