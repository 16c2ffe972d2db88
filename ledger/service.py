"""One poll, as `ftledger poll` and every tick of `ftledger serve` run it, and the scheduler.

A scheduled poll is exactly `ftledger poll` on a timer: take the database's poll lock
(one poller per PostgreSQL database), poll every source, release the lock, then run
the budget check.

In `serve` the budget check is its own job, started after each poll, so a slow alert
channel never delays the next poll; and SIGTERM stops the service within seconds
whatever is in flight (see `serve`).
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


STOP_GRACE_SECONDS = 5.0  # SIGTERM: how long work in flight may take to end by itself


def serve(
    tick: Callable[[Callable[[], bool]], bool | None],
    schedule: Schedule,
    *,
    after: Callable[[Callable[[], bool]], None] | None = None,
    http: Any = None,
    poll: bool = True,
) -> None:
    """Run `tick(stop)` on the schedule until SIGTERM or SIGINT; after each tick that
    returns True, run `after(stop)` (the budget check) as a job of its own.

    `http` (ledger.web.server.HttpServer) is started before the first tick and stopped
    with the scheduler; `poll=False` serves HTTP alone (`serve --no-poll`).

    BlockingScheduler in UTC with jobs in memory only (nothing, least of all a key, is
    pickled into a job store); one instance of each job at a time, late runs coalesced
    into one and never silently dropped (misfire_grace_time=None). The first tick runs
    at once. A failing run is logged; the next one goes ahead. The check runs beside
    the polls, never before the next one: a check still running when the next poll
    ends is not started twice (max_instances=1) - the next poll's check catches up.

    Stopping: the signal handler asks everything in flight to give up
    (ledger.deadline.request_shutdown: a read being waited for is abandoned, its
    window unwritten, and the poll lock released; a delivery's socket is shut down,
    the attempt recorded as failed and retried later) and stops the scheduler. Work
    gets STOP_GRACE_SECONDS to end; what is still running then (a stuck database
    call) is abandoned: jobs run in daemon threads, so the process exits anyway,
    its open transactions roll back and its session's poll lock ends with it.
    """
    from datetime import UTC, datetime

    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.schedulers import SchedulerNotRunningError
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    from ledger.deadline import clear_shutdown, request_shutdown

    clear_shutdown()
    stopping = threading.Event()
    executor = _daemon_executor()
    scheduler = BlockingScheduler(
        timezone="UTC",
        jobstores={"default": MemoryJobStore()},
        executors={"default": executor},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    def check() -> None:
        assert after is not None
        try:
            after(stopping.is_set)
        except Exception as exc:  # a bad check must not stop the service
            log.error("budget check failed: %s", _scrub(exc))

    def guarded() -> None:
        started = time.monotonic()
        try:
            wants_check = tick(stopping.is_set)
        except Exception as exc:  # a bad run must not stop the service
            log.error("poll failed: %s", _scrub(exc))
            return
        log.info("poll finished in %.1fs", time.monotonic() - started)
        if wants_check and after is not None and not stopping.is_set():
            scheduler.add_job(check, id="budgets", name="budget check", replace_existing=True)

    if schedule.cron:
        trigger: Any = cron_trigger(schedule.cron)
    else:
        trigger = IntervalTrigger(seconds=schedule.every_seconds or 900, timezone="UTC")
    if poll:
        scheduler.add_job(guarded, trigger, id="poll", name="poll", next_run_time=datetime.now(UTC))

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s; abandoning work in flight", signal.Signals(signum).name)
        stopping.set()
        request_shutdown()
        if http is not None:
            http.request_stop()
        # Not here: the handler may interrupt the scheduler's own loop in this thread,
        # inside its job store lock (re-entrant), and a shutdown would empty the store
        # under it (JobLookupError). A thread waits for the lock, then stops the loop.
        threading.Thread(target=stop_scheduler, name="ftledger-stop", daemon=True).start()

    def stop_scheduler() -> None:
        for _ in range(40):  # a signal just before the start: stop it once started
            try:
                scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:
                time.sleep(0.05)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if http is not None:
            http.start()
        log.info("serving: %s", f"polling {schedule.describe()}" if poll else "HTTP only")
        if not stopping.is_set():  # a signal before the start
            scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if http is not None and not http.stop():
            log.warning("HTTP requests still running abandoned")
    if not executor.join(STOP_GRACE_SECONDS):
        log.warning(
            "work still running after %.0fs abandoned: its transaction rolls back",
            STOP_GRACE_SECONDS,
        )
    log.info("stopped")


def _daemon_executor() -> Any:
    """An APScheduler executor running each job in a daemon thread of its own.

    The stock ThreadPoolExecutor's threads are joined at interpreter exit, so one
    stuck job (a trickling server, a hung database call) kept the process alive past
    SIGTERM. Concurrency stays bounded by the scheduler: max_instances per job.
    """
    from apscheduler.executors.base import BaseExecutor, run_job

    class DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]  # untyped APScheduler
        def __init__(self) -> None:
            super().__init__()
            self._threads: set[threading.Thread] = set()
            self._threads_lock = threading.Lock()

        def _do_submit_job(self, job: Any, run_times: Any) -> None:
            def run() -> None:
                try:
                    events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
                except BaseException as exc:
                    self._run_job_error(job.id, exc, exc.__traceback__)
                else:
                    self._run_job_success(job.id, events)
                finally:
                    with self._threads_lock:
                        self._threads.discard(threading.current_thread())

            thread = threading.Thread(target=run, name=f"ftledger-{job.id}", daemon=True)
            with self._threads_lock:
                self._threads.add(thread)
            thread.start()

        def join(self, timeout: float) -> bool:
            """Wait up to `timeout` seconds for running jobs; whether they all ended."""
            end = time.monotonic() + timeout
            with self._threads_lock:
                threads = list(self._threads)
            for thread in threads:
                thread.join(max(0.0, end - time.monotonic()))
            return not any(t.is_alive() for t in threads)

    return DaemonThreadExecutor()


def _scrub(exc: BaseException) -> str:
    from ledger.secrets import mask

    return mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
