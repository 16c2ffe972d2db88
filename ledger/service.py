"""One poll, as `ftledger poll` and every tick of `ftledger serve` run it, and the scheduler.

A scheduled poll is exactly `ftledger poll` on a timer: take the database's poll lock
(one poller per PostgreSQL database), poll every source, release the lock, then run
the budget check when the budgets module provides one.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from ledger.config_file import LedgerConfig, cron_trigger
from ledger.pricebook import PriceBook
from ledger.settings import Settings
from ledger.sync import CycleReport, Progress, SourceSpec, poll_lock, poll_sources

log = logging.getLogger("ledger.service")


def run_poll(
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
    """One cycle under the poll lock; skipped (report.skipped) when another poller has it."""
    with poll_lock(engine) as acquired:
        if not acquired:
            log.info("another poller holds the lock on this database; skipped")
            return CycleReport([], skipped=True)
        return poll_sources(
            engine, book, config, specs, since=since, now=now, progress=progress, stop=stop
        )


def run_budget_check(
    engine: Engine, settings: Settings, book: PriceBook, now: int | None = None
) -> Any:
    """The budget check after a poll (ledger.alerts, imported only when it runs)."""
    from ledger.alerts import run_budget_check as check

    return check(engine, settings, book, now=now)


# --- the scheduler ---------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    every_seconds: int | None = None
    cron: str | None = None

    def describe(self) -> str:
        if self.cron:
            return f"on cron '{self.cron}' (UTC)"
        return f"every {self.every_seconds}s"


def serve(tick: Callable[[Callable[[], bool]], None], schedule: Schedule) -> None:
    """Run `tick(stop)` on the schedule until SIGTERM or SIGINT, then stop gracefully.

    BlockingScheduler in UTC with jobs in memory only (nothing, least of all a key, is
    pickled into a job store); one instance at a time, late runs coalesced into one and
    never silently dropped (misfire_grace_time=None). The first tick runs at once.
    A failing tick is logged; the next one goes ahead.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    stopping = threading.Event()
    scheduler = BlockingScheduler(
        timezone="UTC",
        jobstores={"default": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    def guarded() -> None:
        started = time.monotonic()
        try:
            tick(stopping.is_set)
        except Exception as exc:  # a bad run must not stop the service
            log.error("poll failed: %s", _scrub(exc))
        else:
            log.info("poll finished in %.1fs", time.monotonic() - started)

    if schedule.cron:
        trigger: Any = cron_trigger(schedule.cron)
    else:
        trigger = IntervalTrigger(seconds=schedule.every_seconds or 900, timezone="UTC")
    from datetime import UTC, datetime

    scheduler.add_job(guarded, trigger, id="poll", name="poll", next_run_time=datetime.now(UTC))

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s; stopping after the current window", signal.Signals(signum).name)
        stopping.set()
        scheduler.shutdown(wait=False)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    log.info("serving: polling %s", schedule.describe())
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")


def _scrub(exc: BaseException) -> str:
    from ledger.secrets import mask

    return mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
