"""Upstream values are checked before they are posted (ledger/sources/checks.py).

The sandbox answers a well-formed page whose values are bent (`FaultPlan.rewrite`):
each bad value is skipped and named (source, bucket or job, field) in the poll summary
and in `status`; the rest of the window is posted, the watermark advances (a bad value
that never changes cannot hold the poll back), and nothing raises. Once the upstream
is corrected, the next poll's re-read completes the ledger to the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sync_helpers import SINCE_TS, fees, ledger_usage, sandbox, true_usage

from ledger.domain import CostObservation, JobObservation, UsageKey, UsageObservation
from ledger.period import floor_to
from ledger.sources import checks
from ledger.store.tables import BilledCost, FineTuningJob, TrainingFee, UsageEntry
from ledger.sync import COSTS_SOURCE, USAGE_SOURCE, CycleReport, SourceReport, read_watermark

HOUR = 3600
DAY = 86400
Body = dict[str, Any]


def busy(body: Body) -> Body:
    """The first bucket of a page that has results."""
    return next(b for b in body["data"] if b.get("results"))


def set_result(**values: Any) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        busy(body)["results"][0].update(values)
        return body

    return change


def more_cached_than_input(body: Body) -> Body:
    result = busy(body)["results"][0]
    result["input_cached_tokens"] = result["input_tokens"] + 1
    return body


def set_bucket(
    shift: int = 0, swap: bool = False, end: int | None = None
) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        bucket = busy(body)
        bucket["start_time"] += shift
        bucket["end_time"] += shift
        if swap:
            bucket["start_time"], bucket["end_time"] = bucket["end_time"], bucket["start_time"]
        if end is not None:
            bucket["end_time"] = end
        return body

    return change


def stop_short(body: Body) -> Body:
    body["data"] = body["data"][:3]
    body["has_more"], body["next_page"] = False, None
    return body


# (id, how the first usage page is bent, what the usage source's error says)
USAGE_CASES = [
    ("negative-tokens", set_result(input_tokens=-5), "input_tokens -5 is negative"),
    ("negative-requests", set_result(num_model_requests=-1), "num_model_requests -1 is negative"),
    ("cached-above-input", more_cached_than_input, "input_cached_tokens "),
    ("beyond-bigint", set_result(output_tokens=10**20), "output_tokens 10000000000000000"),
    (
        "cost-overflows-an-entry",
        set_result(model="ft:gpt-4o-2024-08-06:acme:x:1", input_tokens=4 * 10**18),
        "cost overflows one entry",
    ),
    ("long-model", set_result(model="m" * 256), "model is longer than 255 characters (256)"),
    ("long-project", set_result(project_id="p" * 129), "project_id is longer than 128"),
    ("long-key", set_result(api_key_id="k" * 129), "api_key_id is longer than 128"),
    ("long-tier", set_result(service_tier="t" * 33), "service_tier is longer than 32"),
    ("nul-byte", set_result(project_id="proj_\x00x"), "project_id contains a NUL character"),
    ("lone-surrogate", set_result(model="ft:gpt-4o\ud800"), "model contains a lone surrogate"),
    ("bucket-outside-window", set_bucket(shift=-30 * DAY), "outside the"),
    ("bucket-ends-before-start", set_bucket(swap=True), "end_time is not after start_time"),
    ("time-beyond-bigint", set_bucket(end=10**20), "end_time 100000000000000000000 is too"),
]


def source(report: CycleReport, name: str) -> SourceReport:
    return next(s for s in report.sources if s.source == name)


def usage_truth(sb: Any, book: Any) -> dict[tuple, tuple]:
    return true_usage(sb.org, book, SINCE_TS, sb.org.now + HOUR)


@pytest.mark.parametrize(
    ("change", "expected"), [c[1:] for c in USAGE_CASES], ids=[c[0] for c in USAGE_CASES]
)
def test_a_bad_usage_value_is_skipped_and_named_and_the_rest_posted(engine, book, change, expected):
    with sandbox(lookback_days=4, window_days=2) as sb:
        sb.server.faults.rewrite("usage", change)
        report = sb.poll(engine, book)
        usage = source(report, USAGE_SOURCE)
        assert usage.error is not None and expected in usage.error, usage.error
        assert "skipped " in usage.error and "bucket " in usage.error
        assert [s.source for s in report.failed] == [USAGE_SOURCE]
        truth = usage_truth(sb, book)
        held = ledger_usage(engine)
        assert all(held[k] == truth.get(k) for k in held)  # nothing wrong was posted
        missing = set(truth) - set(held)
        assert missing and len({k[1] for k in missing}) == 1  # only the bent bucket
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.position == floor_to(sb.org.now, HOUR)  # not held back
        assert mark.last_error == usage.error and mark.consecutive_failures == 1
        assert "\x00" not in mark.last_error

        again = sb.poll(engine, book)  # the upstream corrected the bucket
        assert not again.failed, [s.error for s in again.failed]
        assert ledger_usage(engine) == truth
        assert read_watermark(engine, USAGE_SOURCE).last_error is None


def test_a_bad_bucket_that_never_changes_does_not_hold_the_watermark(engine, book):
    with sandbox(lookback_days=1, window_days=1) as sb:
        sb.server.faults.rewrite("usage", set_result(input_tokens=-5), times=-1)
        first = sb.poll(engine, book)
        assert "input_tokens -5 is negative" in (source(first, USAGE_SOURCE).error or "")
        sb.org.advance(sb.org.now + 2 * DAY)
        second = sb.poll(engine, book)
        assert "input_tokens -5 is negative" in (source(second, USAGE_SOURCE).error or "")
        mark = read_watermark(engine, USAGE_SOURCE)
        assert mark.position == floor_to(sb.org.now, HOUR)
        assert mark.last_error == source(second, USAGE_SOURCE).error
        with engine.connect() as conn:
            counts = conn.execute(select(UsageEntry.input_tokens)).scalars().all()
        assert counts and min(counts) >= 0


def test_usage_pages_that_stop_short_of_the_window_are_a_recorded_gap(engine, book):
    with sandbox(lookback_days=4, window_days=2) as sb:
        sb.server.faults.rewrite("usage", stop_short)
        report = sb.poll(engine, book)
        usage = source(report, USAGE_SOURCE)
        assert usage.error is not None
        assert usage.error.endswith(
            "usage 2025-06-11T00:00:00Z..2025-06-13T00:00:00Z: pages stopped short at "
            "2025-06-11T03:00:00Z: no bucket for the rest (a gap)"
        )
        assert read_watermark(engine, USAGE_SOURCE).last_error == usage.error
        truth = usage_truth(sb, book)
        held = ledger_usage(engine)
        assert all(held[k] == truth.get(k) for k in held)
        assert {k[1] for k in set(truth) - set(held)} == set(
            range(SINCE_TS + 3 * HOUR, SINCE_TS + 2 * DAY, HOUR)
        ) & {k[1] for k in truth}
        again = sb.poll(engine, book)
        assert not again.failed and ledger_usage(engine) == truth


def test_a_healthy_poll_records_no_gap_for_the_bucket_still_open(engine, book):
    with sandbox(lookback_days=1, window_days=2) as sb:
        report = sb.poll(engine, book)
        assert not report.failed, [s.error for s in report.failed]


def first_with_tokens(body: Body) -> Body:
    return next(j for j in body["data"] if j.get("trained_tokens"))


def set_job(**values: Any) -> Callable[[Body], Body]:
    def change(body: Body) -> Body:
        first_with_tokens(body).update(values)
        return body

    return change


JOB_CASES = [
    ("negative-trained-tokens", set_job(trained_tokens=-1), "trained_tokens -1 is negative"),
    ("fee-overflows", set_job(trained_tokens=9 * 10**18), "makes a fee beyond one entry"),
    ("beyond-bigint", set_job(trained_tokens=10**19), "trained_tokens 1000000000000000"),
    ("nul-in-model", set_job(fine_tuned_model="ft:x\x00"), "fine_tuned_model contains a NUL"),
    ("long-status", set_job(status="s" * 33), "status is longer than 32"),
]


@pytest.mark.parametrize(
    ("change", "expected"), [c[1:] for c in JOB_CASES], ids=[c[0] for c in JOB_CASES]
)
def test_a_bad_job_is_skipped_and_named_and_the_others_recorded(engine, book, change, expected):
    with sandbox() as sb:
        bent: list[str] = []

        def remember(body: Body) -> Body:
            bent.append(first_with_tokens(body)["id"])
            return change(body)

        sb.server.faults.rewrite("jobs", remember)
        report = sb.poll(engine, book)
        jobs = source(report, "openai.jobs:support")
        assert jobs.error is not None and expected in jobs.error, jobs.error
        assert f"job '{bent[0]}'" in jobs.error
        assert [s.source for s in report.failed] == ["openai.jobs:support"]
        with engine.connect() as conn:
            recorded = set(conn.execute(select(FineTuningJob.id)).scalars())
            fee_rows = set(conn.execute(select(TrainingFee.job_id)).scalars())
        assert bent[0] not in recorded and bent[0] not in fee_rows
        assert len(recorded) > 1
        again = sb.poll(engine, book)
        assert not again.failed, [s.error for s in again.failed]
        assert bent[0] in fees(engine)


COST_CASES = [
    ("nul-line-item", "line_item", "ft training\x00", "line_item contains a NUL character"),
    ("long-currency", "currency", "usdollars", "currency is longer than 8 characters"),
    ("amount-too-long", "value", int("9" * 80), "amount 9999999999"),
]


@pytest.mark.parametrize(
    ("field", "value", "expected"), [c[1:] for c in COST_CASES], ids=[c[0] for c in COST_CASES]
)
def test_a_bad_cost_line_is_skipped_and_named(engine, book, field, value, expected):
    def change(body: Body) -> Body:
        result = busy(body)["results"][0]
        (result["amount"] if field in ("value", "currency") else result)[field] = value
        return body

    with sandbox() as sb:
        sb.server.faults.rewrite("costs", change)
        report = sb.poll(engine, book)
        costs = source(report, COSTS_SOURCE)
        assert costs.error is not None and expected in costs.error, costs.error
        assert [s.source for s in report.failed] == [COSTS_SOURCE]
        with engine.connect() as conn:
            first = conn.execute(select(BilledCost)).all()
        assert first  # the other lines are mirrored
        again = sb.poll(engine, book)
        assert not again.failed
        with engine.connect() as conn:
            assert len(conn.execute(select(BilledCost)).all()) == len(first) + 1


# --- the pure checks --------------------------------------------------------------


def test_the_checked_text_sizes_are_the_columns_sizes():
    columns = UsageEntry.__table__.c
    assert {n: columns[n].type.length for n in checks.USAGE_TEXT} == checks.USAGE_TEXT
    job_columns = FineTuningJob.__table__.c
    sizes = {n: job_columns[n].type.length for n in checks.JOB_TEXT}
    assert sizes == checks.JOB_TEXT
    cost_columns = BilledCost.__table__.c
    assert {n: cost_columns[n].type.length for n in checks.COST_TEXT} == checks.COST_TEXT
    assert cost_columns["amount"].type.length == checks.COST_AMOUNT_CHARS


def test_checks_pass_good_values_through_untouched():
    key = UsageKey("openai", 0, HOUR, "gpt-4o", "p", "k", "", True, "default")
    obs = UsageObservation(key, 1, 10, 10, 0)
    assert checks.check_usage([obs], (0, DAY)) == ([obs], [])
    line = CostObservation(0, DAY, "p", "item", Decimal("-1.25"))
    assert checks.check_costs([line], (0, DAY))[1] == []
    job = JobObservation("ftjob-1", "gpt-4o", None, "running", "supervised", None, None, 1, None)
    assert checks.check_jobs([job], lambda j: None) == ([job], [])
    assert checks.usage_gap([(0, HOUR), (HOUR, 2 * HOUR)], 0, 2 * HOUR) is None
    gap = checks.usage_gap([(0, HOUR), (2 * HOUR, 3 * HOUR)], 0, 3 * HOUR)
    assert gap is not None and "no bucket for 1970-01-01T01:00:00Z..1970-01-01T02:00" in str(gap)
    short = checks.usage_gap([(0, HOUR)], 0, 3 * HOUR)
    assert short is not None and "stopped short at 1970-01-01T01:00:00Z" in str(short)
