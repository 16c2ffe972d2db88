"""FinOps FOCUS 1.2 export of a month: usage per (day, model, project, batch) and each fee.

The rows are the month as the ledger holds it now: a usage key's revision entries
(including negative differences) are netted into its row, so a re-export after late data
replaces the file rather than appending corrections (ChargeClass stays empty). Costs are
the ledger's priced amounts; list, contracted, billed and effective cost are the same
number because ftledger prices at list. A model without a price for the month is
exported with zero cost and says so, exactly as the report leaves it out of its totals,
so EffectiveCost sums to the report's total_cost.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.money import TOKENS_PER_PRICE_UNIT
from ledger.period import SECONDS_PER_DAY, Month, iso_utc
from ledger.pricebook import PriceBook
from ledger.reports.monthly import money_text
from ledger.store.tables import TrainingFee, UsageEntry, core

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

_usage = core(UsageEntry)
_fees = core(TrainingFee)


@dataclass(frozen=True)
class Account:
    """Who is billed: FOCUS needs an id and a name for the billing account."""

    id: str = "openai"
    name: str = "OpenAI organization"


def _quantity(tokens: int) -> str:
    """Tokens in millions, exact (a million divides into at most six decimals)."""
    return str((Decimal(tokens) / TOKENS_PER_PRICE_UNIT).normalize().quantize(Decimal("0.000001")))


def focus_rows(
    conn: Connection, book: PriceBook, month: Month, account: Account | None = None
) -> list[dict[str, Any]]:
    """Every FOCUS row of `month`, usage first (by day, model, project, batch), then fees."""
    account = account or Account()
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
    return [*_usage_rows(conn, book, month, common), *_fee_rows(conn, book, month, common)]


def _costs(pico: int) -> dict[str, str | None]:
    text = money_text(pico)
    return {"BilledCost": text, "ContractedCost": text, "EffectiveCost": text, "ListCost": text}


def _usage_rows(
    conn: Connection, book: PriceBook, month: Month, common: dict[str, str]
) -> list[dict[str, Any]]:
    day = (_usage.c.bucket_start // SECONDS_PER_DAY).label("day")
    nulls = func.sum(_usage.c.unpriced)  # above 0 while a key is held unpriced
    query = (
        select(
            day,
            _usage.c.model,
            _usage.c.project_id,
            _usage.c.batch,
            func.sum(_usage.c.requests),
            func.sum(_usage.c.input_tokens),
            func.sum(_usage.c.cached_tokens),
            func.sum(_usage.c.output_tokens),
            func.sum(_usage.c.cost_pico),
            nulls,
        )
        .where(_usage.c.bucket_start >= month.start, _usage.c.bucket_start < month.end)
        .group_by(day, _usage.c.model, _usage.c.project_id, _usage.c.batch)
        .order_by(day, _usage.c.model, _usage.c.project_id, _usage.c.batch)
    )
    groups = list(conn.execute(query))
    unpriced = {g[1] for g in groups if g[9]}
    rows = []
    for day_n, model, project, batch, req, inp, cached, out, cost, _ in groups:
        start = int(day_n) * SECONDS_PER_DAY
        priced = model not in unpriced
        kind = "batch" if batch else "standard"
        tokens = int(inp) + int(out)
        note = "" if priced else "; no price in the price book, cost not counted"
        rows.append(
            {
                **common,
                **_costs(int(cost or 0) if priced else 0),
                "ChargeDescription": f"{kind.capitalize()} inference on {model}{note}",
                "ChargePeriodStart": iso_utc(start),
                "ChargePeriodEnd": iso_utc(start + SECONDS_PER_DAY),
                "PricingQuantity": _quantity(tokens),
                "ConsumedQuantity": tokens,
                "ResourceId": model,
                "ResourceName": model,
                "SubAccountId": project,
                "x_BaseModel": book.resolve(model).base_model,
                "x_ChargeType": f"inference-{kind}",
                "x_Requests": int(req),
                "x_InputTokens": int(inp),
                "x_CachedInputTokens": int(cached),
                "x_OutputTokens": int(out),
                "x_JobId": "",
                "x_Priced": "true" if priced else "false",
            }
        )
    return rows


def _fee_rows(
    conn: Connection, book: PriceBook, month: Month, common: dict[str, str]
) -> list[dict[str, Any]]:
    query = (
        select(
            _fees.c.job_id,
            _fees.c.model,
            _fees.c.project,
            _fees.c.method,
            _fees.c.trained_tokens,
            _fees.c.cost_pico,
            _fees.c.finished_at,
        )
        .where(_fees.c.finished_at >= month.start, _fees.c.finished_at < month.end)
        .order_by(_fees.c.finished_at, _fees.c.job_id)
    )
    fees = list(conn.execute(query))
    unpriced = {f.model for f in fees if f.cost_pico is None}
    rows = []
    for f in fees:
        start = int(f.finished_at) // SECONDS_PER_DAY * SECONDS_PER_DAY
        priced = f.model not in unpriced
        note = "" if priced else "; no training cost known, not counted"
        rows.append(
            {
                **common,
                **_costs(int(f.cost_pico or 0) if priced else 0),
                "ChargeDescription": f"Fine-tuning training ({f.method}) job {f.job_id}{note}",
                "ChargePeriodStart": iso_utc(start),
                "ChargePeriodEnd": iso_utc(start + SECONDS_PER_DAY),
                "PricingQuantity": _quantity(int(f.trained_tokens)),
                "ConsumedQuantity": int(f.trained_tokens),
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
                "x_Priced": "true" if priced else "false",
            }
        )
    return rows


def focus_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
