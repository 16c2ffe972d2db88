"""The monthly report as one self-contained HTML page: inline CSS, inline SVG, no scripts.

Charts are drawn here in Python so the file opens offline and prints well: daily spend
stacked by model, and each fine-tuned model's cost beside its base-model cost. Bar
geometry is integer arithmetic on the report's pico-USD; the table shows the same exact
text as the other formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

from ledger.money import PICO_PER_UNIT, display, from_pico
from ledger.reports.monthly import TRAINING_SERIES, MonthlyReport
from ledger.reports.render import previous_document, table_columns
from ledger.reports.text import people_cell, usd

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
)
OTHER_COLOR = "#bab0ac"
TRAINING_COLOR = "#3e4c59"
MAX_SERIES = len(PALETTE)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;
margin:0;background:#f5f7fa}
main{max-width:1400px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 12px}
.sub{color:#52606d;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
margin-bottom:20px}
.card,.panel{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:12px 14px}
.card .k{color:#52606d;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:17px;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.panel{margin-bottom:20px;overflow-x:auto}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin-top:8px;font-size:12px}
.legend span{display:inline-flex;align-items:center;gap:6px;word-break:break-all}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;flex:none}
table{border-collapse:collapse;font-size:11px;width:100%}
th,td{padding:4px 6px;border-bottom:1px solid #e4e7eb;text-align:left;white-space:nowrap}
th{background:#f0f4f8;white-space:normal;vertical-align:bottom}
td.k{white-space:normal;word-break:break-all;min-width:150px}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;border-top:2px solid #9aa5b1}
.warn{background:#fff8e1;border:1px solid #f0d080;border-radius:8px;padding:10px 14px;
margin-bottom:20px}
svg text{font:11px system-ui,sans-serif;fill:#52606d}
.note{color:#52606d;font-size:12px}
"""


def render_html(
    report: MonthlyReport,
    daily: dict[str, dict[str, int]],
    generated_at: str | None = None,
    budgets: Sequence[dict[str, Any]] = (),
) -> str:
    """The whole page; `daily` is known cost per ISO day and model (views.daily_chart),
    training fees as their own series; `budgets` the month's budgets (amount, spend,
    forecast, crosses_on as decimal text), shown when budgets.toml defines any."""
    title = f"Fine-tuning spend {report.month}"
    last = max((d for d, v in daily.items() if any(v.values())), default=None)
    as_of = f"Data as of {last} (the last day with usage or fees)" if last else "No data yet"
    made = f"; generated {escape(generated_at)}" if generated_at else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="sub">UTC calendar month, {escape(report.currency)}, grouped by '
        f"{escape(report.by)}. {escape(as_of)}{made}.</p>",
        _cards(report),
    ]
    if report.unpriced_models:
        parts.append(
            '<div class="warn"><b>Unpriced models</b> (tokens shown; known costs counted, '
            "the rest unknown and left out of the totals and charts): "
            + ", ".join(f"<code>{escape(m)}</code>" for m in report.unpriced_models)
            + "</div>"
        )
    if budgets:
        parts.append(_budgets(budgets, report.currency))
    parts += [
        '<section class="panel"><h2>Daily spend by model</h2>',
        _daily_chart(daily, report.currency),
        "</section>",
        '<section class="panel"><h2>Fine-tuned cost beside base-model cost</h2>',
        _comparison_chart(report),
        "</section>",
        '<section class="panel"><h2>Detail, by total cost</h2>',
        _table(report),
        "</section>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _cards(report: MonthlyReport) -> str:
    totals, prev = report.totals, previous_document(report)
    change = prev["change"]
    pct = f" ({prev['change_pct']}%)" if prev["change_pct"] is not None else ""
    vs = "no data" if change is None else f"{'+' if change[0] != '-' else ''}{_cents(change)}{pct}"
    if change is not None and change.startswith("-"):
        vs = f"{_cents(change)}{pct}"
    cards = [
        ("Total cost", _cents(totals["total_cost"])),
        ("Inference", _cents(totals["usage_cost"])),
        ("Training", _cents(totals["training_cost"])),
        ("Base-model cost", _cents(totals["base_model_cost"])),
        ("Fine-tuning premium", _cents(totals["premium"])),
        (f"vs {prev['month']}", vs),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{escape(k)}</div>'
            f'<div class="v">{escape(str(v))}</div></div>'
            for k, v in cards
        )
        + "</div>"
    )


