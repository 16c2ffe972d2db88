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

from ledger.dataset import LEGACY, LineIssue, ScanStats
from ledger.errors import InputError, PricingError, Problem
from ledger.money import from_pico, per_token_pico
from ledger.pricebook import PriceBook, unknown_model

DEFAULT_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MAX_DEFAULT_EPOCHS = 25
MIN_DEFAULT_EPOCHS = 1
# Base models fine-tuned from legacy prompt/completion files; every other model takes
# chat (or preference) files. OpenAI adds no new legacy models, so this is a constant
# rather than a price-book key.
LEGACY_MODELS = frozenset({"davinci-002", "babbage-002"})


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
    format: str  # "chat", "dpo" or "prompt_completion"
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
    check_example_count(stats)
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


MIN_EXAMPLES = 10  # OpenAI rejects a training file with fewer examples


def check_example_count(stats: ScanStats) -> None:
    """`too_few_examples` (line 0: the whole file) when the file holds fewer than 10 valid
    examples, an empty file included: OpenAI refuses to train on it. A sample scaled by
    `--examples` is not checked; it stands for a larger file."""
    if stats.examples >= MIN_EXAMPLES:
        return
    if stats.lines == 0:
        message = f"the file is empty; OpenAI requires at least {MIN_EXAMPLES} examples"
    else:
        message = (
            f"the file holds {stats.examples} valid example(s); "
            f"OpenAI requires at least {MIN_EXAMPLES}"
        )
    stats.error(0, "too_few_examples", message)


