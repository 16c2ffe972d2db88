"""The price book: dated answers for every kind of name, and validation users can act on."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.errors import PriceBookError
from ledger.pricebook import load_pricebook, parse_model_name

GOOD_MODEL = """
[[model]]
name = "gpt-4o-mini-2024-07-18"
aliases = ["gpt-4o-mini"]
encoding = "o200k_base"
training_context = 65536
  [[model.price]]
  effective = 2024-07-18
  input = "0.15"
  cached_input = "0.075"
  output = "0.60"
  [[model.fine_tuned_price]]
  effective = 2024-07-23
  training = "3.00"
  input = "0.30"
  cached_input = "0.15"
  output = "1.20"
"""


@pytest.mark.parametrize(
    ("name", "base", "fine_tuned", "checkpoint"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18", False, False),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", False, False),
        ("ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3", "gpt-4o-mini-2024-07-18", True, False),
        (
            "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3:ckpt-step-88",
            "gpt-4o-mini-2024-07-18",
            True,
            True,
        ),
        ("ft:gpt-4o-mini:acme:legal:Lx9", "gpt-4o-mini-2024-07-18", True, False),
        ("ft:gpt-3.5-turbo-0613:acme::8abc", "gpt-3.5-turbo-0613", True, False),
        ("ft:gpt-3.5-turbo:acme::8abc", "gpt-3.5-turbo-0125", True, False),
    ],
)
def test_resolves_every_kind_of_name(book, name, base, fine_tuned, checkpoint):
    model = book.resolve(name)
    assert (model.base_model, model.fine_tuned, model.checkpoint) == (base, fine_tuned, checkpoint)
    assert model.spec is not None


def test_unknown_model_resolves_without_price(book):
    model = book.resolve("ft:mystery-9:acme::x")
    assert model.spec is None and model.fine_tuned
    assert book.price_at("ft:mystery-9:acme::x", date(2025, 1, 1)) is None


def test_gpt35_fine_tuning_price_cut_of_2023_11_06(book):
    name = "ft:gpt-3.5-turbo-0613:acme::8abc"
    september = book.price_at(name, date(2023, 9, 15))
    december = book.price_at(name, date(2023, 12, 1))
    assert (september.input, september.output) == (Decimal("12.00"), Decimal("16.00"))
    assert (december.input, december.output) == (Decimal("3.00"), Decimal("6.00"))
    # the row changes at midnight UTC, whatever the caller's zone
    assert book.price_at(name, datetime(2023, 11, 5, 23, 59, tzinfo=UTC)).input == Decimal("12.00")
    assert book.price_at(name, datetime(2023, 11, 6, 0, 0, tzinfo=UTC)).input == Decimal("3.00")
    assert book.price_at(name, date(2023, 8, 21)) is None  # before fine-tuning launched


def test_checkpoint_prices_as_its_parent(book):
    parent = book.price_at("ft:gpt-4.1-2025-04-14:acme:x:Q1", date(2025, 6, 1))
    ckpt = book.price_at("ft:gpt-4.1-2025-04-14:acme:x:Q1:ckpt-step-10", date(2025, 6, 1))
    assert parent == ckpt and parent.training == Decimal("25.00")


def test_reinforcement_training_is_per_hour(book):
    row = book.price_at("ft:o4-mini-2025-04-16:acme:rl:Z", date(2025, 6, 1))
    assert row.training is None and row.training_hour == Decimal("100.00")


def test_every_reference_price_is_shipped(book):
    expected = {
        "gpt-3.5-turbo-0613": ("1.50", None, "2.00"),
        "gpt-3.5-turbo-1106": ("1.00", None, "2.00"),
        "gpt-3.5-turbo-0125": ("0.50", None, "1.50"),
        "gpt-4o-mini-2024-07-18": ("0.15", "0.075", "0.60"),
        "gpt-4o-2024-08-06": ("2.50", "1.25", "10.00"),
        "gpt-4.1-2025-04-14": ("2.00", "0.50", "8.00"),
        "gpt-4.1-mini-2025-04-14": ("0.40", "0.10", "1.60"),
        "gpt-4.1-nano-2025-04-14": ("0.10", "0.025", "0.40"),
        "o4-mini-2025-04-16": ("1.10", "0.275", "4.40"),
        "davinci-002": ("2.00", None, "2.00"),
        "babbage-002": ("0.40", None, "0.40"),
    }
    on = date(2026, 1, 1)
    for name, (inp, cached, out) in expected.items():
        row = book.price_at(name, on)
        assert (str(row.input), row.cached_input and str(row.cached_input), str(row.output)) == (
            inp,
            cached,
            out,
        ), name
    ft = book.price_at("ft:gpt-4o-2024-08-06:a::b", on)
    assert (ft.training, ft.input, ft.cached_input, ft.output) == tuple(
        Decimal(v) for v in ("25.00", "3.75", "1.875", "15.00")
    )


def test_parse_model_name_keeps_empty_suffix():
    assert parse_model_name("ft:gpt-4o-mini-2024-07-18:acme::id") == (
        "gpt-4o-mini-2024-07-18",
        True,
        False,
    )


def write_book(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_broken_book_reports_every_problem_with_key_paths(tmp_path):
    path = write_book(
        tmp_path,
        GOOD_MODEL
        + """
