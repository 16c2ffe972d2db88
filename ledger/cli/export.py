"""`ftledger export`: the ledger in formats other tools read (FinOps FOCUS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import app_context, month_option, write_text
from ledger.cli.report import MonthOption

app = typer.Typer(help="Export ledger data for other tools.", no_args_is_help=True)


@app.command("focus")
def focus(
    ctx: typer.Context,
    month: MonthOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="CSV file to write (default: stdout).", dir_okay=False),
    ] = None,
    account_id: Annotated[str, typer.Option(help="FOCUS BillingAccountId.")] = "openai",
    account_name: Annotated[
        str, typer.Option(help="FOCUS BillingAccountName.")
    ] = "OpenAI organization",
) -> None:
    """FinOps FOCUS 1.2 CSV of a month's usage and training charges.

    One row per UTC day, model, project and standard/batch for usage, one per training
    fee. EffectiveCost sums to the monthly report's total_cost. Periods are UTC, start
    inclusive, end exclusive.

    Example: ftledger export focus --month 2026-10 --output focus-2026-10.csv
    """
    from ledger.reports.documents import focus_csv
    from ledger.reports.focus import Account
    from ledger.views import focus as focus_view

    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        account = Account(account_id, account_name)
        export = focus_view(conn, app_ctx.pricebook, the_month, account, app_ctx.allocation)
    write_text(focus_csv(export), output)