def check_format(base_model: str, kind: str, where: str) -> None:
    """Refuse a file whose format `base_model` cannot be fine-tuned on (InputError)."""
    if base_model in LEGACY_MODELS and kind != LEGACY:
        raise InputError(
            [
                Problem(
                    where,
                    f"this is a {kind} file, but {base_model} is fine-tuned from prompt/completion"
                    ' files (one {"prompt": "...", "completion": "..."} per line); convert the'
                    " file, or estimate a chat model such as gpt-4o-mini",
                )
            ]
        )
    if base_model not in LEGACY_MODELS and kind == LEGACY:
        legacy = " and ".join(sorted(LEGACY_MODELS))
        raise InputError(
            [
                Problem(
                    where,
                    f"this is a prompt/completion file, which only {legacy} are fine-tuned"
                    f' from; {base_model} needs chat lines ({{"messages": [...]}})',
                )
            ]
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
    if kinds:
        check_format(base_model, kind, f"{file}:{kinds[0][1]}")
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


# --- forecasts: the cost of a dataset that does not exist yet -------------------------

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
BOOTSTRAP_MAX_DRAWS = 2_000_000  # fewer resamples of a big sample: its interval is narrow
INTERVAL = (5, 95)  # percent: a 90 % interval


@dataclass(frozen=True)
class SizeForecast:
    """Training cost of N examples, from an average size or a sample's distribution.

    `billing_tokens` is N × the mean billing tokens per example (each example capped at
    the model's limit); from a sample, low/high are the 5th and 95th percentiles of N ×
    the mean of seeded bootstrap resamples of the sample (the uncertainty of a small
    sample's mean), so the same sample always gives the same interval.
    """

    model: str
    base_model: str
    source: str  # "average" | "sample"
    examples: int  # N, the size forecast
    tokens_per_example: Decimal  # mean billing tokens per example
    n_epochs: int
    epochs_source: str  # "default" (the cookbook rule for N) | "given"
    billing_tokens: int
    billing_low: int
    billing_high: int
    price_date: date
    training_price: Decimal | None
    sample_examples: int | None = None
    resamples: int | None = None
    seed: int | None = None
    note: str | None = None

    @property
    def trained_tokens(self) -> tuple[int, int, int]:
        """(point, low, high) trained tokens."""
        e = self.n_epochs
        return self.billing_tokens * e, self.billing_low * e, self.billing_high * e

    @property
    def cost(self) -> tuple[Decimal, Decimal, Decimal] | None:
        if self.training_price is None:
            return None
        rate = per_token_pico(self.training_price)
        point, low, high = self.trained_tokens
        return from_pico(point * rate), from_pico(low * rate), from_pico(high * rate)

    def as_dict(self) -> dict[str, Any]:
        trained, trained_low, trained_high = self.trained_tokens
        cost = self.cost
        return {
            "model": self.model,
            "base_model": self.base_model,
            "source": self.source,
            "examples": self.examples,
            "sample_examples": self.sample_examples,
            "tokens_per_example": str(self.tokens_per_example),
            "n_epochs": self.n_epochs,
            "epochs_source": self.epochs_source,
            "billing_tokens": self.billing_tokens,
            "billing_tokens_low": self.billing_low,
            "billing_tokens_high": self.billing_high,
            "trained_tokens": trained,
            "trained_tokens_low": trained_low,
            "trained_tokens_high": trained_high,
            "price_date": self.price_date.isoformat(),
            "training_price": None if self.training_price is None else str(self.training_price),
            "cost": None if cost is None else exact_str(cost[0]),
            "cost_low": None if cost is None else exact_str(cost[1]),
            "cost_high": None if cost is None else exact_str(cost[2]),
            "currency": "USD",
            "interval": "90% bootstrap of the sample mean" if self.source == "sample" else None,
            "resamples": self.resamples,
            "seed": self.seed,
            "note": self.note,
        }


def _scaled(total: int, n: int, examples: int) -> int:
    """round(total × examples / n), half to even, in integers."""
    quotient, remainder = divmod(total * examples, n)
    if 2 * remainder > n or (2 * remainder == n and quotient % 2):
        quotient += 1
    return quotient


def forecast_average(
    pricebook: PriceBook,
    model: str,
    examples: int,
    avg_tokens: int,
    *,
    epochs: int | None = None,
    at: date | None = None,
) -> SizeForecast:
    """N examples of `avg_tokens` billing tokens each (capped at the model's limit)."""
    on = at or datetime.now(UTC).date()
    base, _encoding, cap, price, note = training_price(pricebook, model, on)
    per_example = avg_tokens if cap is None else min(avg_tokens, cap)
    if per_example < avg_tokens:
        note = f"{avg_tokens} tokens per example is over the {cap}-token limit: capped"
    billing = examples * per_example
    return SizeForecast(
        model=model,
        base_model=base,
        source="average",
        examples=examples,
        tokens_per_example=Decimal(per_example),
        n_epochs=epochs if epochs is not None else default_epochs(examples),
        epochs_source="given" if epochs is not None else "default",
        billing_tokens=billing,
        billing_low=billing,
        billing_high=billing,
        price_date=on,
        training_price=price,
        note=note,
    )


def capped_sizes(histogram: Counter[int], cap: int | None, sequences: int = 1) -> list[int]:
    """Billing tokens of each example of a sample, in order of size. A DPO example (two
    sequences) is capped at twice the limit: the histogram holds its sum only."""
    limit = None if cap is None else cap * sequences
    sizes: list[int] = []
    for value in sorted(histogram):
        sizes += [value if limit is None else min(value, limit)] * histogram[value]
    return sizes


def forecast_sample(
    sizes: list[int],
    examples: int,
    *,
    model: str,
    base_model: str,
    on: date,
    price: Decimal | None,
    epochs: int | None = None,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = BOOTSTRAP_RESAMPLES,
    note: str | None = None,
) -> SizeForecast:
    """N examples drawn from a sample's per-example billing tokens `sizes`."""
    import random

    n = len(sizes)
    if n == 0:
        raise ValueError("the sample has no valid example to scale")
    total = sum(sizes)
    resamples = max(1, min(resamples, BOOTSTRAP_MAX_DRAWS // n))
    rng = random.Random(seed)
    sums = sorted(sum(rng.choices(sizes, k=n)) for _ in range(resamples))

    def percentile(p: int) -> int:  # nearest rank, as the token distribution
        return sums[max(1, math.ceil(p * resamples / 100)) - 1]

    return SizeForecast(
        model=model,
        base_model=base_model,
        source="sample",
        examples=examples,
        tokens_per_example=(Decimal(total) / n).quantize(Decimal("0.01")),
        n_epochs=epochs if epochs is not None else default_epochs(examples),
        epochs_source="given" if epochs is not None else "default",
        billing_tokens=_scaled(total, n, examples),
        billing_low=_scaled(percentile(INTERVAL[0]), n, examples),
        billing_high=_scaled(percentile(INTERVAL[1]), n, examples),
        price_date=on,
        training_price=price,
        sample_examples=n,
        resamples=resamples,
        seed=seed,
        note=note,
    )


def forecast_from_file(
    pricebook: PriceBook,
    model: str,
    path: Path,
    examples: int,
    *,
    epochs: int | None = None,
    at: date | None = None,
    workers: int | None = None,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[Estimate, SizeForecast | None]:
    """Validate the sample `path` (its own estimate) and scale it to `examples`;
    the forecast is None when the sample has no valid example."""
    from ledger.scan import scan_file

    on = at or datetime.now(UTC).date()
    base, encoding, cap, price, note = training_price(pricebook, model, on)
    stats = scan_file(path, encoding, cap, workers=workers)
    histogram = Counter(stats.histogram)
    sample = from_stats(
        stats,
        file=str(path),
        model=model,
        base_model=base,
        encoding=encoding,
        cap=cap,
        epochs=None,
        on=on,
        price=price,
        note=note,
    )
    if not sample.examples:
        return sample, None
    sizes = capped_sizes(histogram, cap, 2 if sample.format == "dpo" else 1)
    forecast = forecast_sample(
        sizes,
        examples,
        model=model,
        base_model=base,
        on=on,
        price=price,
        epochs=epochs,
        seed=seed,
        note=note,
    )
    return sample, forecast


@dataclass(frozen=True)
class Calibration:
    """How recorded estimates compared with the trained tokens of their jobs."""

    matched: int  # estimates with a finished job
    median_error_pct: Decimal  # signed: > 0 means estimates ran high
    mean_abs_error_pct: Decimal
    min_error_pct: Decimal
    max_error_pct: Decimal

    def sentence(self) -> str:
        return (
            f"{self.matched} estimate(s) with a finished job: median error "
            f"{self.median_error_pct:+}% of actual trained tokens, mean absolute "
            f"{self.mean_abs_error_pct}%, from {self.min_error_pct:+}% to {self.max_error_pct:+}%"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "median_error_pct": str(self.median_error_pct),
            "mean_abs_error_pct": str(self.mean_abs_error_pct),
            "min_error_pct": str(self.min_error_pct),
            "max_error_pct": str(self.max_error_pct),
        }


def calibration(errors: list[Decimal]) -> Calibration | None:
    """Summary of token errors in percent of the actual (None: nothing matched yet)."""
    if not errors:
        return None
    cent = Decimal("0.01")
    ordered = sorted(errors)
    n = len(ordered)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return Calibration(
        matched=n,
        median_error_pct=middle.quantize(cent),
        mean_abs_error_pct=(sum((abs(e) for e in ordered), Decimal(0)) / n).quantize(cent),
        min_error_pct=ordered[0],
        max_error_pct=ordered[-1],
    )
