"""The poll cycle against the sandbox: the ledger always equals the organisation's truth."""

from __future__ import annotations

import logging
import threading
from datetime import date

from sqlalchemy import String, Text, func, select
from sync_helpers import ADMIN_KEY, DAY, NOW, SINCE_TS, fees, ledger_usage, sandbox, true_usage

from ledger.domain import JobObservation
from ledger.money import per_token_pico
from ledger.period import utc_date
from ledger.store.base import Base
from ledger.store.tables import BilledCost, FineTuningJob, TrainingFee, UsageEntry
from ledger.sync import (
    COSTS_SOURCE,
    USAGE_SOURCE,
    SourceSpec,
    plan_windows,
    poll_sources,
    read_watermark,
)


def truth(sb, book, start=SINCE_TS):
    return true_usage(sb.org, book, start, sb.org.now + 3600)


def entry_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(UsageEntry)).scalar_one()


def test_first_poll_equals_truth_and_second_posts_nothing(engine, book):
    with sandbox(days=14, window_days=20) as sb:
        first = sb.poll(engine, book, since=date(2025, 6, 1))
        assert not first.failed, [s.error for s in first.failed]
        assert ledger_usage(engine) == truth(sb, book, start=1_748_736_000)
        # 15 days of hourly buckets in one window: 3 pages of at most 168 buckets
        assert sb.server.requests["usage"] == 3
        entries = entry_count(engine)
        second = sb.poll(engine, book)
        usage = next(s for s in second.sources if s.source == USAGE_SOURCE)
        assert usage.read > 0 and usage.posted == 0
        assert entry_count(engine) == entries
        assert all(s.posted == 0 and s.fees_posted == 0 for s in second.sources)


