"""Exact money: Decimal from strings in, integer pico-USD stored, rounding only for display.

The stored unit is 10**-12 USD. Prices are quoted per 1M tokens, so a price with
up to six decimals (0.075, 1.875, and their batch halves) is a whole number of
pico-USD per token, and every cost is an exact integer. SQLite and PostgreSQL
sum integers identically.
"""

from __future__ import annotations

from decimal import MAX_PREC, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

PICO_PER_UNIT = 10**12
TOKENS_PER_PRICE_UNIT = 10**6  # prices are quoted per 1M tokens
DISPLAY_PLACES = 6
# Sums, differences and products of exact amounts without the default 28-digit rounding
# (billed text may carry more digits); never divide in it.
EXACT = Context(prec=MAX_PREC)


def D(value: str | int | Decimal) -> Decimal:
    """A Decimal from a string or int; floats are refused because they are not exact."""
    if isinstance(value, float | bool):
        raise TypeError(f"money must not come from {type(value).__name__}: {value!r}")
    if isinstance(value, Decimal):
        return value
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal") from None
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal")
    return result


def to_pico(amount: Decimal) -> int:
    """Exact conversion to integer pico-units; a value finer than 1e-12 is an error."""
    scaled = amount * PICO_PER_UNIT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than 12 decimal places")
    return int(scaled)


def from_pico(pico: int) -> Decimal:
    return Decimal(pico).scaleb(-12)


def per_token_pico(price_per_million: Decimal) -> int:
    """Integer pico-units per token for a price per 1M tokens (exact or an error)."""
    return to_pico(price_per_million / TOKENS_PER_PRICE_UNIT)


def display(amount: Decimal | None, places: int = DISPLAY_PLACES) -> str | None:
    """The one rounding helper: a decimal string with `places` decimals, half-even."""
    if amount is None:
        return None
    step = Decimal(1).scaleb(-places)
    return format(amount.quantize(step, rounding=ROUND_HALF_EVEN, context=EXACT), "f")


def pico_display(pico: int | None, places: int = DISPLAY_PLACES) -> str | None:
    return None if pico is None else display(from_pico(pico), places)
