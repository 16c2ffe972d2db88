"""Text renderers of the monthly report: table, JSON, CSV and Markdown.

They only lay out the strings the report already holds, so every format shows the same
digits. The table and Markdown add a totals line and the previous month's total.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ledger.reports.monthly import NUMERIC_FIELDS, MonthlyReport

MISSING = "n/a"


def cell(value: Any) -> str:
    """How a value reads in a table cell: booleans as true/false, unknown costs as n/a."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _total_row(report: MonthlyReport) -> dict[str, Any]:
    return {report.key_fields[0]: "TOTAL", **report.totals}


def _footer(report: MonthlyReport) -> list[str]:
    prev = report.previous()
    pct = f" ({prev['change_pct']}%)" if prev["change_pct"] is not None else ""
    lines = [
        f"Previous month {prev['month']} total_cost: {prev['total_cost']}",
        f"Change: {prev['change']}{pct}",
    ]
    if report.unpriced_models:
        lines.append(
            "Unpriced models (tokens shown, costs unknown and left out of the totals): "
            + ", ".join(report.unpriced_models)
        )
    return lines


def _title(report: MonthlyReport) -> str:
    return f"Monthly report {report.month} ({report.currency}), by {report.by}"


def render_table(report: MonthlyReport) -> str:
    columns = report.columns
    body = [[cell(r.get(c)) for c in columns] for r in report.rows]
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
    columns = report.columns
    align = ["---:" if c in _RIGHT else ":---" for c in columns]
    lines = [
        f"# {_title(report)}",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    for row in report.rows:
        lines.append("| " + " | ".join(_md(cell(row.get(c))) for c in columns) + " |")
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


def render_json(report: MonthlyReport) -> str:
    return json.dumps(report.document(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: MonthlyReport) -> str:
    """One line per row, columns named as the JSON row keys; unknown costs are empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow(["" if row[c] is None else cell(row[c]) for c in report.columns])
    return buffer.getvalue()


_RIGHT = frozenset(NUMERIC_FIELDS)
