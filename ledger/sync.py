"""The poll cycle: read each source window by window into the ledger, exactly once.

Every source has a watermark (how far it has been read). A window is fetched completely
first, then written in ONE transaction together with the watermark it advances, so a
failure or a kill at any moment leaves the ledger as it was before that window and the
next poll completes it. Later polls re-read a trailing lookback window because OpenAI
revises recent buckets; posting writes only the difference, so re-reading is harmless.
Two pollers at once cannot double count: the (usage key, revision) unique constraint
makes the loser's transaction fail, and it retries against what the winner wrote.
Failures are recorded on the watermark in a separate transaction.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.config_file import LedgerConfig, base_url_problem
from ledger.deadline import BoundedReader, Deadline
from ledger.domain import CostObservation, JobObservation, UsageObservation
from ledger.errors import (
    AuthError,
    ConfigError,
    Interrupted,
    LedgerError,
    Problem,
    SourceError,
    UpstreamError,
)
from ledger.period import Month, day_start, floor_to, iso_utc
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.secrets import mask, refuse_credentials
from ledger.sources.checks import (
    Rejection,
    UsagePage,
    check_costs,
    check_jobs,
    check_usage,
    summary,
    usage_gap,
)
from ledger.store.billed import CostKey, mirror_costs
from ledger.store.engine import read_connection
from ledger.store.errors import db_errors, in_transaction, translate
from ledger.store.jobs import upsert_job
from ledger.store.ledger import (
    PostResult,
    fee_price,
    index_observations,
    post_training_fee,
    unchanged_left_out,
)
from ledger.store.overlap import post_window
from ledger.store.poll_lock import poll_lock
from ledger.store.watermarks import advance as _advance
from ledger.store.watermarks import read_watermark, read_watermarks, record_failure

log = logging.getLogger("ledger.sync")

DAY = 86400
USAGE_SOURCE = "openai.usage"
COSTS_SOURCE = "openai.costs"
JOBS_SOURCE_PREFIX = "openai.jobs:"
USAGE_ENDPOINT = "/v1/organization/usage/completions"
COSTS_ENDPOINT = "/v1/organization/costs"
# Daily costs are few rows: read them a whole Costs API page (180 days) per request.
COSTS_WINDOW_DAYS = 180
HOURLY_NOTE = "reinforcement: billed per training hour; the API does not report hours"


class AdminReader(Protocol):
    """What sync needs from the admin-key source (ledger.sources.openai.OpenAISource)."""

    def usage_pages(
        self, start: int, end: int, bucket_width: str
    ) -> Iterator[list[UsageObservation]]: ...

    def cost_pages(self, start: int, end: int) -> Iterator[list[CostObservation]]: ...


class JobReader(Protocol):
    def jobs(self, project_name: str | None = None) -> Iterator[JobObservation]: ...


@dataclass(frozen=True)
class SourceSpec:
    """One polled source: its watermark name, its kind, and how to open its client.

    `open` raises (e.g. a missing key) only when the source is polled, so one
    misconfigured project fails alone.
    """

    name: str
    kind: str  # usage | costs | jobs
    open: Callable[[], Any]
    project: str = ""  # ledger.toml project name (which key reads the jobs)
    project_id: str = ""  # OpenAI project id the jobs' fees are attributed to


@dataclass
class SourceReport:
    source: str
    windows: int = 0
    read: int = 0  # observations (usage buckets, cost lines, jobs) read
    posted: int = 0  # ledger entries or mirror rows written
    unchanged: int = 0
    superseded: int = 0  # held buckets of another width reversed: re-read at this width
    skipped: int = 0  # buckets another source (an import) already holds: left to it
    fees_posted: int = 0
    position: int | None = None
    unpriced_models: set[str] = field(default_factory=set)
    error: str | None = None
    rejected: list[Rejection] = field(default_factory=list)  # skipped upstream values
    notes: list[str] = field(default_factory=list)  # corrections worth a warning

    def as_row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "windows": self.windows,
            "read": self.read,
            "posted": self.posted,
            "unchanged": self.unchanged,
            "superseded": self.superseded,
            "skipped": self.skipped,
            "fees_posted": self.fees_posted,
            "read_up_to": iso(self.position),
            "unpriced_models": ",".join(sorted(self.unpriced_models)),
            "error": self.error,
        }


@dataclass
class CycleReport:
    sources: list[SourceReport]
    skipped: bool = False  # another poller held the lock

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.error is not None]


Progress = Callable[[str, int, int], None]  # (source, windows done, windows total)


# --- the cycle -----------------------------------------------------------------------


def poll_sources(
    engine: Engine,
    book: PriceBook,
    config: LedgerConfig,
    specs: Sequence[SourceSpec],
    *,
    since: date | None = None,
    now: int | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> CycleReport:
    """Poll every source once; a failing source is recorded and the others still run.

    Every read ends by a wall-clock deadline (ledger.deadline): the source's
    (`poll.source_deadline_seconds`) or the whole poll's (`poll.deadline_seconds`),
    whichever is sooner. Past it the window being read is abandoned, nothing of it
    written, and the source fails with the deadline in its error. `stop` is asked
    between windows and while a read is waited for: a stopping service abandons the
    read in flight and records no failure.
    """
    at = int(time.time()) if now is None else now
    reports = []
    halt = stop or (lambda: False)
    poll_deadline = Deadline(config.deadline_seconds, "the poll's deadline")
    for spec in specs:
        if halt():
            break
        report = SourceReport(spec.name)
        deadline = Deadline(config.source_deadline_seconds).sooner(poll_deadline)
        try:
            with _opened(spec, deadline, halt) as reader:
                if spec.kind == "usage":
                    _poll_usage(
                        engine, book, config, reader, spec, report, since, at, progress, halt
                    )
                elif spec.kind == "costs":
                    _poll_costs(engine, config, reader, spec, report, since, at, progress, halt)
                elif spec.kind == "jobs":
                    _poll_jobs(engine, book, reader, spec, report, at)
                else:
                    raise ValueError(f"unknown source kind {spec.kind!r}")
            if report.rejected:  # posted without them: recorded, the poll not healthy
                report.error = mask(summary(report.rejected))
                log.warning("polling %s: %s", spec.name, report.error)
                record_failure(engine, spec.name, report.error, at)
        except Interrupted:
            log.info("polling %s abandoned: stopping", spec.name)
            reports.append(report)
            break
        except (LedgerError, SQLAlchemyError) as exc:
            if isinstance(exc, SQLAlchemyError):  # e.g. the connection dropped mid-read
                exc = translate(exc, "reading the ledger", engine.url)
            report.error = mask(_one_line(exc))
            log.info("polling %s failed: %s", spec.name, report.error)
            record_failure(engine, spec.name, report.error, at)
        reports.append(report)
    return CycleReport(reports)


EARLIEST_SINCE = date(2020, 1, 1)


def since_problem(since: date, now: int) -> str | None:
    """Why a poll cannot start reading at `since`, or None."""
    if since < EARLIEST_SINCE:
        return f"{since} is before {EARLIEST_SINCE}: OpenAI has no usage to read that early"
    if day_start(since) > now:
        return f"{since} is in the future"
    return None


def default_since(now: int) -> date:
    """The first day of the previous UTC month."""
    return Month.current(now).previous().first_day


def plan_windows(
    position: int | None,
    since: date | None,
    *,
    now: int,
    width: int,
    lookback_days: int,
    window_days: int,
) -> list[tuple[int, int]]:
    """The [start, end) windows to read, aligned to the bucket width.

    First poll: from `since` (default: first day of last month). Later polls: from the
    watermark minus the lookback (or from `since` if that is earlier: a backfill). The
    last window ends at the end of the bucket holding `now`, so every bucket read is
    whole and its key never changes.
    """
    first = day_start(since or default_since(now))
    if position is None:
        start = first
    else:
        start = min(position, now) - lookback_days * DAY
        if since is not None:
            start = min(start, first)
    start = floor_to(start, width)
    end = floor_to(now, width) + width
    step = max(floor_to(window_days * DAY, width), width)
    windows = []
    while start < end:
        windows.append((start, min(start + step, end)))
        start += step
    return windows


def _poll_usage(
    engine: Engine,
    book: PriceBook,
    config: LedgerConfig,
    reader: AdminReader,
    spec: SourceSpec,
    report: SourceReport,
    since: date | None,
    now: int,
    progress: Progress | None,
    halt: Callable[[], bool],
) -> None:
    pricer = UsagePricer(book)
    width = config.bucket_seconds

    def read(start: int, end: int) -> Any:
        pages = list(reader.usage_pages(start, end, config.bucket_width))
        indexed, conflicts = index_observations(obs for page in pages for obs in page)
        if conflicts:
            first = conflicts[0]
            raise UpstreamError(
                f"{USAGE_ENDPOINT} returned {len(conflicts)} usage key(s) twice with different "
                f"counts (first: {first.model} at {iso(first.bucket_start)})"
            )
        # A re-read lookback window is mostly what the ledger holds: compared in bulk
        # first, so only new or changed readings are checked, priced and posted.
        with db_errors("reading the ledger", engine.url), read_connection(engine) as conn:
            fresh = unchanged_left_out(conn, indexed, start, end)
        observations, rejected = check_usage(fresh.values(), (start, end), pricer.price)
        covered = [page for page in pages if isinstance(page, UsagePage)]
        if covered and len(covered) == len(pages):  # a reader that says which buckets
            buckets = [b for page in covered for b in page.buckets]
            gap = usage_gap(buckets, start, min(end, floor_to(now, width)))
            rejected += [gap] if gap else []
        report.rejected += rejected
        return {obs.key: obs for obs in observations}, len(indexed) - len(fresh)

    def post(conn: Connection, batch: Any, start: int, end: int) -> PostResult:
        indexed, unchanged = batch
        # Another width of this source is superseded, another source's usage kept
        # (store.overlap): one usage never counts twice. A reading the ledger holds as
        # it is was settled when it was posted.
        result = post_window(conn, indexed, book, window=(start, end), now=now)
        result.observed += unchanged
        result.unchanged += unchanged
        return result

    _poll_windows(
        engine,
        config,
        spec,
        report,
        since,
        now,
        progress,
        halt,
        width=config.bucket_seconds,
        window_days=config.window_days,
        read=read,
        post=post,
    )
    if report.superseded or report.skipped:
        log.info(
            "polling %s: %d bucket(s) of another width superseded, %d left to the "
            "source (an import) that already holds them",
            spec.name,
            report.superseded,
            report.skipped,
        )


def _poll_costs(
    engine: Engine,
    config: LedgerConfig,
    reader: AdminReader,
    spec: SourceSpec,
    report: SourceReport,
    since: date | None,
    now: int,
    progress: Progress | None,
    halt: Callable[[], bool],
) -> None:
    def read(start: int, end: int) -> Any:
        lines, rejected = check_costs(
            (obs for page in reader.cost_pages(start, end) for obs in page), (start, end)
        )
        report.rejected += rejected
        return _index_costs(lines)

    def post(conn: Connection, lines: Any, start: int, end: int) -> PostResult:
        written = mirror_costs(conn, lines, start, end, now)
        return PostResult(len(lines), written, max(len(lines) - written, 0))

    _poll_windows(
        engine,
        config,
        spec,
        report,
        since,
        now,
        progress,
        halt,
        width=DAY,
        window_days=max(config.window_days, COSTS_WINDOW_DAYS),
        read=read,
        post=post,
    )


def _poll_windows(
    engine: Engine,
    config: LedgerConfig,
    spec: SourceSpec,
    report: SourceReport,
    since: date | None,
    now: int,
    progress: Progress | None,
    halt: Callable[[], bool],
    *,
    width: int,
    window_days: int,
    read: Callable[[int, int], Any],
    post: Callable[[Connection, Any, int, int], PostResult],
) -> None:
    """Read each window whole, then post it and advance the watermark in one transaction."""
    windows = plan_windows(
        read_watermark(engine, spec.name).position,
        since,
        now=now,
        width=width,
        lookback_days=config.lookback_days,
        window_days=window_days,
    )
    for i, (start, end) in enumerate(windows):
        if halt():
            return
        batch = read(start, end)
        position = min(end, floor_to(now, width))

        def write(
            conn: Connection,
            batch: Any = batch,
            start: int = start,
            end: int = end,
            p: int = position,
        ) -> PostResult:
            posted = post(conn, batch, start, end)
            _advance(conn, spec.name, p, now)
            return posted

        posted: PostResult = _write(engine, write)
        report.windows += 1
        report.read += posted.observed
        report.posted += posted.posted
        report.unchanged += posted.unchanged
        report.superseded += posted.superseded
        report.skipped += posted.skipped
        report.unpriced_models |= posted.unpriced_models
        report.position = position
        if progress:
            progress(spec.name, i + 1, len(windows))


def _poll_jobs(
    engine: Engine,
    book: PriceBook,
    reader: JobReader,
    spec: SourceSpec,
    report: SourceReport,
    now: int,
) -> None:
    # Fees carry the project id, the scheme usage carries; "" without a configured id.
    latest = _latest_jobs(reader.jobs(spec.project or None))
    jobs, rejected = check_jobs(
        [replace(job, project=spec.project_id) for job in latest], _fee_rate(book)
    )
    report.rejected += rejected

    notes: list[str] = []

    def write(conn: Connection) -> tuple[int, int]:
        changed = fees = 0
        notes.clear()  # a retried transaction starts over
        for job in jobs:
            note = HOURLY_NOTE if job.method == "reinforcement" else None
            outcome = post_training_fee(conn, job, book, now=now)
            fees += outcome.posted
            if outcome.revised_from is not None:
                notes.append(
                    f"job {job.id}: trained_tokens revised upstream from "
                    f"{outcome.revised_from} to {job.trained_tokens}; the fee's difference "
                    f"was posted"
                )
            changed += upsert_job(conn, job, note or outcome.note, now)
        _advance(conn, spec.name, now, now)
        return changed, fees

    changed, fees = _write(engine, write)
    report.windows = 1
    report.read = len(jobs)
    report.posted = changed
    report.unchanged = len(jobs) - changed
    report.fees_posted = fees
    report.notes += notes
    for note in notes:
        log.warning("%s: %s", spec.name, note)
    report.position = now


@contextmanager
def _opened(spec: SourceSpec, deadline: Deadline, stop: Callable[[], bool]) -> Iterator[Any]:
    """The source's reader, each of its reads bounded by `deadline` and `stop`."""
    reader = spec.open()
    try:
        yield BoundedReader(reader, deadline, stop)
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


