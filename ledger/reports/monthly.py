"""The monthly report: per model (or base model, project, day), usage against base-model cost.

Built from the integer sums of `queries`; money becomes text only at the end, through
`money_text`, so every renderer prints the same digits. A group whose entries include
one without a price has no usage cost (None), is `priced: false`, and its model is
listed in `unpriced_models`; totals add the costs that are known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy.engine import Connection

from ledger.money import DISPLAY_PLACES, display, pico_display
from ledger.period import Month, day_of
from ledger.pricebook import PriceBook
from ledger.reports.queries import Dimension, FeeSums, UsageSums, fee_sums, usage_sums

GroupBy = Literal["model", "base-model", "project", "day"]
GROUP_BY_CHOICES: tuple[str, ...] = ("model", "base-model", "project", "day")

MONEY_FIELDS = ("usage_cost", "base_model_cost", "premium", "training_cost", "total_cost")
NUMERIC_FIELDS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "usage_cost",
    "base_model_cost",
    "premium",
    "premium_pct",
    "training_tokens",
    "training_cost",
    "total_cost",
)
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model", "base_model", "fine_tuned"),
    "base-model": ("base_model",),
    "project": ("project",),
    "day": ("day",),
}
_DIMENSION: dict[str, Dimension] = {
    "model": "none",
    "base-model": "none",
    "project": "project",
    "day": "day",
}


def money_text(pico: int | None) -> str | None:
    """Exact decimal text: six decimals, more only where the amount needs them (up to 12)."""
    if pico is None:
        return None
    places = DISPLAY_PLACES
    while places < 12 and pico % 10 ** (12 - places):
        places += 1
    return f"{Decimal(str(pico_display(pico, places))):f}"  # plain digits, never 1E-12


def percent_text(part: int | None, whole: int | None) -> str | None:
    """part / whole as a percentage with two decimals; None when undefined."""
    if part is None or not whole:
        return None
    return display(Decimal(part) * 100 / Decimal(whole), 2)


@dataclass
class Tally:
    """Integer sums of one report row.

    Costs are the sums over models whose cost is known for the whole month; a flag
    records that a model without one contributed tokens. The premium is summed over
    models whose own and base costs are both known, so its percentage compares like
    with like.
    """

    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    usage_pico: int = 0
    base_pico: int = 0
    premium_pico: int = 0
    premium_base_pico: int = 0
    training_tokens: int = 0
    training_pico: int = 0
    usage_unknown: bool = False
    base_unknown: bool = False
    training_unknown: bool = False

    def add_usage(self, s: UsageSums, *, usage_known: bool, base_known: bool) -> None:
        self.requests += s.requests
        self.input_tokens += s.input_tokens
        self.cached_tokens += s.cached_tokens
        self.output_tokens += s.output_tokens
        self.usage_unknown |= not usage_known
        self.base_unknown |= not base_known
        if usage_known:
            self.usage_pico += s.cost_pico or 0
        if base_known:
            self.base_pico += s.base_cost_pico or 0
        if usage_known and base_known:
            self.premium_pico += (s.cost_pico or 0) - (s.base_cost_pico or 0)
            self.premium_base_pico += s.base_cost_pico or 0

    def add_fees(self, s: FeeSums, *, known: bool) -> None:
        self.training_tokens += s.trained_tokens
        self.training_unknown |= not known
        if known:
            self.training_pico += s.cost_pico or 0

    @property
    def priced(self) -> bool:
        return not (self.usage_unknown or self.training_unknown)

    @property
    def total_pico(self) -> int:
        return self.usage_pico + self.training_pico

    def numbers(self, *, null_unknown: bool) -> dict[str, Any]:
        """The row's numbers as text; with `null_unknown`, an unknown cost shows as None."""
        usage = None if null_unknown and self.usage_unknown else self.usage_pico
        base = None if null_unknown and self.base_unknown else self.base_pico
        training = None if null_unknown and self.training_unknown else self.training_pico
        premium = None if usage is None or base is None else self.premium_pico
        total = None if usage is None or training is None else self.total_pico
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
            "usage_cost": money_text(usage),
            "base_model_cost": money_text(base),
            "premium": money_text(premium),
            "premium_pct": None
            if premium is None
            else percent_text(self.premium_pico, self.premium_base_pico),
            "training_tokens": self.training_tokens,
            "training_cost": money_text(training),
            "total_cost": money_text(total),
        }

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, (mine or theirs) if isinstance(mine, bool) else mine + theirs)


