"""Machine documents of the what-if, reconciliation and FOCUS views: numbers to text.

The reports hold numbers; here money becomes exact decimal text (`text`), ratios
become percentages with two decimals, and FOCUS rows become CSV.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from ledger.reports import focus as focus_view
from ledger.reports import whatif as whatif_view
from ledger.reports.focus import FocusExport
from ledger.reports.reconcile import Reconciliation
from ledger.reports.text import amount_text, money_text, percent_text
from ledger.reports.whatif import WhatIf


def _pct(pair: tuple[Any, Any] | None) -> str | None:
    return None if pair is None else percent_text(*pair)


def whatif_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, **{f: money_text(row[f]) for f in whatif_view.MONEY_FIELDS if f in row}}
    out["difference_pct"] = _pct(row.get("difference_pct"))
    return out


def whatif_document(result: WhatIf) -> dict[str, Any]:
    return {
        "month": str(result.month),
        "target": result.target,
        "target_base_model": result.target_base_model,
        "currency": result.currency,
        "unpriced_models": result.unpriced_models,
        "target_unpriced_days": result.target_unpriced_days,
        "rows": [whatif_row(r) for r in result.rows],
        "totals": whatif_row(result.totals),
    }


_RECONCILE_MONEY = ("computed_cost", "billed_cost", "variance")


def reconcile_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, **{f: amount_text(row[f]) for f in _RECONCILE_MONEY if f in row}}
    out["variance_pct"] = _pct(row.get("variance_pct"))
    return out


def reconcile_document(result: Reconciliation) -> dict[str, Any]:
    return {
        "month": str(result.month),
        "currency": result.currency,
        "tolerance_pct": str(result.tolerance_pct),
        "days": [reconcile_row(d) for d in result.days],
        "totals": reconcile_row(result.totals),
    }


def focus_csv(export: FocusExport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(focus_view.COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in export.rows:
        writer.writerow({**row, **{c: money_text(row[c]) for c in focus_view.COST_COLUMNS}})
    return buffer.getvalue()
