"""`ftledger reconcile`: the ledger's computed cost against OpenAI's billed costs, per day."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import Format, FormatOption, app_context, emit, month_option, write_text
from ledger.cli.report import MonthOption


def reconcile(
    ctx: typer.Context,
    month: MonthOption = None,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="Flag days whose variance exceeds PCT percent.")
    ] = "2",
    fmt: FormatOption = Format.table,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE.", dir_okay=False)
    ] = None,
) -> None:
    """Computed cost (usage + training) against billed costs (Costs API) per UTC day.

    Variance = billed - computed. Days beyond the tolerance are flagged with the likely
    cause: billed below computed (promotion, discount, stale price), billed above
    computed (missing usage, unpriced model), or no billed rows (Costs API not polled).

    Example: ftledger reconcile --month 2026-10 --tolerance 1.5
    """
    from ledger.reports.documents import reconcile_document
    from ledger.reports.reconcile import COLUMNS
    from ledger.views import as_of, reconciliation

    try:
        pct = Decimal(tolerance)
    except InvalidOperation:
        pct = Decimal(-1)
    if not pct.is_finite() or pct < 0:
        raise typer.BadParameter(f"{tolerance!r} is not a percentage", param_hint="--tolerance")
    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        result = reconciliation(conn, app_ctx.pricebook, the_month, pct)
        document = reconcile_document(result, as_of(conn))
    rows = document["rows"]
    if fmt is Format.csv:  # booleans as JSON spells them
        rows = [{**r, "flagged": "true" if r["flagged"] else "false"} for r in rows]
    if fmt is Format.table:
        totals = document["totals"]
        rows = [*rows, {"day": "TOTAL", **totals, "flagged": totals["flagged_days"]}]
    title = f"Reconciliation {result.month} ({result.currency}), tolerance {pct}%"
    emit(fmt, rows, COLUMNS, document=document, title=title, out=output)
    if fmt is Format.table and output is None:
        write_text(f"{result.totals['flagged_days']} day(s) flagged\n")
