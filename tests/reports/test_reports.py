"""`ftledger report monthly`: exact sums per model, every format showing the same digits."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from reports_seed import FT, FT2, FT35, FT35_0125, MYSTERY, fee, post, usage

NUMBERS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "usage_cost",
    "base_model_cost",
    "premium",
    "premium_pct",
    "training_tokens",
    "training_cost",
    "total_cost",
)


def seed_november(engine, book) -> None:
    post(
        engine,
        book,
        # 800k uncached x 0.30 + 200k cached x 0.15 + 500k out x 1.20 = 0.87; base half.
        usage(FT, "2024-11-01T00:00", inp=1_000_000, cached=200_000, out=500_000, requests=10),
        # Batch: 1M x 0.30 x 0.5 = 0.15; base 0.075.
        usage(FT, "2024-11-02T05:00", inp=1_000_000, batch=True, requests=3, project="proj_b"),
        # 1,234,567 x 2.50/M + 7 x 10/M: needs more than six decimals to be exact.
        usage("gpt-4o-2024-08-06", "2024-11-30T23:00", inp=1_234_567, out=7, project="proj_b"),
        usage(MYSTERY, "2024-11-03T00:00", inp=100, out=5),
        # Outside the month on both sides.
        usage(FT, "2024-10-31T23:00", inp=1_000_000),
        usage(FT, "2024-12-01T00:00", inp=9_000_000),
    )
    fee(engine, book, "ftjob-1", FT, "2024-11-10T12:00", 1_000_000)  # x 3.00 = 3.00
    fee(engine, book, "ftjob-2", FT2, "2024-11-20T12:00", 2_000_000)  # training only: 6.00
    fee(engine, book, "ftjob-old", FT, "2024-10-31T23:59:59", 5_000_000)


def report_json(cli, *args: str) -> dict:
    result = cli("report", "monthly", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_rows_price_cached_batch_and_training_exactly(engine, book, cli):
    seed_november(engine, book)
    doc = report_json(cli, "--month", "2024-11")
    rows = {r["model"]: r for r in doc["rows"]}
    assert doc["month"] == "2024-11" and doc["currency"] == "USD"
    assert rows[FT] == {
        "model": FT,
        "base_model": "gpt-4o-mini-2024-07-18",
        "fine_tuned": True,
        "priced": True,
        "requests": 13,
        "input_tokens": 2_000_000,
        "cached_input_tokens": 200_000,
        "output_tokens": 500_000,
        "usage_cost": "1.020000",
        "base_model_cost": "0.510000",
        "premium": "0.510000",
        "premium_pct": "100.00",
        "training_tokens": 1_000_000,
        "training_cost": "3.000000",
        "total_cost": "4.020000",
    }
    assert rows["gpt-4o-2024-08-06"]["usage_cost"] == "3.0864875"
    assert rows["gpt-4o-2024-08-06"]["fine_tuned"] is False
    assert rows["gpt-4o-2024-08-06"]["premium"] == "0.000000"
    # A model with only a training fee that month still has its row.
    assert rows[FT2]["requests"] == 0 and rows[FT2]["usage_cost"] == "0.000000"
    assert rows[FT2]["training_cost"] == "6.000000" and rows[FT2]["total_cost"] == "6.000000"
    assert doc["totals"]["usage_cost"] == "4.1064875"
    assert doc["totals"]["training_cost"] == "9.000000"
    assert doc["totals"]["total_cost"] == "13.1064875"
    assert doc["totals"]["input_tokens"] == 2_000_000 + 1_234_567 + 100


def test_unpriced_model_shows_tokens_with_null_costs(engine, book, cli):
    seed_november(engine, book)
    doc = report_json(cli, "--month", "2024-11")
    row = next(r for r in doc["rows"] if r["model"] == MYSTERY)
    assert row["priced"] is False
    assert (row["input_tokens"], row["output_tokens"]) == (100, 5)
    assert [row[f] for f in ("usage_cost", "base_model_cost", "premium", "total_cost")] == [
        None
    ] * 4
    assert doc["unpriced_models"] == [MYSTERY]
    table = cli("report", "monthly", "--month", "2024-11").stdout
    assert "Unpriced models" in table and MYSTERY in table


def test_price_change_inside_the_month_applies_per_bucket(engine, book, cli):
    # Fine-tuned gpt-3.5-turbo inference dropped on 2023-11-06 from 12.00 to 3.00 input.
    post(
        engine,
        book,
        usage(FT35, "2023-11-05T23:00", inp=1_000_000),
        usage(FT35, "2023-11-06T00:00", inp=1_000_000),
        # The 0125 base had no price before 2024-01-25: its base cost is unknown.
        usage(FT35_0125, "2023-11-20T00:00", inp=1_000_000),
    )
    doc = report_json(cli, "--month", "2023-11")
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows[FT35]["usage_cost"] == "15.000000"
    assert rows[FT35]["base_model_cost"] == "3.000000"  # 2 x 1M x 1.50
    assert rows[FT35]["premium"] == "12.000000" and rows[FT35]["premium_pct"] == "400.00"
    assert rows[FT35_0125]["priced"] is True
    assert rows[FT35_0125]["usage_cost"] == "3.000000"
    assert rows[FT35_0125]["base_model_cost"] is None and rows[FT35_0125]["premium"] is None
    # Totals: the premium compares only models whose base cost is known.
    assert doc["totals"]["usage_cost"] == "18.000000"
    assert doc["totals"]["premium"] == "12.000000"
    assert doc["totals"]["premium_pct"] == "400.00"


def test_empty_month_reports_zeros_in_every_format(engine, cli):
    doc = report_json(cli, "--month", "2031-02")
    assert doc["rows"] == [] and doc["unpriced_models"] == []
    assert doc["totals"]["total_cost"] == "0.000000" and doc["totals"]["requests"] == 0
    assert doc["totals"]["premium_pct"] is None
    for fmt in ("table", "csv", "markdown", "html"):
        result = cli("report", "monthly", "--month", "2031-02", "--format", fmt)
        assert result.exit_code == 0, result.stderr
    assert cli("report", "monthly", "--month", "2031-02", "-f", "csv").stdout.count("\n") == 1


def parse_table(text: str, columns: list[str]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows of the people's table asked for with `--columns` (cells hold no spaces:
    $1,234.57, 12,345, 12.3%, n/a) and the cells of its TOTAL line."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("─")]
    body = lines[rules[0] + 1 : rules[1]]
    rows = [dict(zip(columns, line.split(), strict=True)) for line in body]
    total = lines[rules[1] + 1].split()
    assert total[0] == "TOTAL"
    return rows, total[1:]


def parse_markdown(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """Markdown rows keyed like the JSON rows (headers are labels), and the TOTAL cells."""
    from ledger.reports.render import NUMBER_COLUMNS

    labels = {c.label: c.key for c in NUMBER_COLUMNS}
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    header = [labels.get(h, h.replace(" ", "_")) for h in header]
    cells = [[c.strip().strip("*") for c in line.strip("|").split("|")] for line in table[2:]]
    rows = [dict(zip(header, c, strict=True)) for c in cells[:-1]]
    assert cells[-1][0] == "TOTAL"
    return rows, [c for c in cells[-1][1:] if c]


def as_text(value) -> str:
    return "n/a" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def for_people(field: str, value) -> str:
    """How a JSON number reads in the table and Markdown ($, separators, 1-decimal %)."""
    from ledger.reports.render import NUMBER_COLUMNS
    from ledger.reports.text import people_cell

    kind = next(c.kind for c in NUMBER_COLUMNS if c.key == field)
    return people_cell(kind, value)


@pytest.mark.parametrize("by", ["model", "project", "day", "base-model"])
def test_all_formats_agree_to_the_last_digit(engine, book, cli, by):
    seed_november(engine, book)
    doc = report_json(cli, "--month", "2024-11", "--by", by)
    key = {"model": "model", "project": "project", "day": "day", "base-model": "base_model"}[by]
    expected = {r[key]: r for r in doc["rows"]}

    def run(fmt: str, *more: str) -> str:
        args = ("report", "monthly", "--month", "2024-11", "--by", by, "-f", fmt, *more)
        return cli(*args).stdout

    csv_rows = list(csv.DictReader(io.StringIO(run("csv"))))
    assert list(csv_rows[0]) == list(doc["rows"][0])  # CSV columns are the JSON row keys
    md_rows, md_total = parse_markdown(run("markdown"))
    columns = [key, *NUMBERS]
    tb_rows, tb_total = parse_table(run("table", "--wide", "--columns", ",".join(columns)), columns)
    assert len(csv_rows) == len(md_rows) == len(tb_rows) == len(expected) > 0
    for row in csv_rows:  # machines: the exact digits
        want = expected[row[key]]
        for field in NUMBERS:
            assert (row[field] or "n/a") == as_text(want[field]), (field, row[key])
    for parsed in (md_rows, tb_rows):  # people: the same numbers, rounded for reading
        for row in parsed:
            want = expected[row[key]]
            for field in NUMBERS:
                assert row[field] == for_people(field, want[field]), (field, row[key])
    totals = [for_people(f, doc["totals"][f]) for f in NUMBERS]
    assert md_total == totals
    assert tb_total == totals


def test_totals_do_not_depend_on_the_grouping(engine, book, cli):
    seed_november(engine, book)
    totals = [
        report_json(cli, "--month", "2024-11", "--by", by)["totals"]
        for by in ("model", "project", "day", "base-model")
    ]
    assert all(t == totals[0] for t in totals)


def test_table_and_markdown_show_previous_month_and_change(engine, book, cli):
    seed_november(engine, book)
    # October: 1M x 0.30 = 0.30 of usage plus the 5M-token fee at 3.00 = 15.00.
    doc = report_json(cli, "--month", "2024-11")
    assert doc["previous_month"] == {
        "month": "2024-10",
        "through_day": None,  # November 2024 is over: the whole of October
        "total_cost": "15.300000",
        "change": "-2.1935125",
        "change_pct": "-14.34",
    }
    for fmt in ("table", "markdown"):
        out = cli("report", "monthly", "--month", "2024-11", "-f", fmt).stdout
        assert "Previous month 2024-10: $15.30; change -$2.19 (-14.3%)" in out


def test_default_month_is_the_current_utc_month(engine, book, cli):
    now = int(time.time())
    post(engine, book, usage(FT, time.strftime("%Y-%m-%dT%H:00", time.gmtime(now)), inp=10))
    doc = report_json(cli)
    assert doc["month"] == time.strftime("%Y-%m", time.gmtime(now))
    assert doc["totals"]["input_tokens"] == 10


def test_time_zone_does_not_change_the_month(engine, book, cli, monkeypatch):
    post(engine, book, usage(FT, "2024-11-30T23:00", inp=1_000_000))
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    try:
        assert report_json(cli, "--month", "2024-11")["totals"]["usage_cost"] == "0.300000"
        assert report_json(cli, "--month", "2024-12")["rows"] == []
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_bad_month_is_a_usage_error(engine, cli):
    result = cli("report", "monthly", "--month", "2024-13")
    assert result.exit_code == 2
    assert "2024-13" in result.stderr


def test_html_is_one_offline_file_with_both_charts(engine, book, cli, tmp_path):
    seed_november(engine, book)
    out = tmp_path / "r.html"
    result = cli("report", "monthly", "--month", "2024-11", "-f", "html", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'aria-label="Daily spend by model"' in page
    assert 'aria-label="Fine-tuned cost beside base-model cost"' in page
    assert page.count("<rect") >= 5  # daily bars plus the paired bars
    assert ">$13.11<" in page  # the total in dollars in the detail table
    assert "Data as of 2024-11-" in page
    assert 'aria-label="Daily spend by model"' in page and "training fees" in page
    assert MYSTERY in page  # the unpriced model is called out


def test_money_text_is_exact_and_never_scientific():
    from ledger.reports.text import money_text

    assert money_text(1) == "0.000000000001"  # one pico-dollar
    assert money_text(-75_000) == "-0.000000075"
    assert money_text(1_500_000_000_000) == "1.500000"
    assert money_text(None) is None
