"""The monthly report: per model (or base model, project, day), usage against base-model cost.

A pure function over the read model's rows. Rows hold numbers (integer pico-USD, None
for an amount that is wholly unknown); renderers turn them into text. Usage without a
price follows `ledger.spend`: its known cost counts, the row says `priced: false` and
the model is listed, so the totals are the same whatever the grouping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.allocation import Allocation
from ledger.period import Month
from ledger.pricebook import PriceBook
from ledger.spend import Cost, comparable
from ledger.store.read import FeeRow, UsageRow

GROUP_BY_CHOICES: tuple[str, ...] = ("model", "base-model", "project", "day", "team")
NO_PROJECT = "(no project)"  # usage or fees without an OpenAI project id
# The read model's grain each grouping needs, beyond the model.
GRAIN: dict[str, tuple[str, ...]] = {
    "model": (),
    "base-model": (),
    "project": ("project",),
    "day": ("day",),
    "team": ("project", "api_key"),  # what allocation.toml's rules match on, with the model
}
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
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model", "base_model", "fine_tuned"),
    "base-model": ("base_model",),
    "project": ("project",),
    "day": ("day",),
    "team": ("team",),
}


@dataclass
class Tally:
    """Sums of one report row. The premium adds only models comparable over the month
    (priced on both sides), so its percentage compares like with like."""

    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    usage: Cost = field(default_factory=Cost)
    base: Cost = field(default_factory=Cost)
    training: Cost = field(default_factory=Cost)
    training_tokens: int = 0
    premium_pico: int = 0
    premium_base_pico: int = 0
    has_comparable: bool = False

    def add_usage(self, row: UsageRow, *, is_comparable: bool) -> None:
        self.requests += row.requests
        self.input_tokens += row.input_tokens
        self.cached_tokens += row.cached_tokens
        self.output_tokens += row.output_tokens
        self.usage += row.cost
        self.base += row.base_cost
        if is_comparable:
            self.has_comparable = True
            self.premium_pico += row.cost.known - row.base_cost.known
            self.premium_base_pico += row.base_cost.known

    def add_fee(self, fee: FeeRow) -> None:
        self.training_tokens += fee.trained_tokens
        self.training += fee.cost

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, (mine or theirs) if isinstance(mine, bool) else mine + theirs)

    @property
    def total(self) -> Cost:
        return self.usage + self.training

    @property
    def priced(self) -> bool:
        return self.usage.priced and self.training.priced

    def numbers(self, *, is_total: bool = False) -> dict[str, Any]:
        """The row's numbers: counts, pico-USD amounts. A row's amount is None when its
        usage is wholly unpriced; a total is always the known sum (`ledger.spend`)."""

        def amount(cost: Cost) -> int | None:
            return cost.known if is_total else cost.amount

        premium = self.premium_pico if self.has_comparable else None
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
            "usage_cost": amount(self.usage),
            "base_model_cost": amount(self.base),
            "premium": premium,
            "premium_pct": None if premium is None else ratio(premium, self.premium_base_pico),
            "training_tokens": self.training_tokens,
            "training_cost": amount(self.training),
            "total_cost": amount(self.total),
        }


def ratio(part: int, whole: int) -> tuple[int, int] | None:
    """A percentage kept exact as (part, whole) for the renderer; None when undefined."""
    return (part, whole) if whole else None


@dataclass(frozen=True)
class Previous:
    """The comparison line: the previous month, whole or over the same days."""

    month: Month
    total: Cost
    through_day: int | None  # the same days 1..N when the report's month is in progress
    has_data: bool


@dataclass(frozen=True)
class MonthlyReport:
    month: Month
    by: str
    currency: str
    rows: list[dict[str, Any]]  # key fields, priced, then NUMERIC_FIELDS as numbers
    totals: dict[str, Any]
    total: Cost
    unpriced_models: list[str]
    previous: Previous
    has_data: bool  # the month holds usage or fees
    data_start: date | None  # the ledger's first day with data

    @property
    def key_fields(self) -> tuple[str, ...]:
        return KEY_FIELDS[self.by]

    @property
    def columns(self) -> list[str]:
        return [*self.key_fields, "priced", *NUMERIC_FIELDS]


def _group_key(
    by: str, book: PriceBook, model: str, row: UsageRow | FeeRow, allocation: Allocation
) -> tuple[Any, ...]:
    if by == "team":
        api_key = row.api_key if isinstance(row, UsageRow) else None
        return (allocation.team_of(model, row.project, api_key),)
    if by == "model":
        resolved = book.resolve(model)
        return (model, resolved.base_model, resolved.fine_tuned)
    if by == "base-model":
        return (book.resolve(model).base_model,)
    if by == "day":
        assert row.day is not None
        return (row.day.isoformat(),)
    return (row.project or NO_PROJECT,)


def comparable_models(usage: Iterable[UsageRow]) -> set[str]:
    """Models whose usage in the rows is priced on both sides (premium may be stated)."""
    per_model: dict[str, tuple[Cost, Cost]] = {}
    for row in usage:
        cost, base = per_model.get(row.model, (Cost(), Cost()))
        per_model[row.model] = (cost + row.cost, base + row.base_cost)
    return {m for m, (cost, base) in per_model.items() if comparable(cost, base)}


def unpriced_models(usage: Iterable[UsageRow], fees: Iterable[FeeRow]) -> list[str]:
    """Models with usage or a training fee held without a price."""
    models = {r.model for r in usage if not r.cost.priced}
    return sorted(models | {f.model for f in fees if not f.cost.priced})


def tallies(
    book: PriceBook,
    by: str,
    usage: Sequence[UsageRow],
    fees: Sequence[FeeRow],
    allocation: Allocation | None = None,
) -> dict[tuple[Any, ...], Tally]:
    """One tally per row key; comparability is decided per model over all the rows.
    Each row goes to exactly one key, so the tallies add up to the total."""
    ok = comparable_models(usage)
    teams = allocation or Allocation()
    result: dict[tuple[Any, ...], Tally] = {}
    for row in usage:
        key = _group_key(by, book, row.model, row, teams)
        result.setdefault(key, Tally()).add_usage(row, is_comparable=row.model in ok)
    for fee in fees:
        result.setdefault(_group_key(by, book, fee.model, fee, teams), Tally()).add_fee(fee)
    return result


def total_tally(parts: Iterable[Tally]) -> Tally:
    result = Tally()
    for part in parts:
        result.add(part)
    return result


def monthly_report(
    book: PriceBook,
    month: Month,
    by: str,
    usage: Sequence[UsageRow],
    fees: Sequence[FeeRow],
    previous: Previous,
    data_start: date | None,
    allocation: Allocation | None = None,
) -> MonthlyReport:
    """The report of `month` grouped `by`, from rows at the grain GRAIN[by] requires
    (`by="team"` splits by `allocation`'s teams, "(unallocated)" its own row)."""
    if by not in KEY_FIELDS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUP_BY_CHOICES)}")
    grouped = tallies(book, by, usage, fees, allocation)
    key_fields = KEY_FIELDS[by]
    rows = [
        {**dict(zip(key_fields, key, strict=True)), "priced": t.priced, **t.numbers()}
        for key, t in sorted(grouped.items(), key=lambda kv: tuple(str(v) for v in kv[0]))
    ]
    totals = total_tally(grouped.values())
    return MonthlyReport(
        month=month,
        by=by,
        currency=book.currency,
        rows=rows,
        totals=totals.numbers(is_total=True),
        total=totals.total,
        unpriced_models=unpriced_models(usage, fees),
        previous=previous,
        has_data=bool(usage or fees),
        data_start=data_start,
    )


def daily_cost_by_model(
    month: Month, usage: Sequence[UsageRow], fees: Sequence[FeeRow]
) -> dict[str, dict[str, int]]:
    """Known cost per ISO day and model for the daily chart; training fees are one
    series of their own (TRAINING_SERIES), so a fee never reads as an inference spike.

    Known costs only, as in the totals, so the bars add up to the report's total.
    """
    days: dict[str, dict[str, int]] = {d.isoformat(): {} for d in month.days()}
    rows: list[tuple[str, UsageRow | FeeRow]] = [
        *((r.model, r) for r in usage),
        *((TRAINING_SERIES, f) for f in fees),
    ]
    for series, row in rows:
        assert row.day is not None
        per_series = days[row.day.isoformat()]
        per_series[series] = per_series.get(series, 0) + row.cost.known
    return days


TRAINING_SERIES = "training fees"
