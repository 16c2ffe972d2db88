"""`ftledger budgets check|status` and `ftledger forecast`: where spend stands and heads."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from ledger.alerts import BudgetStatus
    from ledger.forecast import Forecast

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


def _money(pico: int | None) -> str | None:
    """Exact decimal text, the same digits `report monthly` prints."""
    from ledger.reports.text import money_text

    return money_text(pico)


def _forecast_cells(forecast: Forecast | None) -> dict[str, Any]:
    return {
        "forecast": _money(forecast.point) if forecast else None,
        "forecast_low": _money(forecast.low) if forecast else None,
        "forecast_high": _money(forecast.high) if forecast else None,
        "method": forecast.method if forecast else None,
    }


@app.command("check")
def check(ctx: typer.Context, fmt: FormatOption = Format.table, now: NowOption = None) -> None:
    """Evaluate every budget now, record crossed thresholds and deliver pending alerts.

    Each (budget, period, actual|forecast, threshold) alerts once; failed deliveries are
    retried at the next check. Exit status 1 when a delivery failed.

    Example: ftledger budgets check --format json
    """
    from ledger.alerts import run_budget_check

    app_ctx = app_context(ctx)
    result = run_budget_check(app_ctx.engine, app_ctx.settings, None, now=_now(now))
    rows = [
        {
            "budget": d.budget,
            "period": d.period,
            "kind": d.kind,
            "threshold": f"{d.threshold.normalize():f}",
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "error": d.error,
        }
        for d in result.deliveries
    ]
    columns = ["budget", "period", "kind", "threshold", "channel", "status", "attempts", "error"]
    title = (
        f"Checked {len(result.statuses)} budget(s) at {result.checked_at:%Y-%m-%d %H:%M}Z: "
        f"{len(result.decided)} new alert(s), {len(result.delivered)} delivered, "
        f"{len(result.failed)} failed"
    )
    emit(fmt, rows, columns, title=title)
    if result.failed:
        typer.echo(
            f"ftledger: {len(result.failed)} alert delivery(ies) failed; "
            "they are retried at the next check",
            err=True,
        )
        raise typer.Exit(1)


def _status_row(status: BudgetStatus) -> dict[str, Any]:
    alerted = ", ".join(
        f"{kind} {threshold.normalize():f}" + ("" if state == "delivered" else f" ({state})")
        for kind, threshold, state in status.alerted
    )
    return {
        "budget": status.budget.name,
        "period": status.period.label,
        "amount": _money(status.budget.amount_pico),
        "spend": _money(status.spend),
        "used_percent": str(status.used),
        **_forecast_cells(status.forecast),
        "crosses_on": status.crosses_on.isoformat() if status.crosses_on else None,
        "alerted": alerted or None,
        "unpriced_models": ",".join(status.unpriced_models) or None,
    }


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
    from ledger.alerts import budget_config, budget_statuses
    from ledger.reports.table import Column

    app_ctx = app_context(ctx)
    config = budget_config(app_ctx.settings, resolve_secrets=False)
    engine = app_ctx.existing_engine
    rows = [_status_row(s) for s in budget_statuses(engine, config, _now(now))]
    table = [
        Column("budget", kind="name"),
        Column("period"),
        Column("amount", kind="money"),
        Column("spend", kind="money"),
        Column("used_percent", "used", kind="pct"),
        Column("forecast", kind="money"),
        Column("forecast_low", "low", kind="money", default=False),
        Column("forecast_high", "high", kind="money", default=False),
        Column("method", default=False),
        Column("crosses_on", "crosses on"),
        Column("alerted", kind="note"),
        Column("unpriced_models", "unpriced", kind="note", default=False),
    ]
    title = f"Budgets ({config.source})" if rows else f"No budgets defined in {config.source}"
    emit(fmt, rows, table, title=title, choice=TableChoice(columns, wide))


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
    from datetime import timedelta

    from ledger.alerts import budget_config, evaluate
    from ledger.forecast import HISTORY_WINDOW_DAYS, forecast_period
    from ledger.period import parse_month, period_containing
    from ledger.reports.table import Column
    from ledger.spend import by_day, first_day
    from ledger.views import day_costs

    at = _now(now)
    try:
        period = parse_month(month) if month else period_containing("monthly", at.date())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None
    if period.start > at.date():
        raise typer.BadParameter(f"{period.label} has not started yet", param_hint="--month")
    app_ctx = app_context(ctx)
    config = budget_config(app_ctx.settings, resolve_secrets=False)
    today = at.date()
    history_start = min(period.start, today - timedelta(days=HISTORY_WINDOW_DAYS))
    rows: list[dict[str, Any]] = []
    with app_ctx.read_connection() as conn:
        spend = day_costs(conn, period_containing("daily", history_start).start_ts, period.end_ts)
        models = sorted({r.model for r in spend if r.day >= period.start})
        for name in [*models, None]:
            of_model = [r for r in spend if name is None or r.model == name]
            daily = by_day(of_model)
            projection = forecast_period(daily, period, today, first_day=first_day(of_model))
            rows.append(
                {
                    "kind": "model" if name else "total",
                    "name": name or "TOTAL",
                    "spend": _money(sum(v for d, v in daily.items() if d >= period.start)),
                    **_forecast_cells(projection),
                    "budget_amount": None,
                    "crosses_on": None,
                }
            )
        for budget in config.budgets:
            if budget.period != "monthly":
                continue
            state = evaluate(conn, budget, at, period, config.allocation)
            rows.append(
                {
                    "kind": "budget",
                    "name": budget.name,
                    "spend": _money(state.spend),
                    **_forecast_cells(state.forecast),
                    "budget_amount": _money(budget.amount_pico),
                    "crosses_on": state.crosses_on.isoformat() if state.crosses_on else None,
                }
            )
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
    emit(
        fmt,
        rows,
        table,
        title=f"Spend forecast for {period.label} as of {today} (USD)",
        choice=TableChoice(columns, wide),
    )