[[model]]
name = "gpt-4o-mini"
encoding = "o999k"
colour = "blue"
  [[model.price]]
  effective = 2025-01-01
  input = "abc"
  output = 0.6
  [[model.price]]
  effective = 2024-01-01
  input = "-1"
  output = "1"
  [[model.fine_tuned_price]]
  effective = 2025-01-01
  input = "1"
  output = "1"
""",
    )
    with pytest.raises(PriceBookError) as info:
        load_pricebook(path)
    messages = [str(p) for p in info.value.problems]
    src = str(path)
    assert f"{src}: model[1].colour: unknown key" in messages
    assert f"{src}: model[1].encoding: 'o999k' is not one of ['cl100k_base', 'o200k_base']" in (
        messages
    )
    assert f"{src}: model[1].price[0].input: 'abc' is not a decimal" in messages
    assert any(m.startswith(f"{src}: model[1].price[0].output: 0.6 is a float") for m in messages)
    assert f"{src}: model[1].price[1].input: -1 is negative" in messages
    assert any(
        m.startswith(f"{src}: model[1].fine_tuned_price[0]: needs exactly one") for m in messages
    )
    assert len(messages) >= 6


def test_overlapping_dates_and_duplicate_names_are_refused(tmp_path):
    text = GOOD_MODEL.replace(
        "  [[model.fine_tuned_price]]",
        '  [[model.price]]\n  effective = 2024-07-18\n  input = "1"\n  output = "1"\n'
        "  [[model.fine_tuned_price]]",
    )
    path = write_book(tmp_path, text + GOOD_MODEL)
    with pytest.raises(PriceBookError) as info:
        load_pricebook(path)
    text_out = str(info.value)
    assert "model[0].price[1].effective: 2024-07-18 is not after the previous row's 2024-07-18" in (
        text_out
    )
    assert "model[1].name: 'gpt-4o-mini-2024-07-18' is already defined at model[0].name" in text_out
    assert "model[1].aliases[0]: 'gpt-4o-mini' is already defined at model[0].aliases[0]" in (
        text_out
    )


def test_prices_finer_than_the_stored_unit_are_refused(tmp_path):
    path = write_book(tmp_path, GOOD_MODEL.replace('input = "0.15"', 'input = "0.0000001"'))
    with pytest.raises(PriceBookError, match=r"model\[0\]\.price\[0\]\.input: .* too many decimal"):
        load_pricebook(path)


def test_not_toml_is_one_located_problem(tmp_path):
    path = write_book(tmp_path, "currency = \n")
    with pytest.raises(PriceBookError, match="not valid TOML"):
        load_pricebook(path)


def test_prices_check_cli(cli, config_dir):
    ok = cli("prices", "check")
    assert ok.exit_code == 0 and "OK" in ok.stdout
    (config_dir / "prices.toml").write_text('currency = "USD"\nbogus = 1\n')
    bad = cli("prices", "check")
    assert bad.exit_code == 1
    assert "prices.toml: bogus: unknown key" in bad.stderr and "Traceback" not in bad.stderr


def test_user_config_overrides_file_by_file(cli, config_dir):
    (config_dir / "prices.toml").write_text(GOOD_MODEL)
    listed = json.loads(cli("prices", "list", "--format", "json").stdout)["rows"]
    assert [r["model"] for r in listed] == ["gpt-4o-mini-2024-07-18"]


def test_prices_show_json(cli):
    result = cli(
        "prices", "show", "ft:gpt-3.5-turbo-0613:acme::x", "--at", "2023-09-01", "--format", "json"
    )
    doc = json.loads(result.stdout)
    assert doc["base_model"] == "gpt-3.5-turbo-0613" and doc["fine_tuned"] is True
    assert doc["effective"] == "2023-08-22" and doc["encoding"] == "cl100k_base"
    assert doc["prices"] == {"input": "12.00", "output": "16.00", "training": "8.00"}
    assert doc["base_prices"] == {"input": "1.50", "output": "2.00"}
    assert doc["training_context"] == 4096


def test_prices_show_unknown_model_fails_cleanly(cli):
    result = cli("prices", "show", "no-such-model")
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "ftledger: error: unknown model 'no-such-model' (not in prices.toml)"
    )
