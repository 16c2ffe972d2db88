"""`ftledger prices`: check, list and show the effective-dated price book."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ledger.cli.common import Format, FormatOption, app_context, day_option, emit
from ledger.period import utc_date

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
def list_models(ctx: typer.Context, fmt: FormatOption = Format.table) -> None:
    """List every model with its aliases and the prices in force today.

    Example: ftledger prices list --format csv
    """
    from ledger.documents import prices_document

    book = app_context(ctx).pricebook
    today = utc_date(int(time.time()))
    document = prices_document(book, today)
    rows = [{**r, "aliases": ",".join(r["aliases"])} for r in document["rows"]]
    emit(
        fmt,
        rows,
        list(rows[0]) if rows else ["model"],
        document=document,
        title=f"Prices in force on {today} (USD per 1M tokens)",
    )


@app.command("show")
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A model name as OpenAI reports it.")],
    at: Annotated[
        str | None, typer.Option(help="UTC date YYYY-MM-DD (default: today).", show_default=False)
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show the prices that apply to MODEL at a date: dated, undated, fine-tuned or checkpoint.

    Example: ftledger prices show ft:gpt-3.5-turbo-0613:acme::8x2 --at 2023-09-01 --format json
    """
    book = app_context(ctx).pricebook
    on = day_option(at, "--at") or utc_date(int(time.time()))
    from ledger.documents import price_document

    doc = price_document(book, model, on)
    rows = doc["rows"]
    kind = "fine-tuned" if doc["fine_tuned"] else "base"
    title = (
        f"{model} -> {doc['base_model']} ({kind}), "
        f"row effective {doc['effective']}, {book.currency} per 1M tokens"
    )
    emit(fmt, rows, ["price", "value", "base_value"], document=doc, title=title)
