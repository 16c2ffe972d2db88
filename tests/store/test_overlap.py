"""One usage, counted once: a change of bucket width, and an import of buckets the poll
already holds (or a poll of buckets an import holds), leave the month's totals unchanged.

Every view reads the same read model, so `report monthly`, `reconcile` and `budgets
status` are asked for the month's total after each step; they must agree with each
other and with the total before the second observation of the same usage arrived.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sync_helpers import SINCE_TS, sandbox

from ledger.domain import UsageObservation
from ledger.period import iso_utc
from ledger.store.tables import UsageEntry
from ledger.sync import USAGE_SOURCE

MONTH = "2025-06"
DAY = 86400
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
COLUMNS = (
    "start_time",
    "end_time",
    "model",
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
    "num_model_requests",
    "input_tokens",
    "input_cached_tokens",
    "output_tokens",
)


def run_json(cli, *args: str) -> dict:
    result = cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def month_total(cli) -> Decimal:
    """The month's total as three commands tell it; they must agree."""
    monthly = Decimal(run_json(cli, "report", "monthly", "--month", MONTH)["totals"]["total_cost"])
    reconcile = Decimal(run_json(cli, "reconcile", "--month", MONTH)["totals"]["computed_cost"])
    status = run_json(cli, "budgets", "status", "--now", "2025-06-30T23:00:00Z")
    [budget] = [b for b in status["rows"] if b["budget"] == "organisation"]
    assert monthly == reconcile == Decimal(budget["spend"]), (monthly, reconcile, budget)
    return monthly


def usage_by_day(engine) -> dict[tuple, tuple]:
    """Tokens and cost per UTC day and dimensions, whatever the bucket width."""
    day = (UsageEntry.bucket_start // DAY).label("day")
    dims = (UsageEntry.model, UsageEntry.project_id, UsageEntry.api_key_id, UsageEntry.batch)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                day,
                *dims,
                UsageEntry.service_tier,
                func.sum(UsageEntry.input_tokens),
                func.sum(UsageEntry.output_tokens),
                func.sum(UsageEntry.cost_pico),
            ).group_by(day, *dims, UsageEntry.service_tier)
        ).all()
    return {
        tuple(r[:6]): tuple(None if v is None else int(v) for v in r[6:])
        for r in rows
        if r[6] or r[7] or r[8]
    }


def sources_held(engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(UsageEntry.source, func.sum(UsageEntry.input_tokens)).group_by(UsageEntry.source)
        ).all()
    return {source: int(tokens) for source, tokens in rows}


def write_csv(path: Path, observations: list[UsageObservation]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for obs in observations:
            k = obs.key
            writer.writerow(
                [
                    k.bucket_start,
                    k.bucket_end,
                    k.model,
                    k.project_id,
                    k.api_key_id,
                    k.user_id,
                    "true" if k.batch else "false",
                    k.service_tier,
                    obs.requests,
                    obs.input_tokens,
                    obs.cached_tokens,
                    obs.output_tokens,
                ]
            )
    return path


def used(observations: list[UsageObservation]) -> list[UsageObservation]:
    return [o for o in observations if o.requests or o.input_tokens or o.output_tokens]


# --- item 2: a change of bucket width -------------------------------------------------


def _change_width(engine, book, cli, config_dir, first: str, second: str) -> None:
    (config_dir / "budgets.toml").write_text(BUDGETS, encoding="utf-8")
    with sandbox(days=6, bucket_width=first) as sb:
        assert not sb.poll(engine, book).failed
        before, by_day = month_total(cli), usage_by_day(engine)
        assert before > 0
        sb.config = replace(sb.config, bucket_width=second)
        report = sb.poll(engine, book)
        assert not report.failed, [s.error for s in report.failed]
        usage = next(s for s in report.sources if s.source == USAGE_SOURCE)
        assert usage.superseded > 0  # the re-read days changed width
        assert month_total(cli) == before
        assert usage_by_day(engine) == by_day
        entries = _entry_count(engine)
        again = sb.poll(engine, book)
        usage = next(s for s in again.sources if s.source == USAGE_SOURCE)
        assert usage.posted == usage.superseded == 0  # settled: nothing more to post
        assert _entry_count(engine) == entries
        # And back: the superseded width is read again and the other one superseded.
        sb.config = replace(sb.config, bucket_width=first)
        assert not sb.poll(engine, book).failed
        assert month_total(cli) == before
        assert usage_by_day(engine) == by_day


def _entry_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageEntry)).scalar_one()


