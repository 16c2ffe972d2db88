"""`ftledger poll` and `ftledger status`: read OpenAI into the ledger, and how that is going."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli.common import (
    AppContext,
    ColumnsOption,
    Format,
    FormatOption,
    TableChoice,
    WideOption,
    app_context,
    day_option,
    emit,
    now_option,
)
from ledger.reports.table import Column

if TYPE_CHECKING:
    from ledger.config_file import LedgerConfig
    from ledger.sync import CycleReport

POLL_COLUMNS = (
    "source",
    "windows",
    "read",
    "posted",
    "unchanged",
    "fees_posted",
    "read_up_to",
    "unpriced_models",
    "error",
)
STATUS_COLUMNS = (
    "source",
    "last_success",
    "lag",
    "read_up_to",
    "failing_since",
    "failures",
    "last_error",
)

STATUS_TABLE = [
    Column("source", kind="name"),
    Column("last_success", "last success"),
    Column("lag"),
    Column("read_up_to", "read up to", default=False),
    Column("failing_since", "failing since", default=False),
    Column("failures", kind="count"),
    Column("last_error", "last error", kind="note"),
]


def register(app: typer.Typer) -> None:
    """Add poll, status, serve and demo to the root app."""
    from ledger.cli import demo, serve

    app.command("poll")(poll)
    app.command("status")(status)
    app.command("serve")(serve.serve)
    app.command("demo")(demo.demo)


def load_config(app_ctx: AppContext) -> LedgerConfig:
    """ledger.toml (user's, else bundled); its warnings go to stderr."""
    from ledger.config_file import load_ledger_config

    config = load_ledger_config(app_ctx.settings.config_file("ledger.toml"))
    for warning in config.warnings:
        print(f"ftledger: warning: {warning}", file=sys.stderr)
    return config


def poll(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            help="First day to read (YYYY-MM-DD, UTC) on the first poll, or to re-read from "
            "(a backfill). Default: the first day of the previous month.",
            show_default=False,
        ),
    ] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Skip the budget check after polling.")
    ] = False,
    now: Annotated[str | None, typer.Option(hidden=True)] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Poll usage, costs and fine-tuning jobs once into the ledger.

    Each window read is written in one transaction with its watermark: an interrupted
    poll leaves nothing half-written and the next one carries on. Keys come from the
    environment variables ledger.toml names (default OPENAI_ADMIN_KEY, OPENAI_API_KEY).

    Example: ftledger poll --since 2026-10-01
    """
    from ledger.errors import ConflictError, SourceError
    from ledger.service import run_poll
    from ledger.sync import openai_specs

    app_ctx = app_context(ctx)
    since_day, at = day_option(since, "--since"), now_option(now)
    if since_day is not None:
        from ledger.sync import since_problem

        bad = since_problem(since_day, int(time.time()) if at is None else at)
        if bad:
            raise typer.BadParameter(bad, param_hint="--since")
    config = load_config(app_ctx)
    engine, book = app_ctx.engine, app_ctx.pricebook
    with window_progress() as progress:
        report = run_poll(
            engine, book, config, openai_specs(config), since=since_day, now=at, progress=progress
        )
    if report.skipped:
        raise ConflictError("another poll is running against this database; try again later")
    print_report(report, fmt)
    if not no_alerts:
        budget_check(app_ctx, at)
    if report.failed:
        first = report.failed[0]
        n, total = len(report.failed), len(report.sources)
        raise SourceError(f"{n} of {total} sources failed; {first.source}: {first.error}")


def print_report(report: CycleReport, fmt: Format) -> None:
    rows = [s.as_row() for s in report.sources]
    document = {"sources": [{**r, "unpriced_models": _split(r)} for r in rows]}
    emit(fmt, rows, POLL_COLUMNS, document=document, title="Poll")


def _split(row: dict[str, Any]) -> list[str]:
    return [m for m in str(row["unpriced_models"] or "").split(",") if m]


def budget_check(app_ctx: AppContext, now: int | None) -> None:
    from ledger.service import run_budget_check

    run_budget_check(app_ctx.engine, app_ctx.settings, app_ctx.pricebook, now=now)


@contextmanager
def window_progress() -> Iterator[Callable[[str, int, int], None] | None]:
    """Progress per source on stderr (windows written / planned), only on a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    tasks: dict[str, Any] = {}
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:

        def update(source: str, done: int, total: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(source, total=total)
            bar.update(tasks[source], completed=done, total=total)

        yield update


def status(
    ctx: typer.Context,
    now: Annotated[str | None, typer.Option(hidden=True)] = None,
    fmt: FormatOption = Format.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """Per source: the last successful poll, how far behind it is, and the last error.

    Exits 1 when a source's last poll failed or its last success is older than two
    poll intervals (for cron jobs and health checks); the table is printed either way.

    Example: ftledger status --format json
    """
    from ledger.secrets import mask
    from ledger.sync import iso, openai_specs, read_watermarks

    app_ctx = app_context(ctx)
    at = now_option(now)
    at = int(time.time()) if at is None else at
    config = load_config(app_ctx)
    marks = {m.source: m for m in read_watermarks(app_ctx.existing_engine)}
    names = [s.name for s in openai_specs(config, environ={})]
    names += sorted(set(marks) - set(names))
    rows = []
    for name in names:
        mark = marks.get(name)
        last = mark.last_success_at if mark else None
        rows.append(
            {
                "source": name,
                "last_success": iso(last) if last else "never",
                "lag": None if last is None else lag_text(at - last),
                "read_up_to": iso(mark.position) if mark else None,
                "failing_since": iso(mark.failing_since) if mark else None,
                "failures": mark.consecutive_failures if mark else 0,
                "last_error": mask(mark.last_error) if mark and mark.last_error else None,
            }
        )
    emit(fmt, rows, STATUS_TABLE, title="Poll status", choice=TableChoice(columns, wide))
    interval = config.every_minutes * 60
    unhealthy = []
    for name in names:
        mark = marks.get(name)
        if mark is None:
            continue
        if mark.consecutive_failures:
            unhealthy.append(f"{name} failed its last poll")
        elif mark.last_success_at is not None and at - mark.last_success_at > 2 * interval:
            unhealthy.append(f"{name} lags {lag_text(at - mark.last_success_at)}")
    if unhealthy:
        typer.echo(
            f"ftledger: unhealthy: {'; '.join(unhealthy)} "
            f"(more than 2 poll intervals of {config.every_minutes} min, or failing)",
            err=True,
        )
        raise typer.Exit(1)


def lag_text(seconds: int) -> str:
    """3d 4h, 2h 5m, 7m 30s: two units are enough to judge staleness."""
    seconds = max(seconds, 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"