def openai_specs(
    config: LedgerConfig, environ: Mapping[str, str] | None = None
) -> list[SourceSpec]:
    """The sources of one OpenAI organisation: usage and costs (admin key), and the jobs
    of every configured project (its project key). Keys are read from the environment
    variables the config names, when the source is opened, and go nowhere else."""
    env = os.environ if environ is None else environ
    base_url = config.base_url or env.get("OPENAI_BASE_URL") or None
    refuse_credentials(env.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
    if not config.base_url and base_url and (bad := base_url_problem(base_url)):
        raise ConfigError([Problem("OPENAI_BASE_URL", bad)])

    def opener(key_env: str, missing: str, project: str | None) -> Callable[[], Any]:
        def open_source() -> Any:
            from ledger.sources.openai import OpenAISource

            key = env.get(key_env)
            if not key:
                raise AuthError(f"{key_env} is not set: {missing}")
            return OpenAISource(
                admin_key="" if project is not None else key,
                project_keys={} if project is None else {project: key},
                base_url=base_url,
                timeout=config.timeout_seconds,
                max_retries=config.max_retries,
                backoff=config.retry_backoff_seconds,
                max_retry_after=config.max_retry_after_seconds,
            )

        return open_source

    admin = opener(config.admin_key_env, "an admin key is needed to read usage and costs", None)
    specs = [SourceSpec(USAGE_SOURCE, "usage", admin), SourceSpec(COSTS_SOURCE, "costs", admin)]
    for p in config.projects:
        specs.append(
            SourceSpec(
                JOBS_SOURCE_PREFIX + p.name,
                "jobs",
                opener(p.key_env, f"it should hold the key of project {p.name!r}", p.name),
                p.name,
                p.id,
            )
        )
    return specs


# --- writing -------------------------------------------------------------------------


def _write(engine: Engine, work: Callable[[Connection], Any]) -> Any:
    """Run `work` in one transaction; a concurrent writer's win is retried (re-read)."""
    return in_transaction(engine, work, doing="writing the ledger")


# --- costs ---------------------------------------------------------------------------


def _index_costs(lines: Iterable[CostObservation]) -> dict[CostKey, CostObservation]:
    """Cost lines by key; the same line twice is merged when equal, an error when not."""
    indexed: dict[CostKey, CostObservation] = {}
    for line in lines:
        key = (line.bucket_start, line.project_id or "", line.line_item or "", line.currency)
        seen = indexed.get(key)
        if seen is not None and seen.amount != line.amount:
            raise UpstreamError(
                f"{COSTS_ENDPOINT} returned the line {line.line_item!r} of "
                f"{iso(line.bucket_start)} twice with different amounts"
            )
        indexed[key] = line
    return indexed


# --- jobs ----------------------------------------------------------------------------


def _fee_rate(book: PriceBook) -> Callable[[JobObservation], int | None]:
    """Pico-USD per trained token of a job's fee, as post_training_fee would price it."""

    def rate(job: JobObservation) -> int | None:
        if job.finished_at is None:
            return None
        return fee_price(book, job.model, job.finished_at, 1)[0]  # the cost of one token

    return rate


def _latest_jobs(jobs: Iterable[JobObservation]) -> list[JobObservation]:
    """One reading per job id; a terminal reading wins over a non-terminal one."""
    chosen: dict[str, JobObservation] = {}
    for job in jobs:
        seen = chosen.get(job.id)
        if seen is None or job.terminal or not seen.terminal:
            chosen[job.id] = job
    return list(chosen.values())


# --- helpers -------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in lines) if lines else type(exc).__name__


def iso(ts: int | None) -> str | None:
    return None if ts is None else iso_utc(ts)


__all__ = [
    "COSTS_SOURCE",
    "JOBS_SOURCE_PREFIX",
    "USAGE_SOURCE",
    "CycleReport",
    "SourceError",
    "SourceReport",
    "SourceSpec",
    "default_since",
    "plan_windows",
    "poll_lock",
    "poll_sources",
    "read_watermark",
    "read_watermarks",
]