def test_hourly_to_daily_supersedes_the_hours_and_keeps_the_total(engine, book, cli, config_dir):
    _change_width(engine, book, cli, config_dir, "1h", "1d")


def test_daily_to_hourly_supersedes_the_days_and_keeps_the_total(engine, book, cli, config_dir):
    _change_width(engine, book, cli, config_dir, "1d", "1h")


def test_superseding_posts_reversing_entries_and_edits_nothing(engine, book):
    with sandbox(days=4, bucket_width="1h") as sb:
        sb.poll(engine, book)
        with engine.connect() as conn:
            first = conn.execute(select(UsageEntry).order_by(UsageEntry.id)).all()
        sb.config = replace(sb.config, bucket_width="1d")
        sb.poll(engine, book)
    with engine.connect() as conn:
        after = conn.execute(select(UsageEntry).order_by(UsageEntry.id)).all()
        reversed_ = conn.execute(
            select(func.count()).where(UsageEntry.revision > 1, UsageEntry.input_tokens < 0)
        ).scalar_one()
    assert after[: len(first)] == first  # every earlier entry is as it was
    assert reversed_ > 0


# --- item 3: an import and a poll of the same buckets ----------------------------------


@pytest.mark.usefixtures("either_reader")
def test_importing_polled_buckets_is_refused_with_the_line_bucket_and_source(
    engine, book, cli, config_dir, tmp_path
):
    (config_dir / "budgets.toml").write_text(BUDGETS, encoding="utf-8")
    with sandbox(days=4) as sb:
        assert not sb.poll(engine, book).failed
        rows = used(sb.org.usage_rows(SINCE_TS + DAY, SINCE_TS + DAY + 3 * 3600))
    before, held = month_total(cli), sources_held(engine)
    path = write_csv(tmp_path / "export.csv", rows)
    result = cli("import", "usage", str(path))
    assert result.exit_code == 1
    first = rows[0].key
    assert f"export.csv:2: bucket {iso_utc(first.bucket_start)}" in result.stderr
    assert "held from source 'openai'" in result.stderr  # the poll's entries
    assert first.model in result.stderr and "Traceback" not in result.stderr
    assert month_total(cli) == before and sources_held(engine) == held
    # A daily total of the same hours overlaps them just the same.
    day = [rows[0]._replace(key=rows[0].key._replace(bucket_end=SINCE_TS + 2 * DAY))]
    result = cli("import", "usage", str(write_csv(tmp_path / "daily.csv", day)))
    assert result.exit_code == 1 and "daily.csv:2:" in result.stderr
    assert sources_held(engine) == held
    # Other dimensions (a project the poll does not know) are other usage: imported.
    other = [rows[0]._replace(key=rows[0].key._replace(project_id="proj_elsewhere"))]
    result = cli("import", "usage", str(write_csv(tmp_path / "other.csv", other)))
    assert result.exit_code == 0, result.stderr
    assert month_total(cli) > before


def test_poll_after_an_import_skips_the_imported_buckets(engine, book, cli, config_dir, tmp_path):
    (config_dir / "budgets.toml").write_text(BUDGETS, encoding="utf-8")
    with sandbox(days=4) as sb:
        rows = used(sb.org.usage_rows(SINCE_TS + DAY, SINCE_TS + 2 * DAY))
        path = write_csv(tmp_path / "day.csv", rows)
        assert cli("import", "usage", str(path)).exit_code == 0
        report = sb.poll(engine, book)
        assert not report.failed, [s.error for s in report.failed]
        usage = next(s for s in report.sources if s.source == USAGE_SOURCE)
        assert usage.skipped == len(rows)
        total = month_total(cli)
        # The same organisation polled into an empty ledger tells the same total.
        imported_tokens = sources_held(engine)["import"]
        assert imported_tokens == sum(r.input_tokens for r in rows)
        again = sb.poll(engine, book)
        assert next(s for s in again.sources if s.source == USAGE_SOURCE).posted == 0
        assert cli("import", "usage", str(path)).exit_code == 0  # a re-import: nothing new
        assert month_total(cli) == total
    with sandbox(days=4) as sb:
        fresh = engine_total_of_fresh_poll(sb, book, tmp_path)
    assert total == fresh


