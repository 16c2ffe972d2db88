"""The simulated organisation's bill: list prices and how its true costs are made.

This is what reconciliation should find:
- inference at the list prices in `LIST_PRICES` (per 1M tokens); batch and flex at 50%;
  the unknown model `mystery-model-2099` is billed at a private price;
- training: trained tokens x training price on the day the job finished, except that
  gpt-4o-mini training enjoys 2M free training tokens per UTC day (the 2024 promotion);
  reinforcement jobs bill $100 per training hour, prorated by the second, not tokens;
  failed and cancelled jobs bill nothing (the organisation passes only succeeded jobs).

Line items: "<line model>, input" / ", cached input" / ", output" with " (batch)" or
" (flex)" appended, and "<line model>, training"; the line model of a fine-tuned model
is "ft-" + its dated base (e.g. "ft-gpt-4o-mini-2024-07-18").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from ledger.sandbox.cast import ALIASES, HOUR, PROJECTS, STREAMS, UNKNOWN_MODEL, Event, Job

EXACT_PRECISION = 100  # Decimal digits for sums: the default 28 would round

CostAtom = tuple[str, str | None, str, Decimal]  # (project_id, api_key_id, line_item, amount)


@dataclass(frozen=True)
class Rates:
    """USD per 1M tokens; training per 1M trained tokens (or per hour when hourly)."""

    input: str
    cached: str | None
    output: str
    training: str | None = None
    hourly: bool = False


LIST_PRICES: dict[str, Rates] = {
    "gpt-4o-mini-2024-07-18": Rates("0.15", "0.075", "0.60"),
    "gpt-4.1-mini-2025-04-14": Rates("0.40", "0.10", "1.60"),
    "o4-mini-2025-04-16": Rates("1.10", "0.275", "4.40"),
    UNKNOWN_MODEL: Rates("1.10", None, "3.30"),
    "ft-gpt-4o-mini-2024-07-18": Rates("0.30", "0.15", "1.20", "3.00"),
    "ft-gpt-4.1-2025-04-14": Rates("3.00", "0.75", "12.00", "25.00"),
    "ft-gpt-4.1-mini-2025-04-14": Rates("0.80", "0.20", "3.20", "5.00"),
    "ft-gpt-4.1-nano-2025-04-14": Rates("0.20", "0.05", "0.80", "1.50"),
    "ft-gpt-3.5-turbo-0125": Rates("3.00", None, "6.00", "8.00"),
    "ft-o4-mini-2025-04-16": Rates("4.00", "1.00", "16.00", "100.00", hourly=True),
}
PROMO_FREE_TRAINING_TOKENS = {"ft-gpt-4o-mini-2024-07-18": 2_000_000}  # per UTC day
DISCOUNTED_TIERS = {"flex"}


def line_model(model: str) -> str:
    """The model part of a Costs line item: dated base, "ft-" for fine-tuned models."""
    if not model.startswith("ft:"):
        return ALIASES.get(model, model)
    base = model.split(":")[1]
    return "ft-" + ALIASES.get(base, base)


def inference_costs(events: Iterable[Event]) -> list[CostAtom]:
    """Inference costs of some events at list price, per project, key and line item."""
    sums: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    million = Decimal(1_000_000)
    for event in events:
        stream = STREAMS[event.stream]
        lm = line_model(stream.model)
        rates = LIST_PRICES[lm]
        factor = Decimal("0.5") if stream.batch or stream.service_tier in DISCOUNTED_TIERS else 1
        mark = " (batch)" if stream.batch else f" ({stream.service_tier})" if factor != 1 else ""
        parts = [
            ("input", event.input_tokens - event.cached_tokens, rates.input),
            ("cached input", event.cached_tokens, rates.cached or rates.input),
            ("output", event.output_tokens, rates.output),
        ]
        for label, tokens, price in parts:
            if tokens:
                key = (stream.project_id, stream.api_key_id, f"{lm}, {label}{mark}")
                sums[key] += tokens * Decimal(price) * factor / million
    return [(p, k, li, v) for (p, k, li), v in sums.items()]


def _training_amount(job: Job, lm: str, free: dict[str, int]) -> Decimal:
    rates = LIST_PRICES[lm]
    price = Decimal(rates.training or "0")
    if rates.hourly:
        return price * job.training_seconds / HOUR
    tokens = job.trained_tokens or 0
    waived = min(tokens, free.get(lm, 0))
    if lm in free:
        free[lm] -= waived
    return (tokens - waived) * price / Decimal(1_000_000)


def training_costs(succeeded: Iterable[Job]) -> list[CostAtom]:
    """Training fees of the jobs that succeeded on one UTC day, free tokens first come."""
    free = dict(PROMO_FREE_TRAINING_TOKENS)
    out: list[CostAtom] = []
    for job in sorted(succeeded, key=lambda j: (j.finished_at or 0, j.id)):
        lm = "ft-" + ALIASES.get(job.model, job.model)
        amount = _training_amount(job, lm, free)
        out.append((PROJECTS[job.project], None, f"{lm}, training", amount))
    return out
