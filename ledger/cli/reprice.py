"""`ftledger reprice`: price usage recorded while its model had no price."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer

from ledger.cli.common import Format, FormatOption, app_context, day_option, emit, write_text

COLUMNS = ("model", "keys_repriced", "keys_still_unpriced")


def reprice(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only buckets starting on or after this UTC day."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Only buckets starting on or before this UTC day."),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Price usage that was recorded unpriced, now that the price book has its model.

    Each such usage key gets one correction entry (no token change, the full cost at the
    bucket's price); nothing is rewritten, and running it again posts nothing.

    Example: ftledger reprice --since 2026-10-01 --until 2026-10-31
    """
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
        lambda conn: run_reprice(conn, app_ctx.pricebook, start=start, end=end),
        doing="repricing the ledger",
    )
    models = sorted(set(result.repriced) | set(result.still_unpriced))
    rows = [
        {
            "model": m,
            "keys_repriced": result.repriced[m],
            "keys_still_unpriced": result.still_unpriced[m],
        }
        for m in models
    ]
    emit(fmt, rows, COLUMNS, kind="reprice", title="Repriced usage keys per model")
    if fmt is Format.table:
        write_text(f"{sum(result.repriced.values())} key(s) repriced\n")


def _ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
