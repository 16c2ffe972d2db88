"""Pricing usage: what a reading cost, and what its base model would have cost.

Pure domain code. Prices are those in force at the bucket's start (UTC) in the key's
service tier (default/auto = standard; flex or priority only by rows of that tier, else
unpriced); the base-model cost compares the same tier. The rates for one (model, day,
batch, tier) are computed once and reused, since a poll or an import prices many
buckets of the same model and day.
"""

from __future__ import annotations

from ledger.domain import UsageObservation
from ledger.period import utc_date
from ledger.pricebook import PriceBook, TokenRates, tier_of


class UsagePricer:
    def __init__(self, book: PriceBook):
        self.book = book
        self._rates: dict[
            tuple[str, int, bool, str], tuple[TokenRates | None, TokenRates | None]
        ] = {}

    def rates(
        self, model: str, ts: int, batch: bool, tier: str = ""
    ) -> tuple[TokenRates | None, TokenRates | None]:
        """(the model's own rates, its base model's rates) at unix time `ts` in `tier`."""
        day = ts // 86400
        cache_key = (model, day, batch, tier)
        found = self._rates.get(cache_key)
        if found is None:
            on = utc_date(ts)
            priced_tier = tier_of(tier)
            own = self.book.price_at(model, on, priced_tier)
            base = self.book.base_price_at(model, on, priced_tier)
            found = (
                self.book.rates(own, batch=batch) if own else None,
                self.book.rates(base, batch=batch) if base else None,
            )
            self._rates[cache_key] = found
        return found

    def price(self, obs: UsageObservation) -> tuple[int | None, int | None]:
        """(cost, base-model cost) in pico-USD; None where the price book has no price.

        TokenRates.cost, inlined: an import prices a million readings, and the method
        calls cost more than the arithmetic.
        """
        key, _, inp, cached, out = obs
        both = self._rates.get((key[3], key[1] // 86400, key[7], key[8]))
        if both is None:
            both = self.rates(key[3], key[1], key[7], key[8])
        own, base = both
        fresh = inp - cached
        return (
            None
            if own is None
            else fresh * own.input + cached * own.cached_input + out * own.output,
            None
            if base is None
            else fresh * base.input + cached * base.cached_input + out * base.output,
        )


MAX_ENTRY = 2**63 - 1  # one entry's cost, pico-USD (BIGINT)


def safe_count(book: PriceBook) -> int:
    """The largest token count that cannot make one usage entry overflow at any price in
    `book`: a reading whose input and output counts are both at most this is safe.

    A cost is at most (input + output) x the highest per-token rate, so callers only
    price the rare reading above this to check it (the CSV import does, per row).
    """
    highest = 1
    for spec in book:
        groups = [spec.prices, spec.fine_tuned_prices]
        groups += [*spec.tier_prices.values(), *spec.tier_fine_tuned_prices.values()]
        for rows in groups:
            for row in rows:
                rates = book.rates(row, batch=False)
                highest = max(highest, rates.input, rates.cached_input, rates.output)
    return MAX_ENTRY // (2 * highest)
