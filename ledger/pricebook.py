"""The price book: effective-dated prices per base model, and model-name resolution.

Loaded from prices.toml, validated as a whole (every problem is collected with its
file and key path), then queried by model name and time: the price row in force at
a moment is found by bisecting the rows' effective dates (UTC).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.errors import PriceBookError, PricingError, Problem
from ledger.money import D, per_token_pico
from ledger.tomlfile import read_toml

KNOWN_ENCODINGS = frozenset({"cl100k_base", "o200k_base"})
FINE_TUNED_PREFIX = "ft:"
CHECKPOINT_MARK = "ckpt-step-"

# Per 1M tokens (or per training hour); far above any real price, far below an overflow.
MAX_PRICE = Decimal(1_000_000)
_MODEL_KEYS = {"name", "aliases", "encoding", "training_context", "price", "fine_tuned_price"}
_PRICE_KEYS = {"effective", "tier", "input", "cached_input", "output"}
_FT_PRICE_KEYS = _PRICE_KEYS | {"training", "training_hour"}
# Service tiers as the Usage API reports them. These mean standard processing: rows
# without `tier` price them. Any other tier is priced only by rows of that tier.
STANDARD_TIERS = frozenset({"", "default", "auto"})
PRICED_TIERS = ("flex", "priority")


def tier_of(service_tier: str | None) -> str:
    """The price-book tier of a usage key's service tier: "" for standard."""
    tier = (service_tier or "").strip().lower()
    return "" if tier in STANDARD_TIERS else tier


_TOP_KEYS = {"currency", "batch_discount", "model"}


@dataclass(frozen=True)
class PriceRow:
    """Prices per 1M tokens (training_hour: per hour) in force from `effective` on."""

    effective: date
    input: Decimal
    cached_input: Decimal | None
    output: Decimal
    training: Decimal | None = None
    training_hour: Decimal | None = None
    tier: str = ""  # "" = standard; else the service tier this row prices

    def as_strings(self) -> dict[str, str]:
        fields = {
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "training": self.training,
            "training_hour": self.training_hour,
        }
        return {k: str(v) for k, v in fields.items() if v is not None}


@dataclass(frozen=True)
class TokenRates:
    """Integer pico-USD per token, ready for exact integer arithmetic on hot paths."""

    input: int
    cached_input: int
    output: int

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> int:
        """Cost of a usage reading; input_tokens includes the cached ones, as OpenAI counts."""
        return (
            (input_tokens - cached_tokens) * self.input
            + cached_tokens * self.cached_input
            + output_tokens * self.output
        )


@dataclass(frozen=True)
class ModelSpec:
    name: str
    aliases: tuple[str, ...]
    encoding: str
    training_context: int | None
    prices: tuple[PriceRow, ...]  # standard tier
    fine_tuned_prices: tuple[PriceRow, ...]  # standard tier
    # Rows of other service tiers, per tier, each in date order (base, fine-tuned).
    tier_prices: dict[str, tuple[PriceRow, ...]] = field(default_factory=dict)
    tier_fine_tuned_prices: dict[str, tuple[PriceRow, ...]] = field(default_factory=dict)

    def rows(self, *, fine_tuned: bool, tier: str = "") -> tuple[PriceRow, ...]:
        """The rows pricing one tier ("" standard): never another tier's rows."""
        tier = tier_of(tier)
        if not tier:
            return self.fine_tuned_prices if fine_tuned else self.prices
        tiers = self.tier_fine_tuned_prices if fine_tuned else self.tier_prices
        return tiers.get(tier, ())

    @property
    def tiers(self) -> tuple[str, ...]:
        """The non-standard tiers with any row, in PRICED_TIERS order."""
        have = set(self.tier_prices) | set(self.tier_fine_tuned_prices)
        return tuple(t for t in PRICED_TIERS if t in have)


@dataclass(frozen=True)
class ResolvedModel:
    """A model name as OpenAI reports it, understood."""

    name: str
    base_model: str  # the dated base snapshot when known, else the base as written
    fine_tuned: bool
    checkpoint: bool
    spec: ModelSpec | None