def _cents(value: int | str | None) -> str:
    """A headline figure to the cent (the table below has the exact amounts)."""
    return usd(value)


def _nice_max(pico: int) -> int:
    """A round axis maximum (1, 2 or 5 times a power of ten) at or above `pico`."""
    if pico <= 0:
        return PICO_PER_UNIT
    step = 1
    while step * 10 <= pico:
        step *= 10
    for factor in (1, 2, 5, 10):
        if factor * step >= pico:
            return factor * step
    return 10 * step  # pragma: no cover - the loop above always returns


def _axis_label(pico: int) -> str:
    return str(display(from_pico(pico), 6)).rstrip("0").rstrip(".") or "0"


def _series(daily: dict[str, dict[str, int]]) -> tuple[list[str], dict[str, str]]:
    """The models to stack, biggest first, and their colours; the rest become 'other'."""
    totals: dict[str, int] = {}
    for per_model in daily.values():
        for model, cost in per_model.items():
            totals[model] = totals.get(model, 0) + cost
    training = TRAINING_SERIES in totals
    ranked = sorted((m for m in totals if m != TRAINING_SERIES), key=lambda m: (-totals[m], m))
    if len(ranked) > MAX_SERIES:
        ranked = [*ranked[: MAX_SERIES - 1], "other"]
    colors = {m: PALETTE[i] if m != "other" else OTHER_COLOR for i, m in enumerate(ranked)}
    if training:  # fees stack at the bottom, in their own colour
        ranked.insert(0, TRAINING_SERIES)
        colors[TRAINING_SERIES] = TRAINING_COLOR
    return ranked, colors


