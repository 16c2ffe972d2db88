"""`ftledger export focus`: every FOCUS 1.2 mandatory column, and costs that add up."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

from reports_seed import FT, MYSTERY, fee, post, usage

MANDATORY = [
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
]


def seed(engine, book) -> None:
    post(
        engine,
        book,
        usage(FT, "2024-11-01T00:00", inp=1_000_000, cached=200_000, out=500_000),
        usage(FT, "2024-11-01T05:00", inp=1_000_000, batch=True),
        usage(FT, "2024-11-01T06:00", inp=3, out=1, project="proj_b"),
        usage("gpt-4o-2024-08-06", "2024-11-30T23:00", inp=1_234_567, out=7),
        usage(MYSTERY, "2024-11-03T00:00", inp=100, out=5),
        usage(FT, "2024-12-01T00:00", inp=5),
    )
    # A late revision lowers a bucket: its negative difference nets into the same row.
    post(engine, book, usage(FT, "2024-11-01T06:00", inp=2, out=1, project="proj_b"))
    fee(engine, book, "ftjob-1", FT, "2024-11-10T12:00", 1_000_000)


def export(cli, tmp_path, month: str = "2024-11") -> list[dict[str, str]]:
    out = tmp_path / "focus.csv"
    result = cli("export", "focus", "--month", month, "--output", str(out))
    assert result.exit_code == 0, result.stderr
    return list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))


def test_focus_has_every_mandatory_column_and_sums_to_the_report(engine, book, cli, tmp_path):
    seed(engine, book)
    rows = export(cli, tmp_path)
    assert set(MANDATORY) <= set(rows[0])
    report = json.loads(cli("report", "monthly", "--month", "2024-11", "-f", "json").stdout)
    total = sum(Decimal(r["EffectiveCost"]) for r in rows)
    assert total == Decimal(report["totals"]["total_cost"]) == Decimal("7.1064893")
    for row in rows:
        assert all(row[c] != "" for c in MANDATORY if c != "ChargeClass"), row
        assert row["ServiceCategory"] == "AI and Machine Learning"
        assert row["PricingUnit"] == "1000000 Tokens"
        assert row["BillingPeriodStart"] == "2024-11-01T00:00:00Z"
        assert row["BillingPeriodEnd"] == "2024-12-01T00:00:00Z"
        assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"]


def test_focus_rows_per_day_model_project_and_charge_type(engine, book, cli, tmp_path):
    seed(engine, book)
    rows = export(cli, tmp_path)
    keys = [
        (r["ChargePeriodStart"][:10], r["ResourceId"], r["SubAccountId"], r["x_ChargeType"])
        for r in rows
    ]
    assert keys == [
        ("2024-11-01", FT, "proj_a", "inference-standard"),
        ("2024-11-01", FT, "proj_a", "inference-batch"),
        ("2024-11-01", FT, "proj_b", "inference-standard"),
        ("2024-11-03", MYSTERY, "proj_a", "inference-standard"),
        ("2024-11-30", "gpt-4o-2024-08-06", "proj_a", "inference-standard"),
        ("2024-11-10", FT, "proj_a", "training"),
    ]
    netted = rows[2]
    assert (netted["x_InputTokens"], netted["ConsumedQuantity"]) == ("2", "3")
    assert netted["EffectiveCost"] == "0.0000018"  # 2 x 0.30/M + 1 x 1.20/M
    assert netted["ChargePeriodEnd"] == "2024-11-02T00:00:00Z"
    assert rows[0]["PricingQuantity"] == "1.500000"
    training = rows[-1]
    assert training["EffectiveCost"] == "3.000000" and training["x_JobId"] == "ftjob-1"
    assert training["PricingQuantity"] == "1.000000"
    unpriced = rows[3]
    assert unpriced["x_Priced"] == "false" and unpriced["EffectiveCost"] == "0.000000"


def test_focus_of_an_empty_month_is_a_header(engine, cli, tmp_path):
    assert export(cli, tmp_path, "2030-01") == []
    out = cli("export", "focus", "--month", "2030-01").stdout
    assert out.splitlines()[0].startswith("BilledCost,BillingAccountId")


def test_focus_output_extension_picks_the_format(engine, book, cli, tmp_path):
    seed(engine, book)
    rows = export(cli, tmp_path)  # .csv: FOCUS's own CSV
    out = tmp_path / "focus.json"
    done = cli("export", "focus", "--month", "2024-11", "-o", str(out))
    assert done.exit_code == 0, done.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["kind"] == "focus" and doc["month"] == "2024-11" and doc["currency"] == "USD"
    assert len(doc["rows"]) == len(rows) and set(doc["rows"][0]) == set(rows[0])
    for mine, theirs in zip(doc["rows"], rows, strict=True):  # costs as exact decimal text
        assert mine["EffectiveCost"] == theirs["EffectiveCost"], mine
    assert doc["totals"] == {"EffectiveCost": "7.1064893"}
    as_csv = cli("export", "focus", "--month", "2024-11", "-o", str(out), "--format", "CSV")
    assert as_csv.exit_code == 0 and out.read_text(encoding="utf-8").startswith("BilledCost,")
    html = cli("export", "focus", "--month", "2024-11", "-o", str(tmp_path / "f.html"))
    assert html.exit_code == 2 and "this command writes csv, json" in html.stderr
    assert not (tmp_path / "f.html").exists()