def parse_model_name(name: str) -> tuple[str, bool, bool]:
    """(base as written, fine_tuned, checkpoint) for a base or `ft:` model name."""
    if not name.startswith(FINE_TUNED_PREFIX):
        return name, False, False
    parts = name.split(":")
    base = parts[1] if len(parts) > 1 else ""
    checkpoint = len(parts) > 5 and parts[5].startswith(CHECKPOINT_MARK)
    return base, True, checkpoint


def _row_at(rows: tuple[PriceRow, ...], on: date) -> PriceRow | None:
    index = bisect.bisect_right([r.effective for r in rows], on) - 1
    return rows[index] if index >= 0 else None


def _as_date(at: date | datetime) -> date:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("naive datetime: ftledger works in UTC, pass an aware datetime")
        return at.astimezone(UTC).date()
    return at


class PriceBook:
    def __init__(
        self,
        models: list[ModelSpec],
        *,
        currency: str = "USD",
        batch_discount: Decimal = Decimal("0.5"),
        source: str = "prices.toml",
        version: str = "",
    ):
        self.currency = currency
        self.batch_discount = batch_discount
        self.source = source
        self.version = version
        self.models = {m.name: m for m in models}
        self._names = {m.name: m for m in models}
        for m in models:
            for alias in m.aliases:
                self._names[alias] = m

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())

    def resolve(self, name: str) -> ResolvedModel:
        base, fine_tuned, checkpoint = parse_model_name(name)
        spec = self._names.get(base)
        return ResolvedModel(
            name=name,
            base_model=spec.name if spec else base,
            fine_tuned=fine_tuned,
            checkpoint=checkpoint,
            spec=spec,
        )

    def price_at(self, name: str, at: date | datetime, tier: str = "") -> PriceRow | None:
        """The row that prices `name` itself at `at` (fine-tuned prices for ft: names) in
        service tier `tier` (default/auto/"" = standard). A tier without a row of its own
        has no price: it is never priced at another tier's rate."""
        model = self.resolve(name)
        if model.spec is None:
            return None
        return _row_at(model.spec.rows(fine_tuned=model.fine_tuned, tier=tier), _as_date(at))

    def base_price_at(self, name: str, at: date | datetime, tier: str = "") -> PriceRow | None:
        """The base model's row at `at` in the same tier: what the same tokens would cost
        without fine-tuning."""
        model = self.resolve(name)
        if model.spec is None:
            return None
        return _row_at(model.spec.rows(fine_tuned=False, tier=tier), _as_date(at))

    def rates(self, row: PriceRow, *, batch: bool) -> TokenRates:
        """Per-token integer rates; cached input without its own price costs full input."""
        factor = self.batch_discount if batch else Decimal(1)
        cached = row.cached_input if row.cached_input is not None else row.input
        return TokenRates(
            input=per_token_pico(row.input * factor),
            cached_input=per_token_pico(cached * factor),
            output=per_token_pico(row.output * factor),
        )


# --- loading and validation -------------------------------------------------------


def load_pricebook(path: Path) -> PriceBook:
    """Read and validate prices.toml; raise PriceBookError listing every problem."""
    raw, data = read_toml(path, PriceBookError)
    version = hashlib.sha256(raw).hexdigest()[:16]
    return parse_pricebook(data, source=str(path), version=version)


def parse_pricebook(data: dict[str, Any], *, source: str, version: str = "") -> PriceBook:
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(f"{source}: {key}" if key else source, message))

    for key in sorted(set(data) - _TOP_KEYS):
        problem(key, "unknown key")
    currency = data.get("currency", "USD")
    if not isinstance(currency, str) or not currency.isalpha() or len(currency) != 3:
        problem("currency", f"{currency!r} is not a three-letter currency code")
    discount = _decimal(data.get("batch_discount", "0.5"), "batch_discount", problem)
    if discount is not None and not (0 < discount <= 1):
        problem("batch_discount", f"{discount} must be greater than 0 and at most 1")
        discount = None

    raw_models = data.get("model", [])
    if not isinstance(raw_models, list):
        problem("model", "must be an array of tables ([[model]])")
        raw_models = []
    models: list[ModelSpec] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_models):
        key = f"model[{i}]"
        if not isinstance(raw, dict):
            problem(key, "must be a table")
            continue
        _check_unique_names(raw, key, seen, problem)
        spec = _parse_model(raw, key, discount or Decimal(1), problem)
        if spec is not None:
            models.append(spec)

    if problems:
        raise PriceBookError(problems)
    return PriceBook(
        models,
        currency=str(currency),
        batch_discount=discount or Decimal("0.5"),
        source=source,
        version=version,
    )


