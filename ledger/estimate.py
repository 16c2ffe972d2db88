"""Training cost before the job runs: dataset tokens × epochs × the training price.

Billing tokens are Σ min(cap, tokens of each training sequence), the cap being the
model's max tokens per training example; the default number of epochs follows the
cookbook; cost = trained tokens × the training price in force on the given day,
computed in integer pico-USD, so it is exact.

Token distribution: min, max, mean, median (the middle value, or the mean of the two
middle values) and p5/p95 by the nearest-rank method (the smallest count such that
at least p% of examples have no more tokens). They come from a histogram of tokens
per example — exact, and its size grows with the number of *distinct* counts
(at most about sqrt(2 × total tokens)), not with the number of examples.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.dataset import LineIssue, ScanStats
from ledger.errors import PricingError
from ledger.money import from_pico, per_token_pico
from ledger.pricebook import PriceBook, unknown_model

DEFAULT_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_DEFAULT_EPOCHS = 25
MIN_DEFAULT_EPOCHS = 1


def default_epochs(n_examples: int) -> int:
    """The cookbook's rule: 3, raised for tiny files, lowered for huge ones."""
    n = max(n_examples, 1)
    if DEFAULT_EPOCHS * n < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    if DEFAULT_EPOCHS * n > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return DEFAULT_EPOCHS


