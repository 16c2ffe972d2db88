"""Numbers as text, for every renderer: exact money for machines, percentages, cells.

The one place money becomes text. Machine formats (JSON, CSV, FOCUS) carry exact
decimal strings: at least six decimals, more where the amount needs them, never an
exponent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.money import DISPLAY_PLACES, EXACT, display, from_pico

MISSING = "n/a"


def money_text(pico: int | None) -> str | None:
    """Exact decimal text of pico-USD: six decimals, more only where needed (up to 12)."""
    return None if pico is None else amount_text(from_pico(pico))


def amount_text(amount: Decimal | None) -> str | None:
    """Exact decimal text with at least six decimals (billed amounts may carry more)."""
    if amount is None:
        return None
    exponent = EXACT.normalize(amount).as_tuple().exponent
    places = max(DISPLAY_PLACES, -exponent) if isinstance(exponent, int) else DISPLAY_PLACES
    return display(amount, places)


def percent_text(part: Decimal | int | None, whole: Decimal | int | None) -> str | None:
    """part / whole as a percentage with two decimals; None when undefined."""
    if part is None or not whole:
        return None
    return display(Decimal(part) * 100 / Decimal(whole), 2)


def cell(value: Any) -> str:
    """How a value reads in a table cell: booleans as true/false, unknown as n/a."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- Numbers for people (tables, Markdown, HTML, alert text) --------------------------
# Machines get the exact text above; people get these. `usd` is the one helper that
# rounds money for display.

PEOPLE_PLACES = 2
_CENT = Decimal("0.01")


def as_amount(value: Decimal | int | str | None) -> Decimal | None:
    """An amount from what rows carry: int = pico-USD, str = exact decimal text."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, int):
        return from_pico(value)
    if isinstance(value, str):
        return Decimal(value)
    return value


def usd(value: Decimal | int | str | None, currency: str = "USD") -> str:
    """Money as people read it: `$1,234.57`, `-$3.10`, `<$0.01` for a tiny non-zero
    amount, `n/a` when unknown. Other currencies read `1,234.57 EUR`."""
    amount = as_amount(value)
    if amount is None:
        return MISSING
    sign = "-" if amount < 0 else ""
    size = abs(amount)
    if 0 < size < _CENT:
        return f"{'>-' if sign else '<'}{_with_currency('0.01', currency)}"
    text = f"{Decimal(display(size, PEOPLE_PLACES) or '0'):,.2f}"
    if text == "0.00":
        sign = ""
    return sign + _with_currency(text, currency)


def _with_currency(text: str, currency: str) -> str:
    return f"${text}" if currency.upper() == "USD" else f"{text} {currency.upper()}"


def count(value: int | str | None) -> str:
    """A count with thousands separators: 12,345,678; `n/a` when unknown."""
    if value is None or value == "":
        return MISSING
    return f"{int(value):,}"


def percent(value: Decimal | str | tuple[Any, Any] | None, places: int = 1) -> str:
    """A percentage for people: `113.2%` (one decimal by default); `n/a` when undefined.
    Accepts the exact percent text, a Decimal percent, or a (part, whole) pair."""
    if isinstance(value, tuple):
        value = percent_text(*value)
    if value is None or value == "":
        return MISSING
    number = Decimal(value)
    return f"{Decimal(display(number, places) or '0'):,.{places}f}%"


def people_cell(kind: str, value: Any, currency: str = "USD") -> str:
    """One table cell for people, by column kind: money, count, pct, or text."""
    if kind == "money":
        return usd(value, currency)
    if kind == "count":
        return count(value) if not isinstance(value, bool) else cell(value)
    if kind == "pct":
        return percent(value)
    if kind == "bool":
        return "yes" if value is True else "no" if value is False else cell(value)
    return cell(value)


def shorten_middle(text: str, width: int) -> str:
    """`ft:gpt-4o-mini…:support:A1b2C3`: the start and the distinguishing end are kept.

    A fine-tuned model name keeps its whole suffix and id (and checkpoint) when the head
    still shows the base model's family; other text keeps more of its end than its start.
    """
    if width <= 0 or len(text) <= width:
        return text
    if width == 1:
        return "…"
    parts = text.split(":")
    if parts[0] == "ft" and len(parts) >= 5:
        for tail, least in ((":" + ":".join(parts[3:]), 9), (":" + ":".join(parts[4:]), 6)):
            head = width - 1 - len(tail)
            if head >= least:  # "ft:gpt-4o" tells the family; "ft:gpt-" at the least
                return text[:head] + "…" + tail
    tail_len = (width - 1) * 3 // 5
    head = width - 1 - tail_len
    return text[:head] + "…" + text[len(text) - tail_len :]
