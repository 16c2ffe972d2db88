"""`ftledger prices`: check, list and show the effective-dated price book."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ledger.cli.common import (
    ColumnsOption,
    Format,
    FormatOption,
    TableChoice,
    WideOption,
    app_context,
    day_option,
    emit,
)
from ledger.period import utc_date
from ledger.pricebook import tier_of

app = typer.Typer(
    help="Check, list and show the price book (config/prices.toml).", no_args_is_help=True
)


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Validate the price book; exit 1 listing every problem.

    Example: ftledger prices check
    """
    book = app_context(ctx).pricebook  # raises PriceBookError with every problem
    typer.echo(f"{book.source}: OK ({len(book.models)} models, version {book.version})")


@app.command("list")
def list_models(
    ctx: typer.Context,
    fmt: FormatOption = Format.table,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """List every model with its aliases and the prices in force today: one line for
    standard processing, then one per service tier the book prices (flex, priority).

    Example: ftledger prices list --format csv
    """
    from ledger.documents import prices_document

    book = app_context(ctx).pricebook
    today = utc_date(int(time.time()))
    from ledger.reports.table import Column

    document = prices_document(book, today)
    rows = [{**r, "aliases": ",".join(r["aliases"])} for r in document["rows"]]
    table = [
        Column("model", kind="name"),
        Column("tier"),
        Column("aliases", kind="note", default=False),
        Column("encoding", default=False),
        Column("training_context", "training context", kind="count", default=False),
        Column("input"),
        Column("cached_input", "cached input"),
        Column("output"),
        Column("ft_training", "ft training"),
        Column("ft_input", "ft input"),
        Column("ft_cached_input", "ft cached", default=False),
        Column("ft_output", "ft output"),
    ]
    emit(
        fmt,
        rows,
        table,
        document=document,
        title=f"Prices in force on {today} (USD per 1M tokens; ft = fine-tuned; /h = per hour)",
        choice=TableChoice(columns, wide),
    )


@app.command("show")
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A model name as OpenAI reports it.")],
    at: Annotated[
        str | None, typer.Option(help="UTC date YYYY-MM-DD (default: today).", show_default=False)
    ] = None,
    tier: Annotated[
        str,
        typer.Option(help="Service tier as the Usage API reports it (flex, priority, ...)."),
    ] = "default",
    fmt: FormatOption = Format.table,
) -> None:
    """Show the prices that apply to MODEL at a date: dated, undated, fine-tuned or checkpoint,
    in a service tier (default: standard).

    Example: ftledger prices show o4-mini --tier flex --at 2025-06-01 --format json
    """
    book = app_context(ctx).pricebook
    on = day_option(at, "--at") or utc_date(int(time.time()))
    from ledger.documents import price_document

    doc = price_document(book, model, on, tier_of(tier))
    rows = doc["rows"]
    kind = "fine-tuned" if doc["fine_tuned"] else "base"
    title = (
        f"{model} -> {doc['base_model']} ({kind}), {doc['tier']} tier, "
        f"row effective {doc['effective']}, {book.currency} per 1M tokens"
    )
    emit(fmt, rows, ["price", "value", "base_value"], document=doc, title=title)
