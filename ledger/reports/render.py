"""Text renderers of the monthly report: table, JSON, CSV and Markdown.

Money becomes text here, through `text`, so every format shows the same digits. The
table and Markdown add a totals line and the comparison with the previous month.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ledger.reports.monthly import MONEY_FIELDS, MonthlyReport
from ledger.reports.table import Column, choose, terminal_width
from ledger.reports.table import render as render_people
from ledger.reports.text import cell, money_text, people_cell, percent, percent_text, usd


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
    return {report.key_fields[0]: "TOTAL", **report.totals}


def _no_data(report: MonthlyReport) -> str:
    if report.data_start is None:
        return f"No data for {report.month}: the ledger holds no usage or fees yet."
    return (
        f"No data for {report.month}: the ledger's data begins {report.data_start} "
        f"(try --month {report.data_start:%Y-%m})."
    )


def _footer(report: MonthlyReport) -> list[str]:
    """The previous-month comparison and the unpriced models, in people's numbers."""
    prev = report.previous
    days = f" (days 1-{prev.through_day}, as far as this month)" if prev.through_day else ""
    if not prev.has_data:
        lines = [f"Previous month {prev.month}{days}: no data"]
    else:
        change = report.total.known - prev.total.known
        pct = percent_text(change, prev.total.known)
        sign = "+" if change > 0 else ""
        shown = f" ({sign}{percent(pct)})" if pct is not None else ""
        lines = [
            f"Previous month {prev.month}{days}: {usd(prev.total.known, report.currency)}; "
            f"change {sign}{usd(change, report.currency)}{shown}"
        ]
    if report.unpriced_models:
        lines.append(
            "Unpriced models (tokens shown; known costs counted, the rest unknown): "
            + ", ".join(report.unpriced_models)
        )
    return lines


def _title(report: MonthlyReport) -> str:
    return f"Monthly report {report.month} ({report.currency}), by {report.by}"


_KEY_COLUMNS = {
    "model": Column("model", kind="name"),
    "base_model": Column("base_model", "base model", kind="name", default=False),
    "fine_tuned": Column("fine_tuned", "fine-tuned", kind="bool", default=False),
    "project": Column("project", kind="name"),
    "day": Column("day"),
}
NUMBER_COLUMNS = (
    Column("priced", kind="bool", default=False),
    Column("requests", kind="count", drop=2),
    Column("input_tokens", "tokens in", kind="count"),
    Column("cached_input_tokens", "cached in", kind="count", default=False),
    Column("output_tokens", "tokens out", kind="count"),
    Column("usage_cost", "cost", kind="money"),
    Column("base_model_cost", "base cost", kind="money"),
    Column("premium", kind="money", default=False),
    Column("premium_pct", "premium %", kind="pct", drop=1),
    Column("training_tokens", "training tokens", kind="count", default=False),
    Column("training_cost", "training", kind="money"),
    Column("total_cost", "total", kind="money"),
)


def table_columns(report: MonthlyReport) -> list[Column]:
    """Every column of the report's table; the default ones are what a reader needs."""
    keys = [_KEY_COLUMNS[k] for k in report.key_fields]
    if report.by == "base-model":
        keys = [Column("base_model", "base model", kind="name")]
    return [*keys, *NUMBER_COLUMNS]


def render_table(
    report: MonthlyReport,
    *,
    columns: str | None = None,
    wide: bool = False,
    width: int | None = None,
) -> str:
    """The people's table: chosen columns (`--columns`, `--wide`), fitted to `width`
    (default: the terminal's), a totals row and the previous-month line."""
    if not report.has_data:
        return f"{_title(report)}\n\n{_no_data(report)}\n"
    chosen = choose(table_columns(report), columns, wide)
    total = _total_row(report)
    total.pop("priced", None)
    return render_people(
        chosen,
        report.rows,
        title=_title(report),
        totals=[total],
        footer=_footer(report),
        width=None if wide else (width or terminal_width()),
        currency=report.currency,
    )


def render_markdown(report: MonthlyReport) -> str:
    """Every column, in people's numbers ($1,234.57, 12,345,678, 113.2%)."""
    if not report.has_data:
        return f"# {_title(report)}\n\n{_no_data(report)}\n"
    columns = table_columns(report)
    align = ["---:" if c.right else ":---" for c in columns]
    lines = [
        f"# {_title(report)}",
        "",
        "| " + " | ".join(c.label for c in columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for row in report.rows:
        cells = (people_cell(c.kind, row.get(c.key), report.currency) for c in columns)
        lines.append("| " + " | ".join(_md(v) for v in cells) + " |")
    total = _total_row(report)
    lines.append(
        "| "
        + " | ".join(
            f"**{_md(people_cell(c.kind, total[c.key], report.currency))}**"
            if c.key in total and c.key != "priced"
            else ""
            for c in columns
        )
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
