"""`ftledger report`: the monthly spend report and the what-if repricing."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

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
    write_text,
)

if TYPE_CHECKING:
    from ledger.reports.monthly import MonthlyReport

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
    team = "team"
    day = "day"


MonthOption = Annotated[
    str | None,
    typer.Option("--month", "-m", help="UTC month YYYY-MM (default: this month to date)."),
]


@app.command("monthly")
def monthly(
    ctx: typer.Context,
    month: MonthOption = None,
    by: Annotated[GroupBy, typer.Option("--by", help="One row per this.")] = GroupBy.model,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="table, json, csv, markdown or html (default: from --output's extension, "
            "else table).",
        ),
    ] = ReportFormat.table,
    output: OutputOption = None,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """What each model cost in a month, what its base model would have cost, and training.

    The table shows what a reader needs (model, requests, tokens in/out, cost, base cost,
    premium %, training, total) in dollars, fitted to the terminal (requests, then
    premium %, make room for model names in a narrow one); --wide or --columns show more.
    JSON and CSV carry exact decimal text (at least 6 decimals); a model
    without a price shows its tokens with null costs and is listed as unpriced. HTML is
    one self-contained file with charts (daily spend by model, training fees apart).

    Example: ftledger report monthly --month 2026-10 --output oct.html
    """
    from ledger import views
    from ledger.reports import render

    fmt = output_format(ctx, fmt, output)
    out = check_output(output)
    app_ctx = app_context(ctx)
    the_month = month_option(month)
    book = app_ctx.pricebook
    with app_ctx.read_connection() as conn:
        allocation = app_ctx.allocation if by is GroupBy.team else None
        report = views.monthly(conn, book, the_month, by.value, allocation=allocation)
        as_of = views.as_of(conn)
        daily = views.daily_chart(conn, the_month) if fmt is ReportFormat.html else {}
        outlook = _budget_outlook(app_ctx, conn, the_month) if fmt is ReportFormat.html else []
    if fmt is ReportFormat.html:
        from ledger.period import iso_utc
        from ledger.reports.html import render_html

        text = render_html(report, daily, generated_at=iso_utc(int(time.time())), budgets=outlook)
    elif fmt is ReportFormat.table:
        text = _table(report, columns, wide)
    else:
        text = {
            ReportFormat.json: lambda r: render.render_json(r, as_of),
            ReportFormat.csv: render.render_csv,
            ReportFormat.markdown: render.render_markdown,
        }[fmt](report)
    write_text(text, out)


def _table(report: MonthlyReport, columns: str | None, wide: bool) -> str:
    from ledger.reports import render
    from ledger.reports.table import ColumnChoiceError

    try:
        return render.render_table(report, columns=columns, wide=wide)
    except ColumnChoiceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None


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
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """The month's usage re-priced as if it had run on another model, against actual cost.

    Tokens of each day are priced at the target's prices in force that day; batch usage
    keeps its discount. Totals compare the models whose actual and what-if costs are both
    known.

    Example: ftledger report whatif --month 2026-10 --model gpt-4.1
    """
    from ledger import views
    from ledger.reports.documents import whatif_document
    from ledger.reports.table import Column
    from ledger.reports.whatif import COLUMNS

    fmt = output_format(ctx, fmt, output)
    out = check_output(output)
    app_ctx = app_context(ctx)
    the_month = month_option(month)
    with app_ctx.read_connection() as conn:
        result = views.whatif(conn, app_ctx.pricebook, the_month, model)
        as_of = views.as_of(conn)
    document = whatif_document(result, as_of)
    total = {"model": "TOTAL", **document["totals"]}
    total.pop("priced", None)
    title = f"What if {result.month} had run on {model} ({result.currency})"
    footer = []
    if result.target_unpriced_days:
        footer.append(f"{model} had no price on: {', '.join(result.target_unpriced_days)}")
    table = [
        Column("model", kind="name"),
        Column("priced", kind="bool", default=False),
        Column("requests", kind="count"),
        Column("input_tokens", "tokens in", kind="count"),
        Column("cached_input_tokens", "cached in", kind="count", default=False),
        Column("output_tokens", "tokens out", kind="count"),
        Column("actual_cost", "actual", kind="money"),
        Column("whatif_cost", "what-if", kind="money"),
        Column("difference", kind="money"),
        Column("difference_pct", "diff %", kind="pct"),
    ]
    assert [c.key for c in table] == list(COLUMNS)
    emit(
        fmt,
        document["rows"],
        table,
        document=document,
        title=title,
        out=out,
        totals=[total],
        footer=footer,
        choice=TableChoice(columns, wide),
    )


def _budget_outlook(app_ctx: Any, conn: Any, month: Any) -> list[dict[str, Any]]:
    """The monthly budgets of budgets.toml in `month`: amount, spend, forecast at month
    end, projected crossing (none configured: empty; secrets are not read)."""
    from ledger.alerts import budget_config, evaluate
    from ledger.money import display, from_pico
    from ledger.period import period_containing, utc_now

    config = budget_config(app_ctx.settings, resolve_secrets=False)
    period = period_containing("monthly", month.first_day)
    rows = []
    for budget in config.budgets:
        if budget.period != "monthly":
            continue
        status = evaluate(conn, budget, utc_now(None), period, config.allocation)
        forecast = status.forecast
        rows.append(
            {
                "budget": budget.name,
                "amount": display(budget.amount),
                "spend": display(from_pico(status.spend)),
                "forecast": None if forecast is None else display(from_pico(forecast.point)),
                "crosses_on": None if status.crosses_on is None else str(status.crosses_on),
                "unpriced": list(status.unpriced_models),
            }
        )
    return rows