@dataclass(frozen=True)
class Distribution:
    """Tokens per example (uncapped)."""

    min: int
    max: int
    mean: Decimal
    median: Decimal
    p5: int
    p95: int

    @classmethod
    def of(cls, histogram: Counter[int]) -> Distribution | None:
        n = sum(histogram.values())
        if n == 0:
            return None
        values = sorted(histogram)
        total = sum(v * c for v, c in histogram.items())

        def rank(r: int) -> int:  # the r-th smallest value, r from 1
            seen = 0
            for v in values:
                seen += histogram[v]
                if seen >= r:
                    return v
            return values[-1]

        def nearest_rank(p: int) -> int:
            return rank(max(1, math.ceil(p * n / 100)))

        median = (Decimal(rank((n + 1) // 2)) + Decimal(rank(n // 2 + 1))) / 2
        return cls(
            min=values[0],
            max=values[-1],
            mean=(Decimal(total) / n).quantize(Decimal("0.01")),
            median=median,
            p5=nearest_rank(5),
            p95=nearest_rank(95),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "mean": str(self.mean),
            "median": str(
                self.median.quantize(Decimal(1) if self.median % 1 == 0 else Decimal("0.1"))
            ),
            "p5": self.p5,
            "p95": self.p95,
            "percentile_method": "nearest-rank",
        }


@dataclass(frozen=True)
class Estimate:
    file: str
    model: str
    base_model: str
    encoding: str
    format: str  # "chat" or "dpo"
    lines: int
    examples: int
    dataset_tokens: int
    billing_tokens: int
    max_tokens_per_example: int | None
    examples_truncated: int
    n_epochs: int
    epochs_source: str  # "default" or "given"
    trained_tokens: int
    price_date: date
    training_price: Decimal | None  # per 1M trained tokens
    cost: Decimal | None
    distribution: Distribution | None
    errors: list[LineIssue] = field(default_factory=list)
    warnings: list[LineIssue] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warning_counts: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    @property
    def ok(self) -> bool:
        """False when OpenAI would reject the file."""
        return not self.error_counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "model": self.model,
            "base_model": self.base_model,
            "encoding": self.encoding,
            "format": self.format,
            "lines": self.lines,
            "examples": self.examples,
            "dataset_tokens": self.dataset_tokens,
            "billing_tokens": self.billing_tokens,
            "max_tokens_per_example": self.max_tokens_per_example,
            "examples_truncated": self.examples_truncated,
            "n_epochs": self.n_epochs,
            "epochs_source": self.epochs_source,
            "trained_tokens": self.trained_tokens,
            "price_date": self.price_date.isoformat(),
            "training_price": None if self.training_price is None else str(self.training_price),
            "cost": None if self.cost is None else exact_str(self.cost),
            "currency": "USD",
            "token_distribution": self.distribution.as_dict() if self.distribution else None,
            "valid": self.ok,
            "errors": [i.as_dict() for i in self.errors],
            "error_counts": dict(self.error_counts),
            "warnings": [i.as_dict() for i in self.warnings],
            "warning_counts": dict(self.warning_counts),
            "note": self.note,
        }


def exact_str(amount: Decimal) -> str:
    """All the digits of an exact amount, at least two decimals, no exponent."""
    places = max(2, -amount.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{amount:.{places}f}"


def training_price(
    pricebook: PriceBook, model: str, on: date
) -> tuple[str, str, int | None, Decimal | None, str | None]:
    """(base model, encoding, cap, price per 1M tokens or None, note) for `model` on `on`."""
    resolved = pricebook.resolve(model)
    spec = resolved.spec
    if spec is None:
        raise unknown_model(pricebook, model)
    row = pricebook.price_at("ft:" + resolved.base_model, on)
    if row is None:
        raise PricingError(f"{resolved.base_model} has no fine-tuning price in force on {on}")
    note = None
    if row.training is None:
        hourly = f" at ${row.training_hour} per hour" if row.training_hour is not None else ""
        note = (
            f"billed per training hour{hourly} (reinforcement fine-tuning): "
            "tokens cannot price this fine-tune"
        )
    return resolved.base_model, spec.encoding, spec.training_context, row.training, note


def estimate(
    pricebook: PriceBook,
    model: str,
    path: Path,
    *,
    epochs: int | None = None,
    at: date | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Estimate:
    """Scan `path` and price its training with `model`'s fine-tuning price on `at`."""
    from ledger.scan import scan_file

    on = at or datetime.now(UTC).date()
    base, encoding, cap, price, note = training_price(pricebook, model, on)
    stats = scan_file(path, encoding, cap, workers=workers, progress=progress)
    return from_stats(
        stats,
        file=str(path),
        model=model,
        base_model=base,
        encoding=encoding,
        cap=cap,
        epochs=epochs,
        on=on,
        price=price,
        note=note,
    )


def from_stats(
    stats: ScanStats,
    *,
    file: str,
    model: str,
    base_model: str,
    encoding: str,
    cap: int | None,
    epochs: int | None,
    on: date,
    price: Decimal | None,
    note: str | None = None,
) -> Estimate:
    """Turn scan results into an estimate: epochs, trained tokens, exact cost."""
    kinds = sorted(stats.kinds.items(), key=lambda kv: kv[1])  # (kind, first line)
    kind = kinds[0][0] if kinds else "chat"
    for other, line in kinds[1:]:
        stats.error(line, "mixed_format", f"a {other} line in a file of {kind} lines")
    n_epochs = epochs if epochs is not None else default_epochs(stats.examples)
    trained = stats.billing_tokens * n_epochs
    cost = None if price is None else from_pico(trained * per_token_pico(price))
    return Estimate(
        file=file,
        model=model,
        base_model=base_model,
        encoding=encoding,
        format=kind,
        lines=stats.lines,
        examples=stats.examples,
        dataset_tokens=stats.dataset_tokens,
        billing_tokens=stats.billing_tokens,
        max_tokens_per_example=cap,
        examples_truncated=stats.truncated,
        n_epochs=n_epochs,
        epochs_source="given" if epochs is not None else "default",
        trained_tokens=trained,
        price_date=on,
        training_price=price,
        cost=cost,
        distribution=Distribution.of(stats.histogram),
        errors=sorted(stats.errors, key=lambda i: i.line),
        warnings=sorted(stats.warnings, key=lambda i: i.line),
        error_counts=dict(stats.error_counts),
        warning_counts=dict(stats.warning_counts),
        note=note,
    )
