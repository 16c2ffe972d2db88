"""`ftledger report`: the monthly spend report and the what-if repricing."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ledger.cli.common import Format, FormatOption, app_context, emit, month_option, write_text

if TYPE_CHECKING:
    pass

app = typer.Typer(help="Spend reports.", no_args_is_help=True)


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"


class GroupBy(StrEnum):
    model = "model"
    base_model = "base-model"
    project = "project"
    day = "day"


MonthOption = Annotated[
    str | None,
    typer.Option("--month", "-m", help="UTC month YYYY-MM (default: this month to date)."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to FILE instead of stdout.", dir_okay=False),
]


@app.command("monthly")
def monthly(
    ctx: typer.Context,
    month: MonthOption = None,
    by: Annotated[GroupBy, typer.Option("--by", help="One row per this.")] = GroupBy.model,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", "-f", help="table, json, csv, markdown or html."),
    ] = ReportFormat.table,
    output: OutputOption = None,
) -> None:
    """What each model cost in a month, what its base model would have cost, and training.

    Money is exact decimal text (at least 6 decimals); a model without a price shows its
    tokens with null costs and is listed as unpriced. HTML is one self-contained file with
    charts (daily spend by model; fine-tuned against base-model cost).

    Example: ftledger report monthly --month 2026-10 --format html --output oct.html
    """
    from ledger import views
    from ledger.reports import render

    app_ctx = app_context(ctx)
    the_month = month_option(month)
    book = app_ctx.pricebook
    with app_ctx.read_connection() as conn:
        report = views.monthly(conn, book, the_month, by.value)
        as_of = views.as_of(conn)
        daily = views.daily_chart(conn, the_month) if fmt is ReportFormat.html else {}
    if fmt is ReportFormat.html:
        from ledger.reports.html import render_html

        text = render_html(report, daily)
    else:
        text = {
            ReportFormat.table: render.render_table,
            ReportFormat.json: lambda r: render.render_json(r, as_of),
            ReportFormat.csv: render.render_csv,
            ReportFormat.markdown: render.render_markdown,
        }[fmt](report)
    write_text(text, output)


@app.command("whatif")
def whatif(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Option("--model", help="Target model (base or ft: name) to re-price at."),
    ],
    month: MonthOption = None,
    fmt: FormatOption = Format.table,
    output: OutputOption = None,
) -> None:
    """The month's usage re-priced as if it had run on another model, against actual cost.

    Tokens of each day are priced at the target's prices in force that day; batch usage
    keeps its discount. Totals compare the models whose actual and what-if costs are both
    known.

    Example: ftledger report whatif --month 2026-10 --model gpt-4.1
    """
    from ledger import views
    from ledger.reports.documents import whatif_document
    from ledger.reports.whatif import COLUMNS

    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        result = views.whatif(conn, app_ctx.pricebook, the_month, model)
        as_of = views.as_of(conn)
    document = whatif_document(result, as_of)
    total = {"model": "TOTAL", **document["totals"]}
    rows = document["rows"] if fmt is not Format.table else [*document["rows"], total]
    title = f"What if {result.month} had run on {model} ({result.currency})"
    emit(fmt, rows, COLUMNS, document=document, title=title, out=output)
    if fmt is Format.table and result.target_unpriced_days:
        write_text(f"{model} had no price on: {', '.join(result.target_unpriced_days)}\n", output)
