"""`ftledger export`: the ledger in formats other tools read (FinOps FOCUS)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from ledger.cli.common import (
    OutputOption,
    app_context,
    check_output,
    emit_json,
    month_option,
    output_format,
    write_text,
)
from ledger.cli.report import MonthOption


class FocusFormat(StrEnum):
    csv = "csv"
    json = "json"


app = typer.Typer(help="Export ledger data for other tools.", no_args_is_help=True)


@app.command("focus")
def focus(
    ctx: typer.Context,
    month: MonthOption = None,
    fmt: Annotated[
        FocusFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="csv (FOCUS's own) or json (the envelope, rows as the CSV's columns) "
            "(default: from --output's extension, else csv).",
        ),
    ] = FocusFormat.csv,
    output: OutputOption = None,
    account_id: Annotated[str, typer.Option(help="FOCUS BillingAccountId.")] = "openai",
    account_name: Annotated[
        str, typer.Option(help="FOCUS BillingAccountName.")
    ] = "OpenAI organization",
) -> None:
    """FinOps FOCUS 1.2 CSV of a month's usage and training charges.

    One row per UTC day, model, project and standard/batch for usage, one per training
    fee. EffectiveCost sums to the monthly report's total_cost. Periods are UTC, start
    inclusive, end exclusive. `-o x.json` (or --format json) writes the rows in the JSON
    envelope instead, costs as exact decimal strings.

    Example: ftledger export focus --month 2026-10 --output focus-2026-10.csv
    """
    from ledger.reports.documents import focus_csv, focus_document
    from ledger.reports.focus import Account
    from ledger.views import as_of
    from ledger.views import focus as focus_view

    fmt = output_format(ctx, fmt, output)
    out = check_output(output)
    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        account = Account(account_id, account_name)
        export = focus_view(conn, app_ctx.pricebook, the_month, account, app_ctx.allocation)
        polled = as_of(conn)
    if fmt is FocusFormat.json:
        emit_json(focus_document(export, str(the_month), polled), out)
    else:
        write_text(focus_csv(export), out)
