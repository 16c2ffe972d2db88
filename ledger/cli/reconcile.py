"""`ftledger reconcile`: the ledger's computed cost against OpenAI's billed costs, per day."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from ledger.cli.common import (
    ColumnsOption,
    Format,
    FormatOption,
    OutputOption,
    TableChoice,
    WideOption,
    app_context,
    check_output,
    emit,
    month_option,
    output_format,
)
from ledger.cli.report import MonthOption


def reconcile(
    ctx: typer.Context,
    month: MonthOption = None,
    tolerance: Annotated[
        str,
        typer.Option("--tolerance", help="Flag days whose variance exceeds PCT percent (2 or 2%)."),
    ] = "2",
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """Computed cost (usage + training) against billed costs (Costs API) per UTC day.

    Variance = billed - computed. Days beyond the tolerance are flagged with the likely
    cause: billed below computed (promotion, discount, stale price), billed above
    computed (missing usage, unpriced model), or no billed rows (Costs API not polled).

    Example: ftledger reconcile --month 2026-10 --tolerance 1.5
    """
    from ledger.reports.documents import reconcile_document
    from ledger.reports.reconcile import COLUMNS
    from ledger.reports.table import Column
    from ledger.views import as_of, reconciliation

    try:
        pct = Decimal(tolerance.strip().removesuffix("%").strip())
    except InvalidOperation:
        pct = Decimal(-1)
    if not pct.is_finite() or pct < 0:
        raise typer.BadParameter(
            f"{tolerance!r} is not a percentage (e.g. 2 or 1.5%)", param_hint="--tolerance"
        )
    fmt = output_format(ctx, fmt, output)
    out = check_output(output)
    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        result = reconciliation(conn, app_ctx.pricebook, the_month, pct)
        document = reconcile_document(result, as_of(conn))
    rows = document["rows"]
    if fmt is Format.csv:  # booleans as JSON spells them
        rows = [{**r, "flagged": "true" if r["flagged"] else "false"} for r in rows]
    if fmt is Format.table:
        rows = [{**r, "flagged": "FLAG" if r["flagged"] else ""} for r in rows]
    totals = document["totals"]
    title = f"Reconciliation {result.month} ({result.currency}), tolerance {pct}%"
    table = [
        Column("day"),
        Column("computed_cost", "computed", kind="money"),
        Column("billed_cost", "billed", kind="money"),
        Column("variance", kind="money"),
        Column("variance_pct", "variance %", kind="pct"),
        Column("flagged"),
        Column("likely_cause", "likely cause", kind="note"),
    ]
    assert [c.key for c in table] == list(COLUMNS)
    emit(
        fmt,
        rows,
        table,
        document=document,
        title=title,
        out=out,
        totals=[{"day": "TOTAL", **totals, "flagged": str(totals["flagged_days"])}],
        footer=[f"{result.totals['flagged_days']} day(s) flagged"],
        choice=TableChoice(columns, wide),
    )
