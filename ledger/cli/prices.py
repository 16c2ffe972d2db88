"""`ftledger prices`: check, list and show the effective-dated price book."""

from __future__ import annotations

import time
from typing import Annotated, Any

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
from ledger.errors import PricingError
from ledger.period import utc_date
from ledger.pricebook import tier_of, unknown_model

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
    book = app_context(ctx).pricebook
    today = utc_date(int(time.time()))
    rows: list[dict[str, Any]] = []
    for spec in book:
        for tier in ("", *spec.tiers):
            base = book.price_at(spec.name, today, tier)
            tuned = book.price_at(f"ft:{spec.name}", today, tier)
            rows.append(
                {
                    "model": spec.name,
                    "tier": tier or "standard",
                    "aliases": ",".join(spec.aliases),
                    "encoding": spec.encoding,
                    "training_context": spec.training_context,
                    "input": _text(base, "input"),
                    "cached_input": _text(base, "cached_input"),
                    "output": _text(base, "output"),
                    "ft_training": _training(tuned),
                    "ft_input": _text(tuned, "input"),
                    "ft_cached_input": _text(tuned, "cached_input"),
                    "ft_output": _text(tuned, "output"),
                }
            )
    from ledger.reports.table import Column

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
        title=f"Prices in force on {today} (USD per 1M tokens; ft = fine-tuned; /h = per hour)",
        choice=TableChoice(columns, wide),
    )


def _text(row: Any, name: str) -> str | None:
    value = getattr(row, name) if row is not None else None
    return None if value is None else str(value)


def _training(row: Any) -> str | None:
    if row is None:
        return None
    if row.training_hour is not None:
        return f"{row.training_hour}/h"
    return str(row.training) if row.training is not None else None


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
    resolved = book.resolve(model)
    priced_tier = tier_of(tier)
    row = book.price_at(model, on, priced_tier)
    if resolved.spec is None:
        raise unknown_model(book, model)
    if row is None:
        where = f" in the {priced_tier} tier" if priced_tier else ""
        raise PricingError(f"{model} has no price{where} on {on}")
    base_row = book.base_price_at(model, on, priced_tier)
    base_prices = base_row.as_strings() if base_row else {}
    doc = {
        "model": model,
        "base_model": resolved.base_model,
        "fine_tuned": resolved.fine_tuned,
        "checkpoint": resolved.checkpoint,
        "encoding": resolved.spec.encoding,
        "training_context": resolved.spec.training_context,
        "at": on.isoformat(),
        "tier": priced_tier or "standard",
        "tiers": ["standard", *resolved.spec.tiers],
        "effective": row.effective.isoformat(),
        "currency": book.currency,
        "prices": row.as_strings(),
        "base_prices": base_prices or None,
    }
    rows = [
        {"price": k, "value": v, "base_value": base_prices.get(k)}
        for k, v in row.as_strings().items()
    ]
    title = (
        f"{model} -> {resolved.base_model} ({'fine-tuned' if resolved.fine_tuned else 'base'}), "
        f"{priced_tier or 'standard'} tier, row effective {row.effective}, "
        f"{book.currency} per 1M tokens"
    )
    emit(fmt, rows, ["price", "value", "base_value"], document=doc, title=title)
