"""Machine documents of the non-report commands, shared by the CLI and the HTTP API.

`ftledger status|budgets status|forecast|prices list|prices show|estimate|poll|budgets
check --format json` print these, and `/api/v1/...` returns the same bodies, so the two
faces cannot drift. Each is wrapped in the one envelope (`reports.documents.envelope`):
money and percentages are exact decimal strings, durations integer seconds, instants
ISO 8601 UTC, lists lists, booleans true/false.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ledger.reports.documents import envelope, iso
from ledger.reports.text import money_text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ledger.alerts import BudgetStatus, CheckResult
    from ledger.budgets import BudgetConfig
    from ledger.estimate import Estimate
    from ledger.forecast import Forecast
    from ledger.period import Period
    from ledger.pricebook import PriceBook
    from ledger.store.watermarks import WatermarkState
    from ledger.sync import CycleReport
    from ledger.views import ForecastLine

__all__ = [
    "budget_check_document",
    "budgets_document",
    "envelope",
    "estimate_document",
    "forecast_document",
    "poll_document",
    "price_document",
    "prices_document",
    "status_document",
]


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _threshold(value: Any) -> str:
    return f"{value.normalize():f}"


# --- poll status -----------------------------------------------------------------------


def status_document(
    marks: Iterable[WatermarkState], names: Sequence[str], now: int, interval: int
) -> dict[str, Any]:
    """`ftledger status`: per source the last success, lag in seconds, last error, and a
    state: failing (its last poll failed), lagging (no success for 2 poll `interval`s),
    never (not polled yet) or ok."""
    from ledger.secrets import mask

    by_source = {m.source: m for m in marks}
    ordered = [*names, *sorted(set(by_source) - set(names))]
    rows = []
    for name in ordered:
        mark = by_source.get(name)
        last = mark.last_success_at if mark else None
        rows.append(
            {
                "source": name,
                "last_success": iso(last),
                "lag_seconds": None if last is None else max(0, now - last),
                "read_up_to": iso(mark.position) if mark else None,
                "failing_since": iso(mark.failing_since) if mark else None,
                "failures": mark.consecutive_failures if mark else 0,
                "last_error": mask(mark.last_error) if mark and mark.last_error else None,
                "state": _state(mark, now, interval),
            }
        )
    successes = [m.last_success_at for m in by_source.values() if m.last_success_at]
    return envelope(
        "poll_status",
        as_of=max(successes) if successes else None,
        generated_at=now,
        rows=rows,
        totals={
            "sources": len(rows),
            "failing": sum(1 for r in rows if r["failures"]),
            "lagging": sum(1 for r in rows if r["state"] == "lagging"),
        },
    )


def _state(mark: WatermarkState | None, now: int, interval: int) -> str:
    if mark is None or mark.last_success_at is None:
        return "failing" if mark is not None and mark.consecutive_failures else "never"
    if mark.consecutive_failures:
        return "failing"
    return "lagging" if now - mark.last_success_at > 2 * interval else "ok"


def poll_document(report: CycleReport, now: int | None = None) -> dict[str, Any]:
    """`ftledger poll`: what each source read and posted."""
    rows = []
    for source in report.sources:
        row = source.as_row()
        row["unpriced_models"] = [m for m in str(row["unpriced_models"] or "").split(",") if m]
        rows.append(row)
    return envelope("poll", generated_at=now, rows=rows, totals={"failed": len(report.failed)})


# --- budgets and forecast --------------------------------------------------------------


def forecast_cells(forecast: Forecast | None) -> dict[str, Any]:
    return {
        "forecast": money_text(forecast.point) if forecast else None,
        "forecast_low": money_text(forecast.low) if forecast else None,
        "forecast_high": money_text(forecast.high) if forecast else None,
        "method": forecast.method if forecast else None,
    }


def budget_row(status: BudgetStatus) -> dict[str, Any]:
    forecast_used = (
        None
        if status.forecast is None or not status.budget.amount_pico
        else f"{status.forecast.point * 100 / status.budget.amount_pico:.2f}"
    )
    return {
        "budget": status.budget.name,
        "period": status.period.label,
        "amount": money_text(status.budget.amount_pico),
        "spend": money_text(status.spend),
        "used_percent": str(status.used),
        "forecast_percent": forecast_used,
        **forecast_cells(status.forecast),
        "crosses_on": _day(status.crosses_on),
        "alerted": [
            {"kind": kind, "threshold": _threshold(threshold), "state": state}
            for kind, threshold, state in status.alerted
        ],
        "unpriced_models": list(status.unpriced_models),
    }


def budgets_document(
    statuses: Sequence[BudgetStatus], at: datetime, source: str, as_of: int | None = None
) -> dict[str, Any]:
    """`ftledger budgets status`: one row per budget in its current period."""
    return envelope(
        "budgets_status",
        as_of=as_of,
        generated_at=int(at.timestamp()),
        source=source,
        rows=[budget_row(s) for s in statuses],
        totals=None,
    )


def budgets_status(engine: Engine, config: BudgetConfig, at: datetime) -> dict[str, Any]:
    """The `budgets status` document, assembled (GET /api/v1/budgets returns the same)."""
    from ledger.alerts import budget_statuses
    from ledger.store.engine import read_connection
    from ledger.store.errors import db_errors
    from ledger.views import as_of

    statuses = budget_statuses(engine, config, at)
    with db_errors("reading the ledger", engine.url), read_connection(engine) as conn:
        fresh = as_of(conn)
    return budgets_document(statuses, at, str(config.source), fresh)


def budget_check_document(result: CheckResult) -> dict[str, Any]:
    """`ftledger budgets check`: the alert decisions and deliveries of one check."""
    rows = [
        {
            "budget": d.budget,
            "period": d.period,
            "kind": d.kind,
            "threshold": _threshold(d.threshold),
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "error": d.error,
        }
        for d in result.deliveries
    ]
    return envelope(
        "budget_check",
        generated_at=int(result.checked_at.timestamp()),
        checked_budgets=len(result.statuses),
        rows=rows,
        totals={
            "new_alerts": len(result.decided),
            "delivered": len(result.delivered),
            "failed": len(result.failed),
        },
    )


def forecast_row(line: ForecastLine) -> dict[str, Any]:
    return {
        "kind": line.kind,
        "name": line.name,
        "spend": money_text(line.spend),
        **forecast_cells(line.forecast),
        "budget_amount": money_text(line.budget_amount),
        "crosses_on": _day(line.crosses_on),
    }


def forecast_document(
    lines: Sequence[ForecastLine], period: Period, at: datetime, as_of: int | None = None
) -> dict[str, Any]:
    """`ftledger forecast`: rows per model and monthly budget; the total in `totals`."""
    rows = [forecast_row(line) for line in lines if line.kind != "total"]
    total = next((forecast_row(line) for line in lines if line.kind == "total"), None)
    return envelope(
        "forecast",
        as_of=as_of,
        generated_at=int(at.timestamp()),
        month=period.label,
        today=at.date().isoformat(),
        rows=rows,
        totals=total,
    )


# --- prices and estimates --------------------------------------------------------------


def _training(row: Any) -> str | None:
    if row is None:
        return None
    if row.training_hour is not None:
        return f"{row.training_hour}/h"
    return str(row.training) if row.training is not None else None


def _price(row: Any, name: str) -> str | None:
    value = getattr(row, name) if row is not None else None
    return None if value is None else str(value)


def prices_document(book: PriceBook, today: date) -> dict[str, Any]:
    """`ftledger prices list`: every model with its aliases and today's prices (per 1M),
    one row for standard processing and one per service tier the book prices."""
    rows: list[dict[str, Any]] = []
    for spec in book:
        for tier in ("", *spec.tiers):
            base = book.price_at(spec.name, today, tier)
            tuned = book.price_at(f"ft:{spec.name}", today, tier)
            rows.append(
                {
                    "model": spec.name,
                    "tier": tier or "standard",
                    "aliases": list(spec.aliases),
                    "encoding": spec.encoding,
                    "training_context": spec.training_context,
                    "input": _price(base, "input"),
                    "cached_input": _price(base, "cached_input"),
                    "output": _price(base, "output"),
                    "ft_training": _training(tuned),
                    "ft_input": _price(tuned, "input"),
                    "ft_cached_input": _price(tuned, "cached_input"),
                    "ft_output": _price(tuned, "output"),
                }
            )
    return envelope(
        "prices",
        currency=book.currency,
        as_of=today.isoformat(),
        price_book_version=book.version,
        rows=rows,
    )


def price_document(book: PriceBook, model: str, on: date, tier: str = "") -> dict[str, Any]:
    """`ftledger prices show`: the prices that apply to `model` on `on` in a service tier
    ("" = standard); PricingError when there are none."""
    from ledger.errors import PricingError
    from ledger.pricebook import unknown_model

    resolved = book.resolve(model)
    if resolved.spec is None:
        raise unknown_model(book, model)
    row = book.price_at(model, on, tier)
    if row is None:
        where = f" in the {tier} tier" if tier else ""
        raise PricingError(f"{model} has no price{where} on {on}")
    base_row = book.base_price_at(model, on, tier)
    base_prices = base_row.as_strings() if base_row else {}
    return envelope(
        "price",
        currency=book.currency,
        as_of=on.isoformat(),
        model=model,
        base_model=resolved.base_model,
        fine_tuned=resolved.fine_tuned,
        checkpoint=resolved.checkpoint,
        encoding=resolved.spec.encoding,
        training_context=resolved.spec.training_context,
        at=on.isoformat(),
        tier=tier or "standard",
        tiers=["standard", *resolved.spec.tiers],
        effective=row.effective.isoformat(),
        prices=row.as_strings(),
        base_prices=base_prices or None,
        rows=[
            {"price": k, "value": v, "base_value": base_prices.get(k)}
            for k, v in row.as_strings().items()
        ],
    )


def estimate_document(result: Estimate, **extra: Any) -> dict[str, Any]:
    """`ftledger estimate` and POST /api/v1/estimate: the estimate's fields at top level
    (errors and warnings as lists), `extra` (moderation, recorded_id) after them."""
    fields = result.as_dict()
    currency = fields.pop("currency")
    return envelope("estimate", currency=currency, as_of=fields["price_date"], **fields, **extra)


def rows_document(kind: str, rows: Sequence[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """The envelope around a plain list of rows (reprice, report estimates, breakeven, import)."""
    return envelope(kind, rows=rows, **fields)
