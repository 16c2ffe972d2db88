"""Repricing: correction entries that bring held costs to the price book's.

Entries are never changed. `reprice` prices what was held unpriced: a usage key posted
while its model had no price sums to unpriced = 1, and gets one more entry (no token
change, the full cost less what the key already holds, unpriced = -1), exactly what a
re-read would post; a training fee recorded without a price gets the entry that makes
the job's fee its full cost.

`reprice(every=True)` (`ftledger reprice --all`) also corrects priced keys and fees
whose held cost differs from what the current book says, after a price was fixed in
the book. Usage keys whose entries were all posted with the current book
(`price_version`) already hold its cost and are not read. Where the current book has
no price for a key or fee that holds a cost, the held cost is kept (and counted as
still unpriced): a price is never taken away by repricing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from ledger.domain import UsageKey, UsageObservation
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.store.ledger import (
    fee_price,
    held_fees,
    held_sums,
    insert_entries,
    post_fee_correction,
    post_usage,
    reprice_difference,
)
from ledger.store.read import stale_keys, unpriced_keys

CHUNK_KEYS = 20_000


@dataclass
class RepriceResult:
    """Per model: usage keys and training fees repriced now, those still without a
    price, and the pico-USD the corrections added (negative: removed)."""

    repriced: Counter[str] = field(default_factory=Counter)
    still_unpriced: Counter[str] = field(default_factory=Counter)
    fees_repriced: Counter[str] = field(default_factory=Counter)
    fees_still_unpriced: Counter[str] = field(default_factory=Counter)
    change: Counter[str] = field(default_factory=Counter)

    @property
    def models(self) -> list[str]:
        counters = (self.repriced, self.still_unpriced, self.fees_repriced)
        return sorted(set().union(*counters, self.fees_still_unpriced, self.change))


def reprice(
    conn: Connection,
    book: PriceBook,
    *,
    start: int | None = None,
    end: int | None = None,
    now: int | None = None,
    every: bool = False,
) -> RepriceResult:
    """Post the corrections for usage buckets starting and fees of jobs finishing in
    [start, end): of what is unpriced, or with `every` of all that differs from `book`."""
    result = RepriceResult()
    recorded_at = int(time.time()) if now is None else now
    if every:
        _reprice_every_key(conn, book, start, end, recorded_at, result)
    else:
        _reprice_unpriced_keys(conn, book, start, end, recorded_at, result)
    _reprice_fees(conn, book, start, end, recorded_at, every, result)
    return result


def _reprice_unpriced_keys(
    conn: Connection,
    book: PriceBook,
    start: int | None,
    end: int | None,
    now: int,
    result: RepriceResult,
) -> None:
    keys = unpriced_keys(conn, start, end)
    if not keys:
        return
    held = held_sums(conn, set(keys))
    pricer = UsagePricer(book)
    observations: dict[UsageKey, UsageObservation] = {}
    for key in keys:
        _rev, req, inp, cached, out, held_cost, _base, unpriced, base_unpriced = held[key]
        obs = UsageObservation(key, int(req), int(inp), int(cached), int(out))
        cost, base_cost = pricer.price(obs)
        if (unpriced > 0 and cost is not None) or (base_unpriced > 0 and base_cost is not None):
            observations[key] = obs
            result.repriced[key.model] += 1
            if unpriced > 0 and cost is not None:
                result.change[key.model] += cost - (held_cost or 0)
        else:
            result.still_unpriced[key.model] += 1
    post_usage(conn, observations, book, now=now)


def _reprice_every_key(
    conn: Connection,
    book: PriceBook,
    start: int | None,
    end: int | None,
    now: int,
    result: RepriceResult,
) -> None:
    keys = sorted(stale_keys(conn, book.version, start, end), key=lambda k: k.bucket_start)
    pricer = UsagePricer(book)
    for i in range(0, len(keys), CHUNK_KEYS):
        chunk = keys[i : i + CHUNK_KEYS]
        held = held_sums(conn, set(chunk))
        rows = []
        for key in chunk:
            before = held[key]
            obs = UsageObservation(key, *(int(n) for n in before[1:5]))
            cost, base_cost = pricer.price(obs)
            entry = reprice_difference(before, cost, base_cost)
            if cost is None and before[7] > 0:
                result.still_unpriced[key.model] += 1
            if entry is None:
                continue
            rows.append((*key, *entry, book.version, now))
            result.repriced[key.model] += 1
            result.change[key.model] += entry[5] or 0
        insert_entries(conn, rows)


def _reprice_fees(
    conn: Connection,
    book: PriceBook,
    start: int | None,
    end: int | None,
    now: int,
    every: bool,
    result: RepriceResult,
) -> None:
    for held in held_fees(conn, start=start, end=end).values():
        if held.cost_pico is not None and not every:
            continue
        cost, price, _why = fee_price(book, held.base_model, held.finished_at, held.trained_tokens)
        if cost is None:
            if held.cost_pico is None:
                result.fees_still_unpriced[held.model] += 1
            continue  # a held cost is kept
        if cost == held.cost_pico:
            continue
        post_fee_correction(conn, held, held.trained_tokens, cost, price, book.version, now)
        result.fees_repriced[held.model] += 1
        result.change[held.model] += cost - (held.cost_pico or 0)
