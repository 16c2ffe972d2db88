"""Upstream values are checked before they are posted.

Pure: no HTTP, no SQL. The OpenAI source turns a response into observations (a
malformed body, wrong types, fails the whole read); these checks look at the VALUES
of well-formed observations against what the ledger can hold and what the request
asked for: counts that are negative or beyond BIGINT, cached tokens above input
tokens, buckets outside the requested window or ending before they start, text longer
than its column or holding a NUL or a lone surrogate (neither PostgreSQL nor UTF-8 can
store them), and costs beyond the int64 pico-USD of one entry.

Decision: **skip and record.** A rejected observation (one usage key, one cost line,
one job) is left out of the window; the rest of the window is posted and the watermark
advances, so a bad value that never changes cannot hold the poll back. Each rejection
names the bucket (or job), the field and the reason, and sync records them as the
source's error (the poll summary, `ftledger status`). A re-read of the lookback window
posts the bucket once the upstream corrects it.

A usage page sequence that ends before the window does (no `has_more`, no bucket for
the rest) is a gap: recorded the same way, what was read is posted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ledger.domain import CostObservation, JobObservation, UsageObservation
from ledger.period import iso_utc

MAX_BIGINT = 2**63 - 1  # BigInteger on both backends; also one entry's pico-USD
MAX_INTEGER = 2**31 - 1  # Integer columns (n_epochs)

# Column sizes of ledger/store/tables.py (a test holds them equal).
USAGE_TEXT = {
    "model": 255,
    "project_id": 128,
    "api_key_id": 128,
    "user_id": 128,
    "service_tier": 32,
}
COST_TEXT = {"project_id": 128, "line_item": 255, "currency": 8}
COST_AMOUNT_CHARS = 64
JOB_TEXT = {
    "id": 128,
    "model": 255,
    "fine_tuned_model": 255,
    "status": 32,
    "method": 32,
    "training_file": 128,
    "project": 128,
}


@dataclass(frozen=True)
class Rejection:
    """One upstream value the ledger refused: where (bucket or job), which field, why."""

    where: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field} {self.reason}"


class UsagePage(list[UsageObservation]):
    """A page of usage observations that also says which buckets the page held (empty
    buckets too), so a sequence of pages stopping short of the window can be seen."""

    def __init__(self, rows: Iterable[UsageObservation], buckets: Sequence[tuple[int, int]]):
        super().__init__(rows)
        self.buckets = list(buckets)


def shown(value: object, limit: int = 40) -> str:
    """A value safe to put in a message and a database row: escaped, shortened."""
    text = ascii(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def text_problem(value: str | None, limit: int) -> str | None:
    """Why `value` cannot be stored in a String(limit) column, or None."""
    if value is None:
        return None
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    if len(value) > limit:
        return f"is longer than {limit} characters ({len(value)})"
    return None


def count_problem(value: int | None, maximum: int = MAX_BIGINT) -> str | None:
    if value is None:
        return None
    if value < 0:
        return f"{value} is negative"
    if value > maximum:
        return f"{shown(value, 30)} is too large for the database"
    return None


def bucket(start: int, end: int) -> str:
    try:
        return f"bucket {iso_utc(start)}..{iso_utc(end)}"
    except (OverflowError, ValueError, OSError):
        return f"bucket {shown(start, 24)}..{shown(end, 24)}"


def _bucket_problems(start: int, end: int, window: tuple[int, int]) -> list[tuple[str, str]]:
    out = []
    for name, value in (("start_time", start), ("end_time", end)):
        problem = count_problem(value)
        if problem:
            out.append((name, problem))
    if out:
        return out
    if end <= start:
        out.append(("end_time", "is not after start_time"))
    elif start < window[0] or end > window[1]:
        out.append(("start_time", f"is outside the requested window {bucket(*window)[7:]}"))
    return out


def check_usage(
    observations: Iterable[UsageObservation],
    window: tuple[int, int],
    price: Callable[[UsageObservation], tuple[int | None, int | None]] | None = None,
) -> tuple[list[UsageObservation], list[Rejection]]:
    """(the observations fit to post, the rejected ones with why). `price` gives an
    observation's (cost, base cost) in pico-USD, to refuse one that overflows an entry."""
    good: list[UsageObservation] = []
    rejected: list[Rejection] = []
    bad_buckets: dict[tuple[int, int], list[tuple[str, str]]] = {}
    for obs in observations:
        key = obs.key
        span = (key.bucket_start, key.bucket_end)
        if span not in bad_buckets:  # a bad bucket is one rejection, not one per result
            bad_buckets[span] = _bucket_problems(*span, window)
            where = bucket(*span)
            rejected += [Rejection(where, name, why) for name, why in bad_buckets[span]]
        if bad_buckets[span]:
            continue
        problems: list[tuple[str, str]] = []
        for name, limit in USAGE_TEXT.items():
            problem = text_problem(getattr(key, name), limit)
            if problem:
                problems.append((name, problem))
        counts = {
            "num_model_requests": obs.requests,
            "input_tokens": obs.input_tokens,
            "input_cached_tokens": obs.cached_tokens,
            "output_tokens": obs.output_tokens,
        }
        for name, value in counts.items():
            problem = count_problem(value)
            if problem:
                problems.append((name, problem))
        if not problems and obs.cached_tokens > obs.input_tokens:
            problems.append(
                (
                    "input_cached_tokens",
                    f"{obs.cached_tokens} is more than input_tokens {obs.input_tokens}",
                )
            )
        costs = price(obs) if price is not None and not problems else ()
        if any(cost is not None and abs(cost) > MAX_BIGINT for cost in costs):
            problems.append(("cost", "overflows one entry (more than $9.2M in a bucket)"))
        if problems:
            where = f"{bucket(key.bucket_start, key.bucket_end)} model {shown(key.model)}"
            rejected += [Rejection(where, name, why) for name, why in problems]
        else:
            good.append(obs)
    return good, rejected