def engine_total_of_fresh_poll(sb, book, tmp_path) -> Decimal:
    """The month's usage cost in a second, empty SQLite ledger polled from `sb`."""
    from ledger.store import migrate
    from ledger.store.engine import create_ledger_engine

    other = create_ledger_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(other)
    try:
        assert not sb.poll(other, book).failed
        with other.connect() as conn:
            usage = conn.execute(select(func.sum(UsageEntry.cost_pico))).scalar_one()
        with_fees = _fees_total(other)
    finally:
        other.dispose()
    return (Decimal(int(usage)) + with_fees) / Decimal(10**12)


def _fees_total(engine) -> Decimal:
    from ledger.store.tables import TrainingFee

    with engine.connect() as conn:
        fees = conn.execute(
            select(func.sum(TrainingFee.cost_pico)).where(
                TrainingFee.finished_at >= 1_748_736_000, TrainingFee.finished_at < 1_751_328_000
            )
        ).scalar_one()
    return Decimal(int(fees or 0))


@pytest.mark.usefixtures("either_reader")
def test_an_import_overlapping_its_own_source_at_another_width_is_refused(
    engine, book, cli, tmp_path
):
    with sandbox(days=3) as sb:
        hours = used(sb.org.usage_rows(SINCE_TS + 3 * DAY, SINCE_TS + 4 * DAY))
        days = used(sb.org.usage_rows(SINCE_TS + 3 * DAY, SINCE_TS + 4 * DAY, "1d"))
    # Within one file: an hour and the day holding it are the same usage.
    day = days[0]
    hour = next(h for h in hours if h.key[3:] == day.key[3:])
    result = cli("import", "usage", str(write_csv(tmp_path / "both.csv", [hour, day])))
    assert result.exit_code == 1 and "both.csv:3:" in result.stderr
    assert sources_held(engine) == {}
    # Across imports of one source: the hours held, then the days.
    assert cli("import", "usage", str(write_csv(tmp_path / "h.csv", hours))).exit_code == 0
    held = sources_held(engine)
    result = cli("import", "usage", str(write_csv(tmp_path / "d.csv", days)))
    assert result.exit_code == 1 and "d.csv:2:" in result.stderr
    assert "held from source 'import'" in result.stderr
    assert sources_held(engine) == held


@pytest.mark.parametrize("days_from", ["import", "poll"])
@pytest.mark.usefixtures("either_reader")
def test_hours_after_a_held_day_began_are_refused_however_it_was_posted(
    engine, book, cli, tmp_path, days_from
):
    """The check reaches back by the longest bucket held (store.ledger.note_kinds, kept
    by every kind of posting): hours from noon on lie inside a day that began at midnight,
    before any hour of the file."""
    with sandbox(days=3, bucket_width="1d") as sb:
        day0 = SINCE_TS + 3 * DAY
        days = used(sb.org.usage_rows(day0, day0 + DAY, "1d"))
        afternoon = used(sb.org.usage_rows(day0 + DAY // 2, day0 + DAY))
        if days_from == "poll":
            assert not sb.poll(engine, book).failed
        else:
            assert cli("import", "usage", str(write_csv(tmp_path / "d.csv", days))).exit_code == 0
    held = sources_held(engine)
    path = write_csv(tmp_path / "afternoon.csv", afternoon)
    result = cli("import", "usage", str(path), "--source", "export")
    assert result.exit_code == 1, result.stdout
    assert "afternoon.csv:2:" in result.stderr and "count that usage twice" in result.stderr
    assert sources_held(engine) == held
