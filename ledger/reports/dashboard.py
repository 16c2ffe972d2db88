"""The dashboard of `ftledger serve` (GET /) as one server-rendered page: no script, no CDN.

It shows the documents the API serves (monthly report, forecast, budgets, poll status),
so the page and `/api/v1/...` cannot tell different numbers. Amounts arrive as exact
decimal text and become `$1,234.57` here; the daily chart is the HTML report's SVG.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from html import escape
from typing import Any
from urllib.parse import urlencode

from ledger.reports.html import _CSS, _daily_chart

_DASH_CSS = """
header{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:8px;
margin-bottom:16px}
header form{display:flex;gap:6px;align-items:center}
input,button,select{font:inherit;padding:4px 8px;border:1px solid #cbd2d9;border-radius:6px}
button{background:#4e79a7;color:#fff;border-color:#4e79a7;cursor:pointer}
.bar{background:#e4e7eb;border-radius:4px;height:10px;min-width:80px;position:relative}
.bar i{display:block;height:10px;border-radius:4px;background:#59a14f}
.bar i.hot{background:#e15759}.bar i.warm{background:#edc948}
.bar b{position:absolute;top:-3px;width:2px;height:16px;background:#1f2933}
.links a{margin-right:14px}
.ok{color:#2f7d32}.bad{color:#c62828;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:0 20px}
td.k{max-width:420px}
@media (max-width:600px){main{padding:12px}.card .v{font-size:15px}}
"""


def usd(text: str | None) -> str:
    """Exact decimal text to people's money: $1,234.57, <$0.01, n/a."""
    if text is None:
        return "n/a"
    amount = Decimal(text)
    if amount != 0 and abs(amount) < Decimal("0.01"):
        return "<$0.01" if amount > 0 else "-<$0.01"
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"


def _card(label: str, value: str, note: str = "", test_id: str = "") -> str:
    attr = f' data-testid="{test_id}"' if test_id else ""
    sub = f'<div class="note">{escape(note)}</div>' if note else ""
    return (
        f'<div class="card"><div class="k">{escape(label)}</div>'
        f'<div class="v"{attr}>{escape(value)}</div>{sub}</div>'
    )


def _percent(used: str | None) -> float:
    return 0.0 if used is None else min(float(used), 100.0)  # geometry only


def render_dashboard(
    *,
    month: str,
    months: list[str],
    monthly: dict[str, Any],
    daily: dict[str, dict[str, int]],
    forecast: dict[str, Any] | None,
    budgets: dict[str, Any],
    status: dict[str, Any],
) -> str:
    """The page for `month`; every argument but `daily` is an API document."""
    totals = monthly["totals"] or {}
    currency = monthly["currency"]
    query = urlencode({"month": month})
    cards = [
        _card("Month-to-date total", usd(totals.get("total_cost")), test_id="total"),
        _card(
            "Premium over base",
            usd(totals.get("premium")),
            f"base-model cost {usd(totals.get('base_model_cost'))}",
        ),
        _card("Training fees", usd(totals.get("training_cost"))),
    ]
    ft = forecast["totals"] if forecast else None
    if ft and ft.get("forecast") is not None:
        cards.append(
            _card(
                "Forecast month-end",
                usd(ft["forecast"]),
                f"90% interval {usd(ft['forecast_low'])} - {usd(ft['forecast_high'])}"
                f" ({ft['method']})",
                test_id="forecast",
            )
        )
    else:
        cards.append(_card("Forecast month-end", "n/a", "fewer than 3 days of data"))
    for row in forecast["rows"] if forecast else []:
        if row["kind"] == "budget":
            crossing = f", crosses on {row['crosses_on']}" if row["crosses_on"] else ""
            cards.append(
                _card(
                    f"Budget {row['name']}",
                    f"{usd(row['spend'])} of {usd(row['budget_amount'])}",
                    f"forecast {usd(row['forecast'])}{crossing}",
                )
            )
    options = "".join(
        f'<option value="{escape(m)}"{" selected" if m == month else ""}>{escape(m)}</option>'
        for m in months
    )
    as_of = monthly.get("as_of") or "never polled"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>ftledger {escape(month)}</title>",
        f"<style>{_CSS}{_DASH_CSS}</style></head><body><main>",
        "<header><div>",
        f"<h1>Fine-tuning spend {escape(month)}</h1>",
        f'<p class="sub">{escape(currency)}, UTC month; data as of {escape(as_of)}</p></div>',
        '<form method="get" action="/"><label for="month">Month</label>',
        f'<select id="month" name="month">{options}</select>',
        '<button type="submit">Show</button></form></header>',
        f'<div class="cards">{"".join(cards)}</div>',
    ]
    if monthly.get("unpriced_models"):
        parts.append(
            '<div class="warn"><b>Unpriced models</b> (known costs counted, the rest unknown): '
            + ", ".join(f"<code>{escape(m)}</code>" for m in monthly["unpriced_models"])
            + "</div>"
        )
    parts += [
        '<section class="panel"><h2>Daily spend (inference by model; training fees)</h2>',
        _daily_chart(daily, currency),
        "</section>",
        '<section class="panel"><h2>Fine-tuned against base-model cost</h2>',
        _models_table(monthly),
        "</section>",
        '<div class="grid">',
        '<section class="panel"><h2>Budgets</h2>',
        _budgets_table(budgets),
        "</section>",
        '<section class="panel"><h2>Poll status</h2>',
        _status_table(status),
        "</section></div>",
        '<section class="panel links"><h2>Downloads</h2>',
        f'<a href="/api/v1/reports/monthly.csv?{query}">Monthly CSV</a>',
        f'<a href="/api/v1/export/focus?{query}">FOCUS CSV</a>',
        f'<a href="/api/v1/reports/monthly.html?{query}">HTML report</a>',
        f'<a href="/api/v1/reports/monthly?{query}">JSON</a>',
        "</section></main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _models_table(monthly: dict[str, Any]) -> str:
    rows = sorted(
        monthly["rows"],
        key=lambda r: -Decimal(r.get("total_cost") or "0"),
    )
    if not rows:
        return '<p class="note">No usage or fees this month.</p>'
    head = (
        "<tr><th>Model</th><th class=n>Requests</th><th class=n>Cost</th>"
        "<th class=n>Base-model cost</th><th class=n>Premium</th><th class=n>Training</th>"
        "<th class=n>Total</th></tr>"
    )
    body = []
    for r in rows:
        pct = f" ({r['premium_pct']}%)" if r.get("premium_pct") else ""
        body.append(
            f"<tr><td class=k>{escape(str(r.get('model', '')))}</td>"
            f"<td class=n>{int(r.get('requests') or 0):,}</td>"
            f"<td class=n>{usd(r.get('usage_cost'))}</td>"
            f"<td class=n>{usd(r.get('base_model_cost'))}</td>"
            f"<td class=n>{usd(r.get('premium'))}{escape(pct)}</td>"
            f"<td class=n>{usd(r.get('training_cost'))}</td>"
            f"<td class=n>{usd(r.get('total_cost'))}</td></tr>"
        )
    t = monthly["totals"]
    body.append(
        f"<tr class=total><td>TOTAL</td><td class=n>{int(t.get('requests') or 0):,}</td>"
        f"<td class=n>{usd(t.get('usage_cost'))}</td>"
        f"<td class=n>{usd(t.get('base_model_cost'))}</td>"
        f"<td class=n>{usd(t.get('premium'))}</td><td class=n>{usd(t.get('training_cost'))}</td>"
        f'<td class=n data-testid="table-total">{usd(t.get("total_cost"))}</td></tr>'
    )
    return f"<table>{head}{''.join(body)}</table>"


def _budgets_table(budgets: dict[str, Any]) -> str:
    if not budgets["rows"]:
        return '<p class="note">No budgets defined (config/budgets.toml).</p>'
    out = ["<table><tr><th>Budget</th><th>Used</th><th class=n>Spend</th><th>Alerts</th></tr>"]
    for r in budgets["rows"]:
        used = _percent(r["used_percent"])
        hot = "hot" if used >= 100 else "warm" if used >= 80 else ""
        mark = _percent(r.get("forecast_percent"))
        alerts = ", ".join(f"{a['kind']} {a['threshold']}% ({a['state']})" for a in r["alerted"])
        out.append(
            f"<tr><td class=k>{escape(r['budget'])}<div class=note>{escape(r['period'])}</div>"
            f'</td><td><div class="bar" title="{escape(r["used_percent"])}% used">'
            f'<i class="{hot}" style="width:{used:.1f}%"></i>'
            f'<b style="left:{mark:.1f}%" title="forecast"></b></div>'
            f"<div class=note>{escape(r['used_percent'])}% used, forecast "
            f"{escape(r.get('forecast_percent') or 'n/a')}%</div></td>"
            f"<td class=n>{usd(r['spend'])}<div class=note>of {usd(r['amount'])}</div></td>"
            f"<td class=k>{escape(alerts) or 'none'}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _lag(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h ago"
    return f"{hours}h {rest // 60}m ago" if hours else f"{rest // 60}m {rest % 60}s ago"


def _status_table(status: dict[str, Any]) -> str:
    out = ["<table><tr><th>Source</th><th>Last success</th><th>State</th></tr>"]
    for r in status["rows"]:
        state = {
            "failing": f'<span class="bad">failing x{r["failures"]}</span>',
            "lagging": '<span class="bad">lagging</span>',
            "never": "not polled yet",
        }.get(r["state"], '<span class="ok">ok</span>')
        out.append(
            f"<tr><td class=k>{escape(r['source'])}</td><td>{escape(_lag(r['lag_seconds']))}"
            f"</td><td>{state}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def render_login(message: str = "") -> str:
    """The sign-in page: the token goes into an HttpOnly, SameSite=Strict cookie."""
    note = f'<p class="bad">{escape(message)}</p>' if message else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>ftledger: sign in</title><style>{_CSS}{_DASH_CSS}</style></head><body><main>"
        '<h1>ftledger</h1><p class="sub">Enter the API token (the variable named by '
        "[http] token_env).</p>"
        f'{note}<form method="post" action="/login" class="panel">'
        '<label for="token">Token</label> <input id="token" name="token" type="password" '
        'autocomplete="current-password" required> <button type="submit">Sign in</button>'
        "</form></main></body></html>\n"
    )