def usage_gap(buckets: Iterable[tuple[int, int]], start: int, until: int) -> Rejection | None:
    """The first stretch of [start, until) no bucket read covers, as a rejection (`until`
    is how far the watermark would claim: the bucket holding `now` may be missing)."""
    covered = start
    for b_start, b_end in sorted(buckets):
        if b_start > covered:
            break
        covered = max(covered, b_end)
    else:
        b_start = until
    hole_end = min(b_start, until)
    if covered >= hole_end:
        return None
    if hole_end == until:
        why = f"stopped short at {iso_utc(covered)}: no bucket for the rest (a gap)"
    else:
        why = f"have no bucket for {iso_utc(covered)}..{iso_utc(hole_end)} (a gap)"
    return Rejection(f"usage {bucket(start, until)[7:]}", "pages", why)


def check_costs(
    lines: Iterable[CostObservation], window: tuple[int, int]
) -> tuple[list[CostObservation], list[Rejection]]:
    good: list[CostObservation] = []
    rejected: list[Rejection] = []
    for line in lines:
        problems = _bucket_problems(line.bucket_start, line.bucket_end, window)
        for name, limit in COST_TEXT.items():
            problem = text_problem(getattr(line, name), limit)
            if problem:
                problems.append((name, problem))
        text = str(line.amount)
        if len(text) > COST_AMOUNT_CHARS or not line.amount.is_finite():
            problems.append(("amount", f"{text[:20]}... is longer than {COST_AMOUNT_CHARS} digits"))
        if problems:
            where = f"{bucket(line.bucket_start, line.bucket_end)} line {shown(line.line_item)}"
            rejected += [Rejection(where, name, why) for name, why in problems]
        else:
            good.append(line)
    return good, rejected


def check_jobs(
    jobs: Iterable[JobObservation], fee_per_token: Callable[[JobObservation], int | None]
) -> tuple[list[JobObservation], list[Rejection]]:
    """Jobs fit to record; `fee_per_token` gives the pico-USD per trained token that
    would price the job's fee (None: no fee), to refuse a fee beyond one entry."""
    good: list[JobObservation] = []
    rejected: list[Rejection] = []
    for job in jobs:
        problems: list[tuple[str, str]] = []
        for name, limit in JOB_TEXT.items():
            problem = text_problem(getattr(job, name), limit)
            if problem:
                problems.append((name, problem))
        numbers: dict[str, tuple[int | None, int]] = {
            "trained_tokens": (job.trained_tokens, MAX_BIGINT),
            "n_epochs": (job.n_epochs, MAX_INTEGER),
            "created_at": (job.created_at, MAX_BIGINT),
            "finished_at": (job.finished_at, MAX_BIGINT),
        }
        for name, (value, maximum) in numbers.items():
            problem = count_problem(value, maximum)
            if problem:
                problems.append((name, problem))
        if not problems and job.trained_tokens:
            per_token = fee_per_token(job)
            if per_token is not None and job.trained_tokens * per_token > MAX_BIGINT:
                problems.append(("trained_tokens", "makes a fee beyond one entry ($9.2M)"))
        if problems:
            rejected += [Rejection(f"job {shown(job.id)}", n, why) for n, why in problems]
        else:
            good.append(job)
    return good, rejected


def summary(rejections: Sequence[Rejection], shown_at_most: int = 3) -> str:
    """One line for a source's error: how many were skipped, the first few in full."""
    head = "; ".join(str(r) for r in rejections[:shown_at_most])
    more = len(rejections) - shown_at_most
    tail = f"; and {more} more" if more > 0 else ""
    return f"skipped {len(rejections)} bad upstream value(s), the rest posted: {head}{tail}"


__all__ = [
    "MAX_BIGINT",
    "Rejection",
    "UsagePage",
    "check_costs",
    "check_jobs",
    "check_usage",
    "summary",
    "text_problem",
    "usage_gap",
]
