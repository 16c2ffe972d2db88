"""FinOps FOCUS 1.2 export of a month: usage per (day, model, project, batch) and each fee.

A pure function over the read model's rows. The rows are the month as the ledger holds
it now: a usage key's revision entries (including negative differences) are netted into
its row, so a re-export after late data replaces the file rather than appending
corrections (ChargeClass stays empty). Costs are the ledger's priced amounts; list,
contracted, billed and effective cost are the same number because ftledger prices at
list. Usage without a price follows `ledger.spend`: a row's known cost is exported
with `x_Priced=false`, so EffectiveCost sums to
the report's total_cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.money import TOKENS_PER_PRICE_UNIT
from ledger.period import SECONDS_PER_DAY, Month, day_start, iso_utc
from ledger.pricebook import PriceBook
from ledger.spend import Cost, total
from ledger.store.read import FeeRow, UsageRow

MANDATORY_COLUMNS = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
EXTRA_COLUMNS = (
    "ConsumedQuantity",
    "ConsumedUnit",
    "ResourceId",
    "ResourceName",
    "SubAccountId",
    "x_BaseModel",
    "x_ChargeType",
    "x_Requests",
    "x_InputTokens",
    "x_CachedInputTokens",
    "x_OutputTokens",
    "x_JobId",
    "x_Priced",
)
COLUMNS = MANDATORY_COLUMNS + EXTRA_COLUMNS

PROVIDER = "OpenAI"
SERVICE_NAME = "OpenAI API"
SERVICE_CATEGORY = "AI and Machine Learning"
PRICING_UNIT = "1M Tokens"

COST_COLUMNS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost")


@dataclass(frozen=True)
class Account:
    """Who is billed: FOCUS needs an id and a name for the billing account."""

    id: str = "openai"
    name: str = "OpenAI organization"


@dataclass(frozen=True)
class FocusExport:
    """FOCUS rows with costs as pico-USD, and their known total."""

    rows: list[dict[str, Any]]
    total: Cost


def _quantity(tokens: int) -> str:
    """Tokens in millions, exact (a million divides into at most six decimals)."""
    return str((Decimal(tokens) / TOKENS_PER_PRICE_UNIT).normalize().quantize(Decimal("0.000001")))


def focus_export(
    book: PriceBook,
    month: Month,
    usage: Sequence[UsageRow],
    fees: Sequence[FeeRow],
    account: Account,
) -> FocusExport:
    """Every FOCUS row of `month`: usage rows at the (day, model, project, batch) grain
    ordered by day, then one row per training fee."""
    common = {
        "BillingAccountId": account.id,
        "BillingAccountName": account.name,
        "BillingCurrency": book.currency,
        "BillingPeriodStart": iso_utc(month.start),
        "BillingPeriodEnd": iso_utc(month.end),
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "InvoiceIssuerName": PROVIDER,
        "ProviderName": PROVIDER,
        "PublisherName": PROVIDER,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": SERVICE_NAME,
        "PricingUnit": PRICING_UNIT,
        "ConsumedUnit": "Tokens",
    }
    ordered = sorted(usage, key=lambda r: (r.day, r.model, r.project, r.batch))
    rows = [_usage_row(book, r, common) for r in ordered] + [
        _fee_row(book, f, common) for f in fees
    ]
    return FocusExport(rows, total([*(r.cost for r in usage), *(f.cost for f in fees)]))


def _costs(cost: Cost) -> dict[str, int]:
    return dict.fromkeys(COST_COLUMNS, cost.known)


def _period(day_ts: int) -> dict[str, str]:
    return {
        "ChargePeriodStart": iso_utc(day_ts),
        "ChargePeriodEnd": iso_utc(day_ts + SECONDS_PER_DAY),
    }


def _usage_row(book: PriceBook, r: UsageRow, common: dict[str, str]) -> dict[str, Any]:
    assert r.day is not None
    kind = "batch" if r.batch else "standard"
    tokens = r.input_tokens + r.output_tokens
    note = "" if r.cost.priced else "; no price in the price book for some or all of it"
    return {
        **common,
        **_costs(r.cost),
        "ChargeDescription": f"{kind.capitalize()} inference on {r.model}{note}",
        **_period(day_start(r.day)),
        "PricingQuantity": _quantity(tokens),
        "ConsumedQuantity": tokens,
        "ResourceId": r.model,
        "ResourceName": r.model,
        "SubAccountId": r.project,
        "x_BaseModel": book.resolve(r.model).base_model,
        "x_ChargeType": f"inference-{kind}",
        "x_Requests": r.requests,
        "x_InputTokens": r.input_tokens,
        "x_CachedInputTokens": r.cached_tokens,
        "x_OutputTokens": r.output_tokens,
        "x_JobId": "",
        "x_Priced": "true" if r.cost.priced else "false",
    }


def _fee_row(book: PriceBook, f: FeeRow, common: dict[str, str]) -> dict[str, Any]:
    note = "" if f.cost.priced else "; no training price known"
    return {
        **common,
        **_costs(f.cost),
        "ChargeDescription": f"Fine-tuning training ({f.method}) job {f.job_id}{note}",
        **_period(day_start(f.day)),
        "PricingQuantity": _quantity(f.trained_tokens),
        "ConsumedQuantity": f.trained_tokens,
        "ResourceId": f.model,
        "ResourceName": f.model,
        "SubAccountId": f.project,
        "x_BaseModel": book.resolve(f.model).base_model,
        "x_ChargeType": "training",
        "x_Requests": "",
        "x_InputTokens": "",
        "x_CachedInputTokens": "",
        "x_OutputTokens": "",
        "x_JobId": f.job_id,
        "x_Priced": "true" if f.cost.priced else "false",
    }
