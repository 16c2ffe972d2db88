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

POLL_TABLE = [
    Column("source", kind="name"),
    Column("windows", kind="count", drop=2),
    Column("read", kind="count"),
    Column("posted", kind="count"),
    Column("unchanged", kind="count", default=False),
    Column("superseded", kind="count", default=False),
    Column("skipped", kind="count", default=False),
    Column("fees_posted", "fees", kind="count"),
    Column("read_up_to", "read up to", drop=1),
    Column("unpriced_models", "unpriced", kind="note"),
    Column("error", kind="note"),
]
STATUS_TABLE = [
    Column("source", kind="name"),
    Column("last_success", "last success"),
    Column("lag"),
    Column("read_up_to", "read up to", default=False),
    Column("failing_since", "failing since", default=False),
    Column("failures", kind="count"),
    Column("state"),
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
    columns: ColumnsOption = None,
    wide: WideOption = False,
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
    print_report(report, fmt, TableChoice(columns, wide))
    if not no_alerts:
        budget_check(app_ctx, at)
    if report.failed:
        first = report.failed[0]
        n, total = len(report.failed), len(report.sources)
        raise SourceError(f"{n} of {total} sources failed; {first.source}: {first.error}")


def print_report(report: CycleReport, fmt: Format, choice: TableChoice = TableChoice()) -> None:
    from ledger.documents import poll_document

    rows = [s.as_row() for s in report.sources]
    emit(fmt, rows, POLL_TABLE, document=poll_document(report), title="Poll", choice=choice)
    for source in report.sources:
        for note in source.notes:
            typer.echo(f"ftledger: note: {source.source}: {note}", err=True)


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
    from ledger.documents import status_document
    from ledger.sync import openai_specs, read_watermarks

    app_ctx = app_context(ctx)
    at = now_option(now)
    at = int(time.time()) if at is None else at
    config = load_config(app_ctx)
    names = [s.name for s in openai_specs(config, environ={})]
    marks = read_watermarks(app_ctx.existing_engine)
    interval = config.every_minutes * 60
    document = status_document(marks, names, at, interval)
    rows = [
        {
            **r,
            "last_success": r["last_success"] or "never",
            "lag": None if r["lag_seconds"] is None else lag_text(r["lag_seconds"]),
        }
        for r in document["rows"]
    ]
    emit(
        fmt,
        rows,
        STATUS_TABLE,
        document=document,
        title="Poll status",
        choice=TableChoice(columns, wide),
    )
    unhealthy = [
        f"{r['source']} failed its last poll"
        if r["state"] == "failing"
        else f"{r['source']} lags {lag_text(r['lag_seconds'])}"
        for r in document["rows"]
        if r["state"] in ("failing", "lagging")
    ]
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
