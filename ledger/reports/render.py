"""Text renderers of the monthly report: table, JSON, CSV and Markdown.

Money becomes text here, through `text`, so every format shows the same digits. The
table and Markdown add a totals line and the comparison with the previous month.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ledger.reports.monthly import MONEY_FIELDS, NUMERIC_FIELDS, MonthlyReport
from ledger.reports.text import cell, money_text, percent_text


def text_numbers(numbers: dict[str, Any]) -> dict[str, Any]:
    """A row's numbers as the machine formats carry them: exact decimal text for money."""
    out = dict(numbers)
    for name in MONEY_FIELDS:
        if name in out:
            out[name] = money_text(out[name])
    if "premium_pct" in out:
        pct = out["premium_pct"]
        out["premium_pct"] = None if pct is None else percent_text(*pct)
    return out


def previous_document(report: MonthlyReport) -> dict[str, Any]:
    """The previous month's total (over the same days while a month is in progress)."""
    prev = report.previous
    total = prev.total.known if prev.has_data else None
    change = None if total is None else report.total.known - total
    return {
        "month": str(prev.month),
        "through_day": prev.through_day,
        "total_cost": money_text(total),
        "change": money_text(change),
        "change_pct": percent_text(change, total),
    }


def document(report: MonthlyReport) -> dict[str, Any]:
    """The JSON document: month, currency, unpriced models, rows, totals, comparison."""
    return {
        "month": str(report.month),
        "currency": report.currency,
        "group_by": report.by,
        "has_data": report.has_data,
        "data_start": report.data_start.isoformat() if report.data_start else None,
        "unpriced_models": report.unpriced_models,
        "rows": [text_numbers(r) for r in report.rows],
        "totals": text_numbers(report.totals),
        "previous_month": previous_document(report),
    }


def _total_row(report: MonthlyReport) -> dict[str, Any]:
    return {report.key_fields[0]: "TOTAL", **text_numbers(report.totals)}


def _no_data(report: MonthlyReport) -> str:
    if report.data_start is None:
        return f"No data for {report.month}: the ledger holds no usage or fees yet."
    return f"No data for {report.month}: the ledger's data begins {report.data_start}."


def _footer(report: MonthlyReport) -> list[str]:
    prev = previous_document(report)
    days = f" (days 1-{prev['through_day']}, as far as this month)" if prev["through_day"] else ""
    if prev["total_cost"] is None:
        lines = [f"Previous month {prev['month']}{days}: no data"]
    else:
        pct = f" ({prev['change_pct']}%)" if prev["change_pct"] is not None else ""
        lines = [
            f"Previous month {prev['month']}{days} total_cost: {prev['total_cost']}",
            f"Change: {prev['change']}{pct}",
        ]
    if report.unpriced_models:
        lines.append(
            "Unpriced models (tokens shown; known costs counted, the rest unknown): "
            + ", ".join(report.unpriced_models)
        )
    return lines


def _title(report: MonthlyReport) -> str:
    return f"Monthly report {report.month} ({report.currency}), by {report.by}"


def render_table(report: MonthlyReport) -> str:
    if not report.has_data:
        return f"{_title(report)}\n\n{_no_data(report)}\n"
    columns = report.columns
    body = [[cell(text_numbers(r).get(c)) for c in columns] for r in report.rows]
    total = [cell(_total_row(report).get(c, "")) if c != "priced" else "" for c in columns]
    widths = [max(len(c), *(len(row[i]) for row in [*body, total])) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if c in _RIGHT else v.ljust(w)
            for v, w, c in zip(cells, widths, columns, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [_title(report), "", line(list(columns)), rule, *(line(r) for r in body), rule]
    lines.append(line(total))
    lines += ["", *_footer(report)]
    return "\n".join(lines) + "\n"


def render_markdown(report: MonthlyReport) -> str:
    if not report.has_data:
        return f"# {_title(report)}\n\n{_no_data(report)}\n"
    columns = report.columns
    align = ["---:" if c in _RIGHT else ":---" for c in columns]
    lines = [
        f"# {_title(report)}",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for row in report.rows:
        texts = text_numbers(row)
        lines.append("| " + " | ".join(_md(cell(texts.get(c))) for c in columns) + " |")
    total = _total_row(report)
    lines.append(
        "| "
        + " | ".join(f"**{_md(cell(total.get(c)))}**" if c in total else "" for c in columns)
        + " |"
    )
    lines += [""] + [f"- {line}" for line in _footer(report)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_json(report: MonthlyReport, as_of: int | None = None) -> str:
    """The monthly report in the JSON envelope (reports.documents.monthly_document)."""
    from ledger.reports.documents import monthly_document

    return json.dumps(monthly_document(report, as_of), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: MonthlyReport) -> str:
    """One line per row, columns named as the JSON row keys; unknown costs are empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        texts = text_numbers(row)
        writer.writerow(["" if texts[c] is None else cell(texts[c]) for c in report.columns])
    return buffer.getvalue()


_RIGHT = frozenset(NUMERIC_FIELDS)
