"""Machine documents of the report views, and the one envelope every JSON document wears.

The reports hold numbers; here money becomes exact decimal text (`text`), ratios
become percentages with two decimals, and FOCUS rows become CSV. Every `--format json`
output of the CLI and every JSON body of the HTTP API is `envelope(...)`:

    {"kind": "monthly_report", "currency": "USD", "generated_at": "...Z",
     "as_of": "...Z" | null, <fields of the kind>, "rows": [...], "totals": {...} | null}

Money and percentages are exact decimal strings; counts are integers; durations are
integer seconds (`*_seconds`); instants are ISO 8601 UTC with a Z; lists are lists;
booleans are true/false; unknown is null.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from typing import Any

from ledger.period import iso_utc
from ledger.reports import focus as focus_view
from ledger.reports import whatif as whatif_view
from ledger.reports.focus import FocusExport
from ledger.reports.monthly import MonthlyReport
from ledger.reports.reconcile import Reconciliation
from ledger.reports.text import amount_text, money_text, percent_text
from ledger.reports.whatif import WhatIf


def iso(ts: int | None) -> str | None:
    """A unix time as ISO 8601 UTC (None stays None)."""
    return None if ts is None else iso_utc(ts)


def envelope(
    kind: str,
    *,
    currency: str = "USD",
    as_of: int | str | None = None,
    rows: Sequence[dict[str, Any]] = (),
    totals: dict[str, Any] | None = None,
    generated_at: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The one JSON envelope: kind, currency, generated_at, as_of, fields, rows, totals.

    `as_of` is when the numbers are current: the newest successful poll for ledger
    views (null when the ledger was never polled), the price date for prices and
    estimates.
    """
    at = int(time.time()) if generated_at is None else generated_at
    return {
        "kind": kind,
        "currency": currency,
        "generated_at": iso_utc(at),
        "as_of": iso(as_of) if isinstance(as_of, int) else as_of,
        **fields,
        "rows": list(rows),
        "totals": totals,
    }


def monthly_document(report: MonthlyReport, as_of: int | None = None) -> dict[str, Any]:
    """`report monthly --format json` and GET /api/v1/reports/monthly."""
    from ledger.reports.render import document

    body = document(report)
    rows, totals = body.pop("rows"), body.pop("totals")
    currency = body.pop("currency")
    return envelope(
        "monthly_report", currency=currency, as_of=as_of, rows=rows, totals=totals, **body
    )


def _pct(pair: tuple[Any, Any] | None) -> str | None:
    return None if pair is None else percent_text(*pair)


def whatif_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, **{f: money_text(row[f]) for f in whatif_view.MONEY_FIELDS if f in row}}
    out["difference_pct"] = _pct(row.get("difference_pct"))
    return out


def whatif_document(result: WhatIf, as_of: int | None = None) -> dict[str, Any]:
    return envelope(
        "whatif_report",
        currency=result.currency,
        as_of=as_of,
        month=str(result.month),
        target=result.target,
        target_base_model=result.target_base_model,
        unpriced_models=result.unpriced_models,
        target_unpriced_days=result.target_unpriced_days,
        rows=[whatif_row(r) for r in result.rows],
        totals=whatif_row(result.totals),
    )


_RECONCILE_MONEY = ("computed_cost", "billed_cost", "variance")


def reconcile_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, **{f: amount_text(row[f]) for f in _RECONCILE_MONEY if f in row}}
    out["variance_pct"] = _pct(row.get("variance_pct"))
    return out


def reconcile_document(result: Reconciliation, as_of: int | None = None) -> dict[str, Any]:
    """One row per UTC day (`rows`), flagged days beyond the tolerance."""
    return envelope(
        "reconciliation",
        currency=result.currency,
        as_of=as_of,
        month=str(result.month),
        tolerance_pct=str(result.tolerance_pct),
        rows=[reconcile_row(d) for d in result.days],
        totals=reconcile_row(result.totals),
    )


def focus_csv(export: FocusExport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(focus_view.COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in export.rows:
        writer.writerow({**row, **{c: money_text(row[c]) for c in focus_view.COST_COLUMNS}})
    return buffer.getvalue()


def focus_document(export: FocusExport, month: str, as_of: int | None = None) -> dict[str, Any]:
    """The FOCUS rows in the JSON envelope: the CSV's columns, costs as exact text."""
    rows = [
        {**row, **{c: money_text(row[c]) for c in focus_view.COST_COLUMNS}} for row in export.rows
    ]
    return envelope(
        "focus",
        as_of=as_of,
        month=month,
        rows=rows,
        totals={"EffectiveCost": money_text(export.total.known)},
    )
