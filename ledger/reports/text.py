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
