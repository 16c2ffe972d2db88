"""Forecasting training cost before the dataset exists, and calibrating past estimates."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

from ledger.estimate import (
    calibration,
    capped_sizes,
    default_epochs,
    forecast_average,
    forecast_from_file,
    forecast_sample,
)

ON = date(2025, 6, 1)


def chat(words: int) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": " ".join(["word"] * words)},
        ]
    }


def test_average_forecast_uses_the_cookbook_epochs_for_n_and_the_training_price(book):
    f = forecast_average(book, "gpt-4o-mini", 20_000, 700, at=ON)
    assert f.n_epochs == default_epochs(20_000) == 1  # 3 x 20,000 > 25,000
    assert f.billing_tokens == 14_000_000 and f.trained_tokens == (14_000_000,) * 3
    assert f.cost == (Decimal("42.000000"),) * 3  # $3.00 per 1M
    small = forecast_average(book, "gpt-4o-mini", 20, 700, at=ON, epochs=None)
    assert small.n_epochs == 5  # 100 // 20
    given = forecast_average(book, "gpt-4o-mini", 20, 700, at=ON, epochs=2)
    assert (given.n_epochs, given.epochs_source) == (2, "given")


def test_average_tokens_over_the_limit_are_capped_and_said(book):
    f = forecast_average(book, "gpt-3.5-turbo-0613", 1000, 5000, at=ON)
    assert f.tokens_per_example == 4096 and "capped" in (f.note or "")


def test_sample_forecast_is_deterministic_and_its_interval_holds_the_point():
    rng = random.Random(1)
    sizes = [rng.randint(100, 900) for _ in range(200)]
    args = {"model": "m", "base_model": "m", "on": ON, "price": Decimal("3.00")}
    first = forecast_sample(sizes, 10_000, **args)
    again = forecast_sample(sizes, 10_000, **args)
    assert first == again  # seeded bootstrap
    assert first.billing_low < first.billing_tokens < first.billing_high
    assert first.billing_tokens == round(sum(sizes) * 10_000 / 200)
    # the 90 % interval of a 200-example mean is a few percent wide, not 0 and not 50 %
    width = (first.billing_high - first.billing_low) / first.billing_tokens
    assert 0.02 < width < 0.2
    other = forecast_sample(sizes, 10_000, seed=7, **args)
    assert other.billing_tokens == first.billing_tokens and other.billing_low != first.billing_low
    assert first.n_epochs == 2  # 25,000 // 10,000


def test_a_bigger_sample_gives_a_narrower_interval():
    rng = random.Random(2)
    population = [rng.randint(50, 2000) for _ in range(4000)]
    args = {"model": "m", "base_model": "m", "on": ON, "price": None}
    small = forecast_sample(population[:40], 5000, **args)
    big = forecast_sample(population, 5000, **args)
    assert (big.billing_high - big.billing_low) < (small.billing_high - small.billing_low) / 3
    assert small.cost is None


def test_capped_sizes_apply_the_limit_per_example():
    assert capped_sizes(Counter({10: 2, 5000: 1}), 4096) == [10, 10, 4096]
    assert capped_sizes(Counter({9000: 1}), 4096, sequences=2) == [8192]
    assert capped_sizes(Counter({9000: 1}), None) == [9000]


def test_forecast_from_a_sample_file(book, tmp_path: Path):
    path = tmp_path / "sample.jsonl"
    path.write_text("".join(json.dumps(chat(n)) + "\n" for n in (10, 20, 30, 40)))
    sample, forecast = forecast_from_file(book, "gpt-4o-mini", path, 1000, at=ON, workers=1)
    assert sample.ok and sample.examples == 4 and forecast is not None
    assert forecast.billing_tokens == sample.billing_tokens * 1000 // 4
    assert forecast.sample_examples == 4 and forecast.n_epochs == 3


def test_cli_forecast_options(cli, tmp_path: Path):
    result = cli(
        "estimate",
        "--examples",
        "5000",
        "--avg-tokens",
        "800",
        "--model",
        "gpt-4o-mini",
        "--at",
        "2025-06-01",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["trained_tokens"] == 12_000_000 and doc["cost"] == "36.00"
    assert doc["source"] == "average"

    path = tmp_path / "sample.jsonl"
    path.write_text("".join(json.dumps(chat(n)) + "\n" for n in range(5, 50)))
    table = cli("estimate", str(path), "--examples", "20000", "--model", "gpt-4o-mini")
    assert table.exit_code == 0, table.stderr
    assert "billing_tokens_low" in table.stdout and "sample" in table.stdout
    as_json = cli(
        "estimate", str(path), "--examples", "20000", "--model", "gpt-4o-mini", "-f", "json"
    )
    again = cli(
        "estimate", str(path), "--examples", "20000", "--model", "gpt-4o-mini", "-f", "json"
    )
    assert json.loads(as_json.stdout) == json.loads(again.stdout)  # deterministic

    for bad in (
        ("--avg-tokens", "800"),  # no --examples
        ("--examples", "10"),  # neither a sample nor --avg-tokens
        (str(path), "--examples", "10", "--avg-tokens", "5"),  # both
        (str(path), "--examples", "10", "--record"),
    ):
        refused = cli("estimate", *bad, "--model", "gpt-4o-mini")
        assert refused.exit_code != 0, bad
    assert cli("estimate", "--model", "gpt-4o-mini").exit_code != 0


def test_calibration_summarises_signed_and_absolute_errors():
    assert calibration([]) is None
    summary = calibration([Decimal("-4.31"), Decimal("2.00"), Decimal("10.00")])
    assert summary is not None
    assert summary.matched == 3 and summary.median_error_pct == Decimal("2.00")
    assert summary.mean_abs_error_pct == Decimal("5.44")
    assert (summary.min_error_pct, summary.max_error_pct) == (Decimal("-4.31"), Decimal("10.00"))
    assert "median error +2.00%" in summary.sentence()
