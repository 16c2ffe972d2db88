"""Corrections, never edits: training fees that were unpriced or revised upstream, and
`ftledger reprice --all` after a price was fixed in the book (issue 12, items 6 and 7)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ledger.config_file import LedgerConfig
from ledger.domain import JobObservation, UsageKey, UsageObservation
from ledger.pricebook import PriceBook, load_pricebook
from ledger.resources import bundled_config_dir
from ledger.store.ledger import post_usage
from ledger.store.read import fee_rows, usage_rows
from ledger.store.tables import TrainingFee, UsageEntry
from ledger.sync import SourceSpec, poll_sources

NOW = 1_750_000_000  # 2025-06-15
FINISHED = NOW - 3600
NOV = 1_730_419_200  # 2024-11-01T00:00:00Z
DAY = 86_400
BUNDLED = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")


def acme_model(input_price: str, training: str | None = "2.00") -> str:
    """A model of our own: base prices, and fine-tuned prices (training optional)."""
    fine_tuned = (
        f"""
  [[model.fine_tuned_price]]
  effective = 2024-01-01
  training = "{training}"
  input = "{input_price}"
  output = "8.00"
"""
        if training
        else ""
    )
    return f"""
[[model]]
name = "acme-base"
encoding = "o200k_base"
  [[model.price]]
  effective = 2024-01-01
  input = "{input_price}"
  output = "8.00"
{fine_tuned}"""


def write_book(config_dir: Path, extra: str = "") -> PriceBook:
    path = config_dir / "prices.toml"
    path.write_text(BUNDLED + extra, encoding="utf-8")
    return load_pricebook(path)


class Reader:
    def __init__(self, job: JobObservation):
        self.job = job

    def jobs(self, project_name=None):
        yield self.job


def poll_job(engine, book: PriceBook, job: JobObservation):
    spec = SourceSpec("openai.jobs:p", "jobs", lambda: Reader(job), "p")
    return poll_sources(engine, book, LedgerConfig(), [spec], now=NOW)


def job(model: str, tokens: int, job_id: str = "ftjob-1") -> JobObservation:
    return JobObservation(
        job_id, model, f"ft:{model}:acme::x1", "succeeded", "supervised", 3, tokens,
        NOW - DAY, FINISHED, project="p",
    )  # fmt: skip


def the_fee(engine):
    with engine.connect() as conn:
        [row] = fee_rows(conn, FINISHED - DAY, FINISHED + DAY)
        entries = conn.execute(
            select(
                TrainingFee.revision, TrainingFee.trained_tokens, TrainingFee.cost_pico
            ).order_by(TrainingFee.revision)
        ).all()
    return row, [tuple(e) for e in entries]


def reprice(cli, *args: str) -> list[dict]:
    result = cli("reprice", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["rows"]


# --- item 6: training fees ------------------------------------------------------------


@pytest.mark.parametrize("via", ["reprice", "poll"])
def test_a_fee_recorded_without_a_price_is_priced_later_by_a_correction(
    engine, cli, config_dir, via
):
    before = write_book(config_dir)  # acme-base has no price yet
    poll_job(engine, before, job("acme-base", 1_000_000))
    row, entries = the_fee(engine)
    assert row.cost.unpriced == 1 and entries == [(1, 1_000_000, None)]

    after = write_book(config_dir, acme_model("2.00", training="2.00"))
    if via == "reprice":
        [out] = reprice(cli)
        assert (out["fees_repriced"], out["difference"]) == (1, "2.000000")
    else:
        assert poll_job(engine, after, job("acme-base", 1_000_000)).sources[0].fees_posted == 1
    row, entries = the_fee(engine)
    assert (row.cost.known, row.cost.unpriced) == (2_000_000_000_000, 0)  # 1M x $2/M
    assert entries == [(1, 1_000_000, None), (2, 0, 2_000_000_000_000)]  # the first kept
    assert reprice(cli) == [] and poll_job(engine, after, job("acme-base", 1_000_000))
    assert len(the_fee(engine)[1]) == 2  # again: nothing more


def test_a_revised_trained_tokens_posts_the_difference_with_a_note(engine, cli, book):
    poll_job(engine, book, job("gpt-4o-mini-2024-07-18", 1_000_000))
    report = poll_job(engine, book, job("gpt-4o-mini-2024-07-18", 1_200_000))
    [source] = report.sources
    assert source.fees_posted == 1
    assert source.notes == [
        "job ftjob-1: trained_tokens revised upstream from 1000000 to 1200000; "
        "the fee's difference was posted"
    ]
    row, entries = the_fee(engine)
    assert (row.trained_tokens, row.cost.known) == (1_200_000, 3_600_000_000_000)  # $3/M
    assert entries == [(1, 1_000_000, 3_000_000_000_000), (2, 200_000, 600_000_000_000)]
    assert poll_job(engine, book, job("gpt-4o-mini-2024-07-18", 1_200_000)).sources[0].notes == []
    assert len(the_fee(engine)[1]) == 2
    # The estimate comparison reads the job's whole fee.
    report_text = cli("report", "monthly", "--month", "2025-06", "--format", "json")
    assert json.loads(report_text.stdout)["totals"]["training_cost"] == "3.600000"


# --- item 7: reprice --all --------------------------------------------------------------


def import_csv(cli, path: Path, rows: list[tuple[int, int]]) -> None:
    lines = ["start_time,end_time,model,input_tokens,output_tokens"]
    lines += [f"{start},{start + 3600},acme-base,{tokens},0" for start, tokens in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("import", "usage", str(path))
    assert result.exit_code == 0, result.stderr


def costs_by_day(engine) -> dict[int, int]:
    with engine.connect() as conn:
        rows = usage_rows(conn, NOV, NOV + 30 * DAY, grain=("day",))
    return {(r.day.day if r.day else 0): r.cost.known for r in rows}


def test_reprice_all_brings_every_key_to_the_fixed_price(engine, cli, config_dir, tmp_path):
    write_book(config_dir, acme_model("2.00"))  # wrong: should have been $1.00
    days = [NOV, NOV + DAY, NOV + 2 * DAY]
    import_csv(cli, tmp_path / "u.csv", [(d, 1_000_000) for d in days])
    assert costs_by_day(engine) == {1: 2 * 10**12, 2: 2 * 10**12, 3: 2 * 10**12}

    write_book(config_dir, acme_model("1.00"))  # the fix
    # Late data for day 3: a re-read prices its whole counts at the current book.
    import_csv(cli, tmp_path / "u.csv", [(d, 1_000_000) for d in days[:2]] + [(days[2], 1_500_000)])
    assert costs_by_day(engine) == {1: 2 * 10**12, 2: 2 * 10**12, 3: 15 * 10**11}

    [out] = reprice(cli, "--all", "--since", "2024-11-02", "--until", "2024-11-02")
    assert (out["model"], out["keys_repriced"], out["difference"]) == (
        "acme-base",
        1,
        "-1.000000",
    )
    assert costs_by_day(engine) == {1: 2 * 10**12, 2: 10**12, 3: 15 * 10**11}
    [out] = reprice(cli, "--all")
    assert out["keys_repriced"] == 1  # day 1; days 2 and 3 already hold the book's cost
    assert costs_by_day(engine) == {1: 10**12, 2: 10**12, 3: 15 * 10**11}
    assert reprice(cli, "--all") == []
    with engine.connect() as conn:  # append-only: three firsts, a late entry, two corrections
        assert conn.execute(select(func.count()).select_from(UsageEntry)).scalar_one() == 6
    # Every report agrees with the corrected total.
    doc = json.loads(cli("report", "monthly", "--month", "2024-11", "--format", "json").stdout)
    assert doc["totals"]["usage_cost"] == "3.500000"


def test_reprice_all_corrects_a_priced_fee(engine, cli, config_dir):
    poll_job(
        engine, write_book(config_dir, acme_model("2.00", training="2.00")), job("acme-base", 10**6)
    )
    write_book(config_dir, acme_model("2.00", training="1.50"))
    assert reprice(cli) == []  # plain reprice leaves priced fees alone
    [out] = reprice(cli, "--all")
    assert (out["fees_repriced"], out["difference"]) == (1, "-0.500000")
    row, entries = the_fee(engine)
    assert row.cost.known == 1_500_000_000_000 and len(entries) == 2


def test_reprice_all_gives_existing_tier_usage_its_tier_price(engine, cli, book, config_dir):
    """Usage in the priority tier recorded before the book had tier rows, at standard
    prices: `reprice --all` moves it to the priority price; flex usage of a model with no
    flex row keeps what it holds."""
    write_book(config_dir)  # the bundled book, as the CLI will load it
    standard = PriceBook(
        [replace(spec, tier_prices={}, tier_fine_tuned_prices={}) for spec in book],
        version="before-tiers",
    )
    may = 1_746_057_600  # 2025-05-01
    priority = UsageKey(
        "import", may, may + 3600, "gpt-4o-mini-2024-07-18", service_tier="priority"
    )
    flex = priority._replace(service_tier="flex")
    with engine.begin() as conn:
        import ledger.pricing as pricing

        # Before tiers were priced, every tier was priced as standard.
        original = pricing.tier_of
        pricing.tier_of = lambda _tier: ""
        try:
            post_usage(
                conn,
                {k: UsageObservation(k, 1, 10**6, 0, 10**6) for k in (priority, flex)},
                standard,
            )
        finally:
            pricing.tier_of = original
    with engine.connect() as conn:
        before = {r.tier: r.cost.known for r in usage_rows(conn, may, may + DAY, ("tier",))}
    assert before == {"priority": 750_000_000_000, "flex": 750_000_000_000}  # 0.15 + 0.60

    [out] = reprice(cli, "--all")
    assert out["keys_repriced"] == 1
    with engine.connect() as conn:
        after = {r.tier: r.cost.known for r in usage_rows(conn, may, may + DAY, ("tier",))}
    assert after == {"priority": 1_250_000_000_000, "flex": 750_000_000_000}  # 0.25 + 1.00