def _check_unique_names(raw: dict[str, Any], key: str, seen: dict[str, str], problem: Any) -> None:
    """A name or alias may appear once in the whole book, or resolution would be ambiguous."""
    aliases = raw.get("aliases")
    named = [(f"{key}.name", raw.get("name"))]
    if isinstance(aliases, list):
        named += [(f"{key}.aliases[{j}]", a) for j, a in enumerate(aliases)]
    for name_key, name in named:
        if not isinstance(name, str):
            continue
        if name in seen:
            problem(name_key, f"{name!r} is already defined at {seen[name]}")
        else:
            seen[name] = name_key


def _decimal(value: Any, key: str, problem: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        problem(key, f'{value!r} is {kind}; write prices as decimal strings, e.g. "0.15"')
        return None
    try:
        amount = D(value)
    except ValueError:
        problem(key, f"{value!r} is not a decimal")
        return None
    if abs(amount) > MAX_PRICE:  # e.g. "1e400": no price is that, and costs would overflow
        problem(key, f"{value!r} is too large (at most {MAX_PRICE:,} USD)")
        return None
    return amount


def _parse_model(
    raw: dict[str, Any], key: str, discount: Decimal, problem: Any
) -> ModelSpec | None:
    ok = True
    for extra in sorted(set(raw) - _MODEL_KEYS):
        problem(f"{key}.{extra}", "unknown key")
        ok = False
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problem(f"{key}.name", "is required (a model name such as gpt-4o-mini-2024-07-18)")
        ok = False
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        problem(f"{key}.aliases", "must be a list of model names")
        aliases, ok = [], False
    encoding = raw.get("encoding")
    if encoding not in KNOWN_ENCODINGS:
        problem(f"{key}.encoding", f"{encoding!r} is not one of {sorted(KNOWN_ENCODINGS)}")
        ok = False
    context = raw.get("training_context")
    if context is not None and (
        isinstance(context, bool) or not isinstance(context, int) or context <= 0
    ):
        problem(f"{key}.training_context", f"{context!r} must be a positive integer")
        ok = False
    prices = _parse_rows(raw.get("price", []), f"{key}.price", False, discount, problem)
    ft_prices = _parse_rows(
        raw.get("fine_tuned_price", []), f"{key}.fine_tuned_price", True, discount, problem
    )
    if prices is None or ft_prices is None or not ok:
        return None
    return ModelSpec(
        name=str(name),
        aliases=tuple(aliases),
        encoding=str(encoding),
        training_context=context,
        prices=prices.get("", ()),
        fine_tuned_prices=ft_prices.get("", ()),
        tier_prices={t: rows for t, rows in prices.items() if t},
        tier_fine_tuned_prices={t: rows for t, rows in ft_prices.items() if t},
    )


def _tier(value: Any, key: str, problem: Any) -> str | None:
    """A row's `tier`: absent = standard; else one of PRICED_TIERS."""
    if value is None:
        return ""
    if isinstance(value, str) and value in PRICED_TIERS:
        return value
    if isinstance(value, str) and value.strip().lower() in STANDARD_TIERS:
        problem(key, f"{value!r} is standard processing: leave `tier` out for standard prices")
    else:
        problem(key, f"{value!r} is not a priced service tier (one of {list(PRICED_TIERS)})")
    return None


def _parse_rows(
    raw_rows: Any, key: str, fine_tuned: bool, discount: Decimal, problem: Any
) -> dict[str, tuple[PriceRow, ...]] | None:
    """The rows of one table per tier ("" = standard), each tier in date order."""
    if not isinstance(raw_rows, list):
        problem(key, "must be an array of tables")
        return None
    allowed = _FT_PRICE_KEYS if fine_tuned else _PRICE_KEYS
    by_tier: dict[str, list[PriceRow]] = {}
    ok = True
    for i, raw in enumerate(raw_rows):
        rkey = f"{key}[{i}]"
        if not isinstance(raw, dict):
            problem(rkey, "must be a table")
            ok = False
            continue
        for extra in sorted(set(raw) - allowed):
            problem(f"{rkey}.{extra}", "unknown key")
            ok = False
        effective = _effective(raw.get("effective"), f"{rkey}.effective", problem)
        tier = _tier(raw.get("tier"), f"{rkey}.tier", problem)
        if tier is None:
            ok = False
        values: dict[str, Decimal | None] = {}
        for name in sorted(allowed - {"effective", "tier"}):
            if name not in raw:
                values[name] = None
                continue
            value = _decimal(raw[name], f"{rkey}.{name}", problem)
            if value is not None and value < 0:
                problem(f"{rkey}.{name}", f"{value} is negative")
                value, ok = None, False
            elif value is not None and name != "training_hour" and not _exact(value, discount):
                problem(f"{rkey}.{name}", f"{value} has too many decimal places (at most 6)")
                value, ok = None, False
            elif value is None:
                ok = False
            values[name] = value
        for required in ("input", "output"):
            if required not in raw:
                problem(f"{rkey}.{required}", "is required")
                ok = False
        trains = ("training" in raw, "training_hour" in raw)
        if fine_tuned and tier and any(trains):
            problem(rkey, f"a `{tier}` row prices inference only: training has no service tier")
            ok = False
        elif fine_tuned and not tier and trains[0] == trains[1]:
            problem(rkey, "needs exactly one of `training` (per 1M tokens) or `training_hour`")
            ok = False
        if effective is None or tier is None or not ok:
            ok = False
            continue
        rows = by_tier.setdefault(tier, [])
        if rows and effective <= rows[-1].effective:
            which = f"previous {tier} row's" if tier else "previous row's"
            problem(
                f"{rkey}.effective",
                f"{effective} is not after the {which} {rows[-1].effective}"
                " (rows of a tier must be in increasing date order, without overlaps)",
            )
            ok = False
            continue
        rows.append(
            PriceRow(
                effective=effective,
                input=values["input"] or Decimal(0),
                cached_input=values["cached_input"],
                output=values["output"] or Decimal(0),
                training=values.get("training"),
                training_hour=values.get("training_hour"),
                tier=tier,
            )
        )
    return {t: tuple(rows) for t, rows in by_tier.items()} if ok else None


def _exact(value: Decimal, discount: Decimal) -> bool:
    try:
        per_token_pico(value)
        per_token_pico(value * discount)
    except ValueError:
        return False
    return True


def _effective(value: Any, key: str, problem: Any) -> date | None:
    if isinstance(value, datetime):
        problem(key, f"{value} must be a date (YYYY-MM-DD), not a date-time")
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problem(key, f"{value!r} is not a date (YYYY-MM-DD)" if value is not None else "is required")
    return None


def unknown_model(book: PriceBook, name: str) -> PricingError:
    """The one wording for a model the book does not know, with the closest names:
    `unknown model 'gpt-4o-mni' (not in prices.toml); did you mean 'gpt-4o-mini'?`"""
    import difflib

    prefix, base = "", name
    if name.startswith("ft:"):
        prefix, base = "ft:", name.split(":")[1] if name.count(":") >= 1 else name[3:]
    known = [n for spec in book for n in (spec.name, *spec.aliases)]
    close = difflib.get_close_matches(base, known, n=2, cutoff=0.6)
    source = Path(book.source).name if book.source else "the price book"
    hint = ""
    if close:
        hint = "; did you mean " + " or ".join(repr(prefix + c) for c in close) + "?"
    return PricingError(f"unknown model {name!r} (not in {source}){hint}")
