"""Repricing: a usage key held unpriced gets its cost once the price book has a price.

Entries are never changed. A key posted while its model had no price sums to
unpriced = 1; repricing posts one more entry per key (no token change, the full cost
less what the key already holds, unpriced = -1), exactly what a re-read would post.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from ledger.domain import UsageKey, UsageObservation
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.store.ledger import held_sums, post_usage
from ledger.store.read import unpriced_keys


@dataclass
class RepriceResult:
    """Keys per model: repriced now, and still without a price."""

    repriced: Counter[str] = field(default_factory=Counter)
    still_unpriced: Counter[str] = field(default_factory=Counter)


def reprice(
    conn: Connection,
    book: PriceBook,
    *,
    start: int | None = None,
    end: int | None = None,
    now: int | None = None,
) -> RepriceResult:
    """Post the correction of every unpriced key in range that `book` can now price."""
    result = RepriceResult()
    keys = unpriced_keys(conn, start, end)
    if not keys:
        return result
    held = held_sums(conn, set(keys))
    pricer = UsagePricer(book)
    observations: dict[UsageKey, UsageObservation] = {}
    for key in keys:
        _rev, req, inp, cached, out, _cost, _base, unpriced, base_unpriced = held[key]
        obs = UsageObservation(key, int(req), int(inp), int(cached), int(out))
        cost, base_cost = pricer.price(obs)
        if (unpriced > 0 and cost is not None) or (base_unpriced > 0 and base_cost is not None):
            observations[key] = obs
            result.repriced[key.model] += 1
        else:
            result.still_unpriced[key.model] += 1
    post_usage(conn, observations, book, now=now)
    return result