@dataclass(frozen=True)
class MonthlyReport:
    month: Month
    by: str
    currency: str
    key_fields: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    total_pico: int
    unpriced_models: list[str]
    previous_month: Month
    previous_total_pico: int

    @property
    def columns(self) -> list[str]:
        return [*self.key_fields, "priced", *NUMERIC_FIELDS]

    @property
    def change_pico(self) -> int:
        return self.total_pico - self.previous_total_pico

    def previous(self) -> dict[str, Any]:
        """The previous month's total and the change, as the table and Markdown show them."""
        return {
            "month": str(self.previous_month),
            "total_cost": money_text(self.previous_total_pico),
            "change": money_text(self.change_pico),
            "change_pct": percent_text(self.change_pico, self.previous_total_pico),
        }

    def document(self) -> dict[str, Any]:
        """The JSON document: month, currency, unpriced models, rows and totals."""
        return {
            "month": str(self.month),
            "currency": self.currency,
            "group_by": self.by,
            "unpriced_models": self.unpriced_models,
            "rows": self.rows,
            "totals": self.totals,
            "previous_month": self.previous(),
        }


def _group_key(by: str, book: PriceBook, model: str, dim: Any) -> tuple[Any, ...]:
    if by == "model":
        resolved = book.resolve(model)
        return (model, resolved.base_model, resolved.fine_tuned)
    if by == "base-model":
        return (book.resolve(model).base_model,)
    if by == "day":
        return (day_of(int(dim)).isoformat(),)
    return (dim,)


def _tallies(
    conn: Connection, book: PriceBook, month: Month, by: str
) -> tuple[dict[tuple[Any, ...], Tally], set[str]]:
    """Rows' tallies, and the models with an entry or fee of the month that has no cost.

    Whether a model's cost is known is decided over the whole month, so a model counts
    the same way in every grouping and the totals never depend on `by`.
    """
    dim = _DIMENSION[by]
    usage = usage_sums(conn, month.start, month.end, dim)
    fees = fee_sums(conn, month.start, month.end, dim)
    no_cost = {m for (m, _), s in usage.items() if s.cost_pico is None}
    no_base = {m for (m, _), s in usage.items() if s.base_cost_pico is None}
    no_fee = {m for (m, _), s in fees.items() if s.cost_pico is None}
    tallies: dict[tuple[Any, ...], Tally] = {}
    for (model, value), sums in usage.items():
        tallies.setdefault(_group_key(by, book, model, value), Tally()).add_usage(
            sums, usage_known=model not in no_cost, base_known=model not in no_base
        )
    for (model, value), fee in fees.items():
        tallies.setdefault(_group_key(by, book, model, value), Tally()).add_fees(
            fee, known=model not in no_fee
        )
    return tallies, no_cost | no_fee


def _total(tallies: Iterable[Tally]) -> Tally:
    totals = Tally()
    for tally in tallies:
        totals.add(tally)
    return totals


def monthly_report(
    conn: Connection, book: PriceBook, month: Month, by: str = "model"
) -> MonthlyReport:
    """The report of `month` grouped `by` model, base-model, project or day."""
    if by not in _KEY_FIELDS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY_CHOICES)}")
    tallies, unpriced = _tallies(conn, book, month, by)
    key_fields = _KEY_FIELDS[by]
    rows = [
        {
            **dict(zip(key_fields, key, strict=True)),
            "priced": tally.priced,
            **tally.numbers(null_unknown=by == "model"),
        }
        for key, tally in sorted(tallies.items(), key=lambda kv: tuple(str(v) for v in kv[0]))
    ]
    totals = _total(tallies.values())
    previous = month.previous()
    previous_totals = _total(_tallies(conn, book, previous, "model")[0].values())
    return MonthlyReport(
        month=month,
        by=by,
        currency=book.currency,
        key_fields=key_fields,
        rows=rows,
        totals=totals.numbers(null_unknown=False),
        total_pico=totals.total_pico,
        unpriced_models=sorted(unpriced),
        previous_month=previous,
        previous_total_pico=previous_totals.total_pico,
    )


def daily_cost_by_model(conn: Connection, month: Month) -> dict[str, dict[str, int]]:
    """Usage + training cost per UTC day (ISO date) and model, for the daily chart.

    Models whose cost is unknown for the month are left out, as in the totals, so the
    bars add up to the report's total.
    """
    days: dict[str, dict[str, int]] = {d.isoformat(): {} for d in month.days()}
    for source in (
        usage_sums(conn, month.start, month.end, "day"),
        fee_sums(conn, month.start, month.end, "day"),
    ):
        unknown = {model for (model, _), sums in source.items() if sums.cost_pico is None}
        for (model, day_number), sums in source.items():
            if model in unknown:
                continue
            per_model = days.setdefault(day_of(int(day_number)).isoformat(), {})
            per_model[model] = per_model.get(model, 0) + (sums.cost_pico or 0)
    return days