def _daily_chart(daily: dict[str, dict[str, int]], currency: str) -> str:
    series, colors = _series(daily)
    if not series:
        return '<p class="note">No priced spend this month.</p>'
    days = sorted(daily)
    stacks: list[dict[str, int]] = []
    for day in days:
        stack: dict[str, int] = {}
        for model, cost in daily[day].items():
            name = model if model in colors else "other"
            stack[name] = stack.get(name, 0) + cost
        stacks.append(stack)
    top = _nice_max(max((sum(s.values()) for s in stacks), default=0))
    width, height, left, bottom, pad = 1040, 300, 70, 40, 12
    plot_w, plot_h = width - left - pad, height - bottom - pad
    slot = plot_w // len(days)
    bar = max(2, slot * 7 // 10)
    out = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="Daily spend by model">'
    ]
    for i in range(5):
        value = top * i // 4
        y = pad + plot_h - plot_h * i // 4
        out.append(
            f'<line x1="{left}" y1="{y}" x2="{width - pad}" y2="{y}" stroke="#e4e7eb"/>'
            f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{_axis_label(value)}</text>'
        )
    out.append(
        f'<text x="14" y="{pad + plot_h // 2}" transform="rotate(-90 14 {pad + plot_h // 2})" '
        f'text-anchor="middle">{escape(currency)} per day</text>'
    )
    for i, (day, stack) in enumerate(zip(days, stacks, strict=True)):
        x = left + i * slot + (slot - bar) // 2
        base = pad + plot_h
        for model in series:
            cost = stack.get(model, 0)
            if cost <= 0:
                continue
            h = max(1, plot_h * cost // top)
            base -= h
            out.append(
                f'<rect x="{x}" y="{base}" width="{bar}" height="{h}" fill="{colors[model]}">'
                f"<title>{escape(day)} {escape(model)}: {usd(cost)}</title></rect>"
            )
        if i % 2 == 0 or len(days) <= 16:
            out.append(
                f'<text x="{x + bar // 2}" y="{pad + plot_h + 16}" text-anchor="middle">'
                f"{int(day[-2:])}</text>"
            )
    out.append(
        f'<text x="{left + plot_w // 2}" y="{height - 4}" text-anchor="middle">'
        "day of month (UTC)</text></svg>"
    )
    out.append(_legend([(m, colors[m]) for m in series]))
    return "".join(out)


def _legend(items: list[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{escape(name)}</span>' for name, c in items)
        + "</div>"
    )


def _comparison_chart(report: MonthlyReport) -> str:
    """Horizontal paired bars per fine-tuned model: its inference cost, then the base's."""
    pairs = [
        (str(r["model"]), int(r["usage_cost"]), int(r["base_model_cost"]))
        for r in report.rows
        if r.get("fine_tuned")
        and r["usage_cost"] is not None
        and r["base_model_cost"] is not None
        and r["requests"]  # a model with only a training fee this month has nothing to compare
    ]
    if report.by != "model":
        return '<p class="note">Shown in the report grouped by model.</p>'
    if not pairs:
        return '<p class="note">No priced fine-tuned inference this month.</p>'
    top = _nice_max(max(max(u, b) for _, u, b in pairs))
    label_w, width, pad, bar_h, gap = 330, 1040, 90, 14, 14
    plot_w = width - label_w - pad
    height = len(pairs) * (2 * bar_h + gap) + 34
    out = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="Fine-tuned cost beside base-model cost">'
    ]
    for i in range(5):
        x = label_w + plot_w * i // 4
        out.append(
            f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 22}" stroke="#e4e7eb"/>'
            f'<text x="{x}" y="{height - 8}" text-anchor="middle">'
            f"{_axis_label(top * i // 4)}</text>"
        )
    for i, (model, usage, base) in enumerate(pairs):
        y = i * (2 * bar_h + gap) + 4
        out.append(
            f'<text x="{label_w - 8}" y="{y + bar_h + 4}" text-anchor="end">'
            f"<title>{escape(model)}</title>{escape(_short(model))}</text>"
        )
        for j, (cost, color, what) in enumerate(
            ((usage, PALETTE[0], "fine-tuned"), (base, PALETTE[1], "base model"))
        ):
            w = max(1, plot_w * cost // top) if cost > 0 else 0
            yy = y + j * bar_h
            out.append(
                f'<rect x="{label_w}" y="{yy}" width="{w}" height="{bar_h - 2}" fill="{color}">'
                f"<title>{escape(model)} {what}: {usd(cost)}</title></rect>"
                f'<text x="{label_w + w + 4}" y="{yy + bar_h - 4}">{usd(cost)}</text>'
            )
    out.append("</svg>")
    out.append(
        _legend([("fine-tuned inference", PALETTE[0]), ("same tokens on base model", PALETTE[1])])
    )
    return "".join(out)


def _short(model: str, limit: int = 48) -> str:
    return model if len(model) <= limit else model[: limit - 1] + "\u2026"


def _table(report: MonthlyReport) -> str:
    """The reader's columns in dollars, the most expensive row first, then the total."""
    columns = [c for c in table_columns(report) if c.default]
    head = "".join(f'<th class="{"n" if c.right else ""}">{escape(c.label)}</th>' for c in columns)

    def row_html(row: dict[str, Any], css: str = "") -> str:
        cells = "".join(
            f'<td class="{"n" if c.right else "k" if c.kind == "name" else ""}">'
            f"{escape(people_cell(c.kind, row[c.key], report.currency) if c.key in row else '')}"
            "</td>"
            for c in columns
        )
        return f'<tr class="{css}">{cells}</tr>'

    ranked = sorted(report.rows, key=lambda r: -(r["total_cost"] or 0))
    body = "".join(row_html(r) for r in ranked)
    total = row_html({report.key_fields[0]: "TOTAL", **report.totals}, "total")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}{total}</tbody></table>"


def _budgets(rows: Sequence[dict[str, Any]], currency: str) -> str:
    """The month's budgets: amount, spent, used, forecast at month end, when crossed."""

    def pct(part: str | None, whole: str | None) -> str:
        if part is None or not whole or Decimal(whole) == 0:
            return "n/a"
        return f"{Decimal(part) * 100 / Decimal(whole):.1f}%"

    body = "".join(
        "<tr>"
        f"<td>{escape(r['budget'])}</td>"
        f'<td class="n">{escape(usd(r["amount"], currency))}</td>'
        f'<td class="n">{escape(usd(r["spend"], currency))}</td>'
        f'<td class="n">{pct(r["spend"], r["amount"])}</td>'
        f'<td class="n">{escape(usd(r["forecast"], currency))}</td>'
        f'<td class="n">{pct(r["forecast"], r["amount"])}</td>'
        f"<td>{escape(r['crosses_on'] or '-')}</td>"
        "</tr>"
        for r in rows
    )
    return (
        '<section class="panel"><h2>Budget and forecast for the month</h2>'
        '<table><thead><tr><th>budget</th><th class="n">amount</th><th class="n">spent</th>'
        '<th class="n">used</th><th class="n">forecast</th><th class="n">of budget</th>'
        "<th>crosses on</th></tr></thead><tbody>" + body + "</tbody></table>"
        '<p class="note">Forecast: month-end spend projected from the daily run rate '
        "(the actual spend once the month has ended).</p></section>"
    )