def test_billed_costs_mirror_exact_decimals(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
        expected = {
            (c.bucket_start, c.project_id, c.line_item): format(c.amount, "f")
            for c in sb.org.costs(SINCE_TS, sb.org.now)
        }
    with engine.connect() as conn:
        held = {
            (r.bucket_start, r.project_id, r.line_item): r.amount
            for r in conn.execute(select(BilledCost))
        }
    assert held == expected and len(held) > 10


def test_revision_after_first_poll_is_captured_exactly_once(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
        before = entry_count(engine)
        assert sb.org.revise(sb.org.now - 2 * DAY) > 0
        revised = sb.poll(engine, book)
        usage = next(s for s in revised.sources if s.source == USAGE_SOURCE)
        assert usage.posted > 0
        assert ledger_usage(engine) == truth(sb, book)
        assert entry_count(engine) == before + usage.posted
        again = sb.poll(engine, book)
        assert next(s for s in again.sources if s.source == USAGE_SOURCE).posted == 0
        assert ledger_usage(engine) == truth(sb, book)


def test_clock_moving_on_fills_the_partial_bucket(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
        sb.org.advance(sb.org.now + 5 * 3600 + 600)
        sb.poll(engine, book)
        assert ledger_usage(engine) == truth(sb, book)


def test_rate_limits_and_server_errors_are_retried(engine, book):
    with sandbox() as sb:
        sb.server.faults.rate_limit("usage", retry_after=0.01, times=2)
        sb.server.faults.error("costs", 502, times=1)
        sb.server.faults.error("jobs", 500, times=1)
        report = sb.poll(engine, book)
        assert not report.failed, [s.error for s in report.failed]
        assert ledger_usage(engine) == truth(sb, book)
        assert sb.server.faults.pending("usage") == 0


def test_timeouts_fail_cleanly_record_one_signal_and_the_next_poll_completes(engine, book):
    with sandbox(timeout_seconds=0.2, max_retries=1) as sb:
        sb.server.faults.slow("usage", 1.0, times=-1)
        first = sb.poll(engine, book, now=NOW)
        second = sb.poll(engine, book, now=NOW + 60)
        assert [s.source for s in second.failed] == [USAGE_SOURCE]
        assert "timed out" in (second.failed[0].error or "")
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.position is None and mark.consecutive_failures == 2
        assert mark.failing_since == NOW  # the streak's start, not each failure
        assert ledger_usage(engine) == {}
        assert read_watermark(engine, COSTS_SOURCE).failing_since is None
        assert first.failed and not any(s.source == COSTS_SOURCE for s in first.failed)
        sb.server.faults.clear()
        sb.poll(engine, book, now=NOW + 120)
        assert ledger_usage(engine) == truth(sb, book)
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.failing_since is None and mark.last_error is None
        assert mark.consecutive_failures == 0 and mark.last_success_at == NOW + 120


def test_a_window_that_fails_midway_writes_nothing_of_itself(engine, book):
    with sandbox(window_days=1, lookback_days=1, max_retries=0) as sb:
        # the third usage request fails for good: windows 1-2 are in, window 3 is not
        sb.server.faults.error("usage", 500, times=-1, skip=2)
        sb.poll(engine, book)
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.position == SINCE_TS + 2 * DAY
        assert ledger_usage(engine) == true_usage(sb.org, book, SINCE_TS, mark.position)
        sb.server.faults.clear()
        sb.poll(engine, book)
        assert ledger_usage(engine) == truth(sb, book)


def test_concurrent_polls_do_not_double_count(engine, book):
    with sandbox() as sb:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                report = sb.poll(engine, book)
                errors.extend(RuntimeError(s.error) for s in report.failed)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert ledger_usage(engine) == truth(sb, book)
        assert set(fees(engine)) == {
            j.id for j in sb.org.jobs() if j.terminal and j.trained_tokens is not None
        }


def test_job_running_to_succeeded_is_charged_once(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
        running = next(
            j for j in sb.org.jobs() if j.status == "running" and j.method == "supervised"
        )
        assert running.id not in fees(engine)
        sb.org.complete_job(running.id)
        sb.poll(engine, book)
        sb.poll(engine, book)
        done = sb.org.job(running.id).observation()
        price = book.price_at(f"ft:{done.model}", utc_date(done.finished_at)).training
        assert fees(engine)[running.id] == done.trained_tokens * per_token_pico(price)
        with engine.connect() as conn:
            assert (
                conn.execute(
                    select(func.count()).where(TrainingFee.job_id == running.id)
                ).scalar_one()
                == 1
            )
            assert (
                conn.execute(
                    select(FineTuningJob.status).where(FineTuningJob.id == running.id)
                ).scalar_one()
                == "succeeded"
            )


def test_a_stale_running_reading_never_overwrites_a_terminal_state(engine, book, tmp_path):
    from ledger.config_file import LedgerConfig

    finished = JobObservation(
        "ftjob-1", "gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini-2024-07-18:acme::x1", "succeeded",
        "supervised", 3, 1_000_000, NOW - DAY, NOW - 3600, project="p",
    )  # fmt: skip
    stale = JobObservation(
        "ftjob-1", "gpt-4o-mini-2024-07-18", None, "running", "supervised", 3, None, NOW - DAY,
        None, project="p",
    )  # fmt: skip

    class Reader:
        def __init__(self, job):
            self.job = job

        def jobs(self, project_name=None):
            yield self.job

    for job in (finished, stale, finished):
        spec = SourceSpec("openai.jobs:p", "jobs", lambda job=job: Reader(job), "p")
        poll_sources(engine, book, LedgerConfig(), [spec], now=NOW)
    with engine.connect() as conn:
        row = conn.execute(select(FineTuningJob)).one()
    assert (row.status, row.trained_tokens) == ("succeeded", 1_000_000)
    assert fees(engine) == {"ftjob-1": 3_000_000_000_000}  # 1M x $3.00/M


def test_reinforcement_jobs_are_recorded_and_flagged_without_a_cost(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
    with engine.connect() as conn:
        rows = conn.execute(
            select(FineTuningJob.id, FineTuningJob.billing_note).where(
                FineTuningJob.method == "reinforcement"
            )
        ).all()
        assert rows and all("per training hour" in (note or "") for _, note in rows)
        costs = conn.execute(
            select(TrainingFee.cost_pico).where(TrainingFee.method == "reinforcement")
        ).all()
    assert costs and all(c is None for (c,) in costs)


def test_conflicting_duplicate_usage_is_an_error_naming_the_endpoint(engine, book):
    from ledger.config_file import LedgerConfig
    from ledger.domain import UsageKey, UsageObservation

    key = UsageKey("openai", SINCE_TS, SINCE_TS + 3600, "gpt-4o-mini")

    class Reader:
        def usage_pages(self, start, end, width):
            if start == SINCE_TS:
                yield [UsageObservation(key, 1, 10, 0, 5)]
                yield [UsageObservation(key, 1, 10, 0, 5), UsageObservation(key, 2, 20, 0, 5)]

    spec = SourceSpec(USAGE_SOURCE, "usage", Reader)
    report = poll_sources(engine, book, LedgerConfig(), [spec], since=date(2025, 6, 11), now=NOW)
    assert "/v1/organization/usage/completions" in (report.failed[0].error or "")
    assert entry_count(engine) == 0


def test_keys_are_never_stored_or_logged(engine, book, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with sandbox(max_retries=0) as sb:
        sb.server.faults.echo_key("costs")  # the server quotes the key in its error
        sb.server.faults.echo_key("jobs")
        report = sb.poll(engine, book)
    assert report.failed  # the echoed errors were recorded
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err, *(s.error or "" for s in report.sources)]
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if isinstance(c.type, String | Text)]
            for row in conn.execute(select(*cols)) if cols else []:
                texts.extend(str(v) for v in row if v is not None)
    assert any("HTTP 500" in t for t in texts)
    for secret in ("CANARY", ADMIN_KEY[-8:]):
        assert not [t for t in texts if secret in t]


def test_plan_windows_first_poll_backfill_and_lookback():
    h = 3600
    now = 1_750_000_000  # 2025-06-15T15:06:40Z
    first = plan_windows(None, None, now=now, width=h, lookback_days=3, window_days=3)
    assert first[0][0] == 1_746_057_600  # 2025-05-01, the first day of last month
    assert first[-1][1] == 1_750_003_200  # the end of the bucket holding now
    assert all(b - a == 3 * DAY for a, b in first[:-1])
    later = plan_windows(now - 600, None, now=now, width=h, lookback_days=3, window_days=3)
    assert later[0][0] == now - 600 - 3 * DAY - (now - 600 - 3 * DAY) % h
    backfill = plan_windows(
        now, date(2025, 1, 1), now=now, width=h, lookback_days=3, window_days=30
    )
    assert backfill[0][0] == 1_735_689_600
    jan = plan_windows(None, None, now=1_736_000_000, width=DAY, lookback_days=0, window_days=3)
    assert jan[0][0] == 1_733_011_200  # 2024-12-01: December of the previous year


def test_a_steady_re_read_posts_only_what_changed_and_counts_the_rest(engine, book):
    """A re-read lookback window is compared with the ledger in bulk: keys held as read
    post nothing (several revisions summed), changed and new keys post, and a key held
    without a price goes on to posting (which prices it once a price exists)."""
    from ledger.config_file import LedgerConfig
    from ledger.domain import UsageKey, UsageObservation

    hours = [SINCE_TS + h * 3600 for h in range(4)]
    keys = [UsageKey("openai", h, h + 3600, "ft:gpt-4o-mini-2024-07-18:acme:x:Y1") for h in hours]
    odd = UsageKey("openai", hours[0], hours[0] + 3600, "ft:no-such-base:acme:x:Z")
    readings = {k: UsageObservation(k, 1, 100, 0, 10) for k in keys}
    readings[odd] = UsageObservation(odd, 1, 100, 0, 10)

    class Reader:
        def usage_pages(self, start, end, width):
            yield [o for o in readings.values() if start <= o.key.bucket_start < end]

    spec = SourceSpec(USAGE_SOURCE, "usage", Reader)
    since = date(2025, 6, 11)

    def poll():
        report = poll_sources(engine, book, LedgerConfig(), [spec], since=since, now=NOW)
        assert not report.failed, report.failed
        return report.sources[0]

    first = poll()
    assert (first.posted, first.unchanged) == (5, 0)
    readings[keys[1]] = UsageObservation(keys[1], 2, 200, 0, 20)  # revised: revision 2
    second = poll()
    assert (second.read, second.posted, second.unchanged) == (5, 1, 4)
    third = poll()  # keys[1] now sums two entries, equal to its reading
    assert (third.read, third.posted, third.unchanged) == (5, 0, 5)
    readings[keys[3]] = UsageObservation(keys[3], 3, 300, 0, 30)
    readings[UsageKey("openai", hours[2], hours[2] + 3600, "gpt-4o-mini")] = UsageObservation(
        UsageKey("openai", hours[2], hours[2] + 3600, "gpt-4o-mini"), 1, 10, 0, 1
    )
    fourth = poll()
    assert (fourth.read, fourth.posted, fourth.unchanged) == (6, 2, 4)
    assert entry_count(engine) == 8
    assert ledger_usage(engine)[tuple(keys[1])][:4] == (2, 200, 0, 20)
