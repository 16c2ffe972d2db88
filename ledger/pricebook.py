"""The price book: effective-dated prices per base model, and model-name resolution.

Loaded from prices.toml, validated as a whole (every problem is collected with its
file and key path), then queried by model name and time: the price row in force at
a moment is found by bisecting the rows' effective dates (UTC).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.errors import PriceBookError, Problem
from ledger.money import D, per_token_pico
from ledger.tomlfile import read_toml

KNOWN_ENCODINGS = frozenset({"cl100k_base", "o200k_base"})
FINE_TUNED_PREFIX = "ft:"
CHECKPOINT_MARK = "ckpt-step-"

# Per 1M tokens (or per training hour); far above any real price, far below an overflow.
MAX_PRICE = Decimal(1_000_000)
_MODEL_KEYS = {"name", "aliases", "encoding", "training_context", "price", "fine_tuned_price"}
_PRICE_KEYS = {"effective", "input", "cached_input", "output"}
_FT_PRICE_KEYS = _PRICE_KEYS | {"training", "training_hour"}
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
    prices: tuple[PriceRow, ...]
    fine_tuned_prices: tuple[PriceRow, ...]


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

    def price_at(self, name: str, at: date | datetime) -> PriceRow | None:
        """The row that prices `name` itself at `at` (fine-tuned prices for ft: names)."""
        model = self.resolve(name)
        if model.spec is None:
            return None
        rows = model.spec.fine_tuned_prices if model.fine_tuned else model.spec.prices
        return _row_at(rows, _as_date(at))

    def base_price_at(self, name: str, at: date | datetime) -> PriceRow | None:
        """The base model's row at `at`: what the same tokens would cost without fine-tuning."""
        model = self.resolve(name)
        return _row_at(model.spec.prices, _as_date(at)) if model.spec else None

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
        prices=prices,
        fine_tuned_prices=ft_prices,
    )


def _parse_rows(
    raw_rows: Any, key: str, fine_tuned: bool, discount: Decimal, problem: Any
) -> tuple[PriceRow, ...] | None:
    if not isinstance(raw_rows, list):
        problem(key, "must be an array of tables")
        return None
    allowed = _FT_PRICE_KEYS if fine_tuned else _PRICE_KEYS
    rows: list[PriceRow] = []
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
        values: dict[str, Decimal | None] = {}
        for field in sorted(allowed - {"effective"}):
            if field not in raw:
                values[field] = None
                continue
            value = _decimal(raw[field], f"{rkey}.{field}", problem)
            if value is not None and value < 0:
                problem(f"{rkey}.{field}", f"{value} is negative")
                value, ok = None, False
            elif value is not None and field != "training_hour" and not _exact(value, discount):
                problem(f"{rkey}.{field}", f"{value} has too many decimal places (at most 6)")
                value, ok = None, False
            elif value is None:
                ok = False
            values[field] = value
        for required in ("input", "output"):
            if required not in raw:
                problem(f"{rkey}.{required}", "is required")
                ok = False
        if fine_tuned and ("training" in raw) == ("training_hour" in raw):
            problem(rkey, "needs exactly one of `training` (per 1M tokens) or `training_hour`")
            ok = False
        if effective is None or not ok:
            ok = False
            continue
        if rows and effective <= rows[-1].effective:
            problem(
                f"{rkey}.effective",
                f"{effective} is not after the previous row's {rows[-1].effective}"
                " (rows must be in increasing date order, without overlaps)",
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
            )
        )
    return tuple(rows) if ok else None


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
