"""FinOps FOCUS 1.2 export of a month: usage per (day, model, project, batch, team) and each fee.

A pure function over the read model's rows. The rows are the month as the ledger holds
it now: a usage key's revision entries (including negative differences) are netted into
its row, so a re-export after late data replaces the file rather than appending
corrections (ChargeClass stays empty).

Costs: `ListCost` is list price x quantity, the ledger's cost; `ContractedCost` and
`EffectiveCost` equal it (no negotiated rates or commitments are known to ftledger).
`BilledCost` is what OpenAI bills, from the mirrored Costs API lines: per (day,
project), the billed amount of the usage line items (or of the training line items,
for fees) is spread over that day's and project's rows in proportion to their list
cost, exactly (largest remainder, so the rows sum to the billed amount to the pico-USD).
A row whose (day, project) has no billed line falls back to its list cost, marked
`x_BilledCostSource=list`. Billed lines without any ledger row are not exported
(`ftledger reconcile` shows them).

Usage without a price follows `ledger.spend`: a row's known cost is exported with
`x_Priced=false`, so EffectiveCost sums to the report's total_cost. FOCUS 1.2 does
not allow null cost columns, so a wholly unpriced row carries 0 with `x_Priced=false`.

`Tags` holds `{"team": "<name>"}` from allocation.toml; spend no team takes has `{}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from ledger.allocation import UNALLOCATED, Allocation
from ledger.money import PICO_PER_UNIT, TOKENS_PER_PRICE_UNIT
from ledger.period import SECONDS_PER_DAY, Month, day_start, iso_utc
from ledger.pricebook import PriceBook, tier_of
from ledger.spend import Cost, total
from ledger.store.read import BilledRow, FeeRow, UsageRow

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
RECOMMENDED_COLUMNS = ("ChargeFrequency", "InvoiceId", "ServiceSubcategory", "Tags")
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
    "x_ServiceTier",
    "x_BilledCostSource",
)
COLUMNS = MANDATORY_COLUMNS + RECOMMENDED_COLUMNS + EXTRA_COLUMNS

PROVIDER = "OpenAI"
SERVICE_NAME = "OpenAI API"
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
PRICING_UNIT = "1000000 Tokens"  # FOCUS unit format: "<number> <unit>"; quantities in millions

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
    billed: Sequence[BilledRow] = (),
    allocation: Allocation | None = None,
) -> FocusExport:
    """Every FOCUS row of `month`: usage rows at the (day, model, project, batch, tier,
    team) grain ordered by day, then one row per training fee. `usage` may be finer
    (e.g. per API key, for team rules): rows of one group are summed."""
    teams = allocation or Allocation()
    common = {
        "BillingAccountId": account.id,
        "BillingAccountName": account.name,
        "BillingCurrency": book.currency,
        "BillingPeriodStart": iso_utc(month.start),
        "BillingPeriodEnd": iso_utc(month.end),
        "ChargeCategory": "Usage",
        "ChargeClass": "",
        "InvoiceId": "",  # OpenAI's invoice number is not available from its APIs
        "InvoiceIssuerName": PROVIDER,
        "ProviderName": PROVIDER,
        "PublisherName": PROVIDER,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "ServiceName": SERVICE_NAME,
        "PricingUnit": PRICING_UNIT,
        "ConsumedUnit": "Tokens",
    }
    grouped: dict[tuple[Any, ...], UsageRow] = {}
    team_of: dict[tuple[Any, ...], str] = {}
    for r in usage:
        team = teams.team_of(r.model, r.project, r.api_key)
        key = (r.day, r.model, r.project or "", bool(r.batch), r.tier or "", team)
        held = grouped.get(key)
        grouped[key] = r if held is None else _plus(held, r)
        team_of[key] = team
    ordered = sorted(grouped)
    rows = [_usage_row(book, grouped[k], team_of[k], common) for k in ordered]
    rows += [_fee_row(book, f, teams.team_of(f.model, f.project, None), common) for f in fees]
    _bill(rows, billed, book.currency)
    return FocusExport(rows, total([*(r.cost for r in usage), *(f.cost for f in fees)]))


def _plus(a: UsageRow, b: UsageRow) -> UsageRow:
    return replace(
        a,
        requests=a.requests + b.requests,
        input_tokens=a.input_tokens + b.input_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost=a.cost + b.cost,
        base_cost=a.base_cost + b.base_cost,
    )


def _kind(line_item: str) -> str:
    """Which rows a billed line pays for: training fees or inference usage."""
    return "training" if "training" in line_item.lower() else "usage"


def _bill(rows: list[dict[str, Any]], billed: Sequence[BilledRow], currency: str) -> None:
    """Set BilledCost: each (day, project, kind)'s billed amount spread over its rows in
    proportion to their list cost (largest remainder: the rows sum to the bill exactly);
    rows without a billed line keep their list cost."""
    amounts: dict[tuple[str, str, str], Decimal] = {}
    for line in billed:
        if line.currency.upper() != currency.upper():
            continue
        key = (iso_utc(line.bucket_start), line.project_id, _kind(line.line_item))
        amounts[key] = amounts.get(key, Decimal(0)) + line.value
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        kind = "training" if row["x_ChargeType"] == "training" else "usage"
        key = (row["ChargePeriodStart"], row["SubAccountId"], kind)
        groups.setdefault(key, []).append(row)
    for key, members in groups.items():
        amount = amounts.get(key)
        if amount is None:
            for row in members:
                row["BilledCost"], row["x_BilledCostSource"] = row["ListCost"], "list"
            continue
        bill = int((amount * PICO_PER_UNIT).to_integral_value(ROUND_HALF_EVEN))
        weights = [max(row["ListCost"], 0) for row in members]
        if not any(weights):
            weights = [1] * len(members)
        for row, share in zip(members, _split(bill, weights), strict=True):
            row["BilledCost"], row["x_BilledCostSource"] = share, "costs_api"


def _split(amount: int, weights: list[int]) -> list[int]:
    """`amount` in integer shares proportional to `weights`, summing to it exactly."""
    whole = sum(weights)
    shares = [amount * w // whole for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (amount * weights[i]) % whole, reverse=True
    )
    for i in remainders[: amount - sum(shares)]:
        shares[i] += 1
    return shares


def _costs(cost: Cost) -> dict[str, int]:
    return dict.fromkeys(COST_COLUMNS, cost.known)


def _period(day_ts: int) -> dict[str, str]:
    return {
        "ChargePeriodStart": iso_utc(day_ts),
        "ChargePeriodEnd": iso_utc(day_ts + SECONDS_PER_DAY),
    }


def _tags(team: str) -> str:
    return "{}" if team == UNALLOCATED else json.dumps({"team": team}, ensure_ascii=False)


def _usage_row(book: PriceBook, r: UsageRow, team: str, common: dict[str, str]) -> dict[str, Any]:
    assert r.day is not None
    kind = "batch" if r.batch else "standard"
    tier = tier_of(r.tier)
    tokens = r.input_tokens + r.output_tokens
    note = "" if r.cost.priced else "; no price in the price book for some or all of it"
    on = f" ({tier} tier)" if tier else ""
    return {
        **common,
        **_costs(r.cost),
        "ChargeDescription": f"{kind.capitalize()} inference on {r.model}{on}{note}",
        "ChargeFrequency": "Usage-Based",
        **_period(day_start(r.day)),
        "PricingQuantity": _quantity(tokens),
        "ConsumedQuantity": tokens,
        "ResourceId": r.model,
        "ResourceName": r.model,
        "SubAccountId": r.project or "",
        "Tags": _tags(team),
        "x_BaseModel": book.resolve(r.model).base_model,
        "x_ChargeType": f"inference-{kind}",
        "x_Requests": r.requests,
        "x_InputTokens": r.input_tokens,
        "x_CachedInputTokens": r.cached_tokens,
        "x_OutputTokens": r.output_tokens,
        "x_JobId": "",
        "x_Priced": "true" if r.cost.priced else "false",
        "x_ServiceTier": tier or "standard",
    }


def _fee_row(book: PriceBook, f: FeeRow, team: str, common: dict[str, str]) -> dict[str, Any]:
    note = "" if f.cost.priced else "; no training price known"
    return {
        **common,
        **_costs(f.cost),
        "ChargeDescription": f"Fine-tuning training ({f.method}) job {f.job_id}{note}",
        "ChargeFrequency": "One-Time",
        **_period(day_start(f.day)),
        "PricingQuantity": _quantity(f.trained_tokens),
        "ConsumedQuantity": f.trained_tokens,
        "ResourceId": f.model,
        "ResourceName": f.model,
        "SubAccountId": f.project,
        "Tags": _tags(team),
        "x_BaseModel": book.resolve(f.model).base_model,
        "x_ChargeType": "training",
        "x_Requests": "",
        "x_InputTokens": "",
        "x_CachedInputTokens": "",
        "x_OutputTokens": "",
        "x_JobId": f.job_id,
        "x_Priced": "true" if f.cost.priced else "false",
        "x_ServiceTier": "",
    }
