"""`ftledger reprice`: price usage and fees recorded without a price; with --all, bring
every held cost to the current price book."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from ledger.cli.common import Format, FormatOption, app_context, day_option, emit, write_text
from ledger.reports.table import Column

COLUMNS = [
    Column("model", kind="name"),
    Column("keys_repriced", "keys", kind="count"),
    Column("keys_still_unpriced", "keys unpriced", kind="count"),
    Column("fees_repriced", "fees", kind="count"),
    Column("fees_still_unpriced", "fees unpriced", kind="count"),
    Column("difference", kind="money"),
]


def reprice(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only usage buckets starting, and fees of jobs finishing, on or after "
            "this UTC day.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only usage buckets starting, and fees of jobs finishing, on or before "
            "this UTC day.",
        ),
    ] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also correct priced usage and fees whose cost differs from the current "
            "price book (after fixing a price, or to apply service-tier prices).",
        ),
    ] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Price usage and training fees recorded unpriced, now that the price book has their
    model; with --all, post per usage key and fee the difference between the current
    book's cost and what it holds.

    Each corrected key or fee gets one correction entry (no token change); nothing is
    rewritten, and running it again posts nothing. `difference` is what the corrections
    added to the model's cost.

    Example: ftledger reprice --all --since 2026-10-01 --until 2026-10-31
    """
    from ledger.reports.text import money_text
    from ledger.store.errors import in_transaction
    from ledger.store.reprice import reprice as run_reprice

    since_day, until_day = day_option(since, "--since"), day_option(until, "--until")
    if since_day and until_day and until_day < since_day:
        raise typer.BadParameter("--until is before --since", param_hint="--until")
    start = None if since_day is None else _ts(since_day)
    end = None if until_day is None else _ts(until_day + timedelta(days=1))
    app_ctx = app_context(ctx)
    result = in_transaction(
        app_ctx.engine,
        lambda conn: run_reprice(conn, app_ctx.pricebook, start=start, end=end, every=every),
        doing="repricing the ledger",
    )
    rows = [
        {
            "model": m,
            "keys_repriced": result.repriced[m],
            "keys_still_unpriced": result.still_unpriced[m],
            "fees_repriced": result.fees_repriced[m],
            "fees_still_unpriced": result.fees_still_unpriced[m],
            "difference": money_text(result.change[m]),
        }
        for m in result.models
    ]
    emit(
        fmt,
        rows,
        COLUMNS,
        kind="reprice",
        title="Repriced per model (usage keys and training fees corrected)",
    )
    if fmt is Format.table:
        keys, fees = sum(result.repriced.values()), sum(result.fees_repriced.values())
        write_text(f"{keys} key(s) repriced, {fees} training fee(s) repriced\n")


def _ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
