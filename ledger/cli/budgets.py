"""`ftledger budgets check|status` and `ftledger forecast`: where spend stands and heads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from ledger.cli.common import (
    ColumnsOption,
    Format,
    FormatOption,
    TableChoice,
    WideOption,
    app_context,
    emit,
    now_option,
)
from ledger.period import utc_now

app = typer.Typer(
    help="Budgets from config/budgets.toml: check thresholds and deliver alerts, show status.",
    no_args_is_help=True,
)

NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate as of this UTC time (ISO 8601), for what-ifs and tests.",
        hidden=True,
        show_default=False,
    ),
]


def _now(value: str | None) -> datetime:
    return utc_now(now_option(value))


def _table_cell(value: Any) -> Any:
    """A document cell for the table and CSV: lists joined with commas."""
    if isinstance(value, list):
        return (
            ", ".join(
                f"{v['kind']} {v['threshold']}%"
                + ("" if v["state"] == "delivered" else f" ({v['state']})")
                if isinstance(v, dict)
                else str(v)
                for v in value
            )
            or None
        )
    return value


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _table_cell(v) for k, v in r.items()} for r in rows]


@app.command("check")
def check(ctx: typer.Context, fmt: FormatOption = Format.table, now: NowOption = None) -> None:
    """Evaluate every budget now, record crossed thresholds and deliver pending alerts.

    Each (budget, period, actual|forecast, threshold) alerts once; failed deliveries are
    retried at the next check. Exit status 1 when a delivery failed.

    Example: ftledger budgets check --format json
    """
    from ledger.alerts import run_budget_check
    from ledger.documents import budget_check_document

    app_ctx = app_context(ctx)
    result = run_budget_check(app_ctx.engine, app_ctx.settings, None, now=_now(now))
    document = budget_check_document(result)
    rows = document["rows"]
    columns = ["budget", "period", "kind", "threshold", "channel", "status", "attempts", "error"]
    title = (
        f"Checked {len(result.statuses)} budget(s) at {result.checked_at:%Y-%m-%d %H:%M}Z: "
        f"{len(result.decided)} new alert(s), {len(result.delivered)} delivered, "
        f"{len(result.failed)} failed"
    )
    emit(fmt, rows, columns, document=document, title=title)
    if result.failed:
        typer.echo(
            f"ftledger: {len(result.failed)} alert delivery(ies) failed; "
            "they are retried at the next check",
            err=True,
        )
        raise typer.Exit(1)


@app.command("status")
def status(
    ctx: typer.Context,
    fmt: FormatOption = Format.table,
    now: NowOption = None,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """Per budget: spend this period, % used, forecast, projected crossing, alerts sent.

    Reads the ledger only; channel secrets are not needed.

    Example: ftledger budgets status --format csv
    """
    from ledger.alerts import budget_config
    from ledger.documents import budgets_status
    from ledger.reports.table import Column

    app_ctx = app_context(ctx)
    config = budget_config(app_ctx.settings, resolve_secrets=False)
    document = budgets_status(app_ctx.existing_engine, config, _now(now))
    rows = _flat(document["rows"])
    table = [
        Column("budget", kind="name"),
        Column("period"),
        Column("amount", kind="money"),
        Column("spend", kind="money"),
        Column("used_percent", "used", kind="pct"),
        Column("forecast_percent", "fcst used", kind="pct", default=False),
        Column("forecast", kind="money"),
        Column("forecast_low", "low", kind="money", default=False),
        Column("forecast_high", "high", kind="money", default=False),
        Column("method", default=False),
        Column("crosses_on", "crosses on"),
        Column("alerted", kind="note"),
        Column("unpriced_models", "unpriced", kind="note", default=False),
    ]
    title = f"Budgets ({config.source})" if rows else f"No budgets defined in {config.source}"
    emit(fmt, rows, table, document=document, title=title, choice=TableChoice(columns, wide))


def forecast(
    ctx: typer.Context,
    month: Annotated[
        str | None,
        typer.Option(
            "--month",
            "-m",
            help="UTC month YYYY-MM (default: the current month).",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = Format.table,
    now: NowOption = None,
    columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """Month-end spend per model and in total, with a 90% interval, and the day each
    monthly budget would be crossed.

    No forecast before 3 days of data in the month; a run-rate until 14 days of history,
    then a day-of-week-aware projection. A past month shows its actual spend.

    Example: ftledger forecast --month 2026-11 --format json
    """
    from ledger.alerts import budget_config
    from ledger.documents import forecast_document
    from ledger.period import parse_month, period_containing
    from ledger.reports.table import Column
    from ledger.views import as_of
    from ledger.views import forecast as forecast_lines

    at = _now(now)
    try:
        period = parse_month(month) if month else period_containing("monthly", at.date())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if period.start > at.date():
        raise typer.BadParameter(f"{period.label} has not started yet", param_hint="--month")
    app_ctx = app_context(ctx)
    config = budget_config(app_ctx.settings, resolve_secrets=False)
    with app_ctx.read_connection() as conn:
        lines = forecast_lines(conn, config.budgets, period, at, config.allocation)
        document = forecast_document(lines, period, at, as_of(conn))
    rows = [*(r for r in document["rows"] if r["kind"] == "model"), document["totals"]]
    rows += [r for r in document["rows"] if r["kind"] == "budget"]
    table = [
        Column("kind"),
        Column("name", kind="name"),
        Column("spend", kind="money"),
        Column("forecast", kind="money"),
        Column("forecast_low", "low", kind="money"),
        Column("forecast_high", "high", kind="money"),
        Column("method", default=False),
        Column("budget_amount", "budget", kind="money"),
        Column("crosses_on", "crosses on"),
    ]
    title = f"Spend forecast for {period.label} as of {at.date()} (USD)"
    emit(fmt, rows, table, document=document, title=title, choice=TableChoice(columns, wide))
