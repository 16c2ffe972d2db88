"""Service tiers: flex and priority usage cost their tier's prices, never another tier's."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.errors import PriceBookError
from ledger.pricebook import parse_pricebook
from ledger.resources import bundled_config_dir
from ledger.tomlfile import read_toml

HEADER = (
    "start_time,end_time,model,project_id,api_key_id,batch,service_tier,num_model_requests,"
    "input_tokens,input_cached_tokens,output_tokens\n"
)
JUNE_1 = 1748736000  # 2025-06-01T00:00:00Z
# 1M input of which 200k cached, 500k output, per row.
TOKENS = "1,1000000,200000,500000"


def usage_csv(tmp_path: Path, *rows: tuple[str, str]) -> Path:
    lines = [
        f"{JUNE_1},{JUNE_1 + 3600},{model},proj_a,key_a,false,{tier},{TOKENS}"
        for model, tier in rows
    ]
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def monthly(cli, *extra: str) -> dict:
    result = cli("report", "monthly", "--month", "2025-06", "--format", "json", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def usd(pico: int | None) -> Decimal | None:
    return None if pico is None else Decimal(pico) / 10**12


def cost_of(input_: str, cached: str, output: str) -> Decimal:
    """800k uncached + 200k cached + 500k output at per-1M prices."""
    return (
        Decimal("0.8") * Decimal(input_)
        + Decimal("0.2") * Decimal(cached)
        + Decimal("0.5") * Decimal(output)
    )


def import_usage(cli, path: Path) -> None:
    result = cli("import", "usage", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr


def row_cost(cli, model: str) -> tuple[Decimal | None, Decimal | None, bool]:
    doc = monthly(cli)
    [row] = [r for r in doc["rows"] if r["model"] == model]
    return (
        Decimal(row["usage_cost"]) if row["usage_cost"] else None,
        (Decimal(row["base_model_cost"]) if row["base_model_cost"] else None),
        row["priced"],
    )


def test_flex_o4_mini_costs_half_and_priority_gpt_4o_mini_costs_priority(engine, cli, tmp_path):
    import_usage(
        cli, usage_csv(tmp_path, ("o4-mini-2025-04-16", "flex"), ("gpt-4o-mini", "priority"))
    )
    flex, _, priced = row_cost(cli, "o4-mini-2025-04-16")
    assert (
        priced and flex == cost_of("0.55", "0.1375", "2.20") == cost_of("1.10", "0.275", "4.40") / 2
    )
    prio, _, priced = row_cost(cli, "gpt-4o-mini")
    assert priced and prio == cost_of("0.25", "0.125", "1.00")


def test_default_and_auto_are_standard(engine, cli, tmp_path):
    import_usage(cli, usage_csv(tmp_path, ("gpt-4.1-nano", "auto"), ("gpt-4.1-nano", "default")))
    doc = monthly(cli, "--by", "model")
    [row] = [r for r in doc["rows"] if r["model"] == "gpt-4.1-nano"]
    assert Decimal(row["usage_cost"]) == 2 * cost_of("0.10", "0.025", "0.40")


def test_tier_without_a_price_is_unpriced_then_repriceable(engine, cli, tmp_path, config_dir):
    # gpt-4.1-nano has no flex price: the usage is kept unpriced, not priced at standard.
    import_usage(cli, usage_csv(tmp_path, ("gpt-4.1-nano", "flex")))
    doc = monthly(cli)
    [row] = [r for r in doc["rows"] if r["model"] == "gpt-4.1-nano"]
    assert row["priced"] is False and row["usage_cost"] is None
    assert doc["unpriced_models"] == ["gpt-4.1-nano"]
    bundled = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    marker = 'name = "gpt-4.1-nano-2025-04-14"'
    head, tail = bundled.split(marker)
    flex_row = (
        '\n  [[model.price]]\n  tier = "flex"\n  effective = 2025-01-01\n'
        '  input = "0.05"\n  cached_input = "0.0125"\n  output = "0.20"\n'
    )
    first_table = tail.index("  [[model.price]]")
    tail = tail[:first_table] + flex_row.lstrip("\n") + "\n" + tail[first_table:]
    (config_dir / "prices.toml").write_text(head + marker + tail, encoding="utf-8")
    result = cli("reprice")
    assert result.exit_code == 0, result.stderr
    cost, base, priced = row_cost(cli, "gpt-4.1-nano")
    assert priced and cost == base == cost_of("0.05", "0.0125", "0.20")


def test_fine_tuned_priority_is_unpriced_but_base_compares_the_same_tier(engine, cli, tmp_path):
    model = "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3"
    import_usage(cli, usage_csv(tmp_path, (model, "priority")))
    cost, base, priced = row_cost(cli, model)
    assert not priced and cost is None
    # the base-model cost is the base model's *priority* price, not its standard one
    assert base == cost_of("0.25", "0.125", "1.00")


def test_book_tiers_lookup():
    _raw, data = read_toml(bundled_config_dir() / "prices.toml", PriceBookError)
    book = parse_pricebook(data, source="prices.toml")
    june = date(2025, 6, 1)
    assert book.price_at("o4-mini", june, "flex").input == Decimal("0.55")  # type: ignore[union-attr]
    assert book.price_at("o4-mini", date(2025, 4, 16), "flex") is None  # before flex existed
    assert book.price_at("o4-mini", june, "scale") is None
    assert book.price_at("o4-mini", june, "auto") == book.price_at("o4-mini", june)
    for model in ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o-2024-08-06", "gpt-4o-mini"):
        assert book.price_at(model, june, "priority") is not None, model
    assert book.price_at("ft:gpt-4.1:acme::x", june, "priority") is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('tier = "default"', "model[0].price[1].tier: 'default' is standard processing"),
        ('tier = "turbo"', "model[0].price[1].tier: 'turbo' is not a priced service tier"),
    ],
)
def test_bad_tier_is_reported_with_its_key_path(row, message):
    data = _book(f"""
  [[model.price]]
  {row}
  effective = 2025-01-01
  input = "1"
  output = "2"
""")
    with pytest.raises(PriceBookError) as caught:
        parse_pricebook(data, source="prices.toml")
    assert f"prices.toml: {message}" in str(caught.value)


def test_tier_rows_are_dated_per_tier_and_fine_tuned_tier_rows_have_no_training():
    data = _book("""
  [[model.price]]
  tier = "flex"
  effective = 2024-01-01
  input = "0.5"
  output = "1"
  [[model.fine_tuned_price]]
  tier = "priority"
  effective = 2025-01-01
  training = "3"
  input = "1"
  output = "2"
""")
    with pytest.raises(PriceBookError) as caught:
        parse_pricebook(data, source="prices.toml")
    text = str(caught.value)
    assert "model[0].fine_tuned_price[0]: a `priority` row prices inference only" in text
    assert "price[1].effective" not in text  # a flex row before the standard one is fine


def _book(extra: str) -> dict:
    import tomllib

    return tomllib.loads(f"""
[[model]]
name = "m-1"
encoding = "o200k_base"
  [[model.price]]
  effective = 2024-06-01
  input = "1"
  output = "2"
{extra}""")


def test_prices_list_and_show_tiers(cli):
    listed = json.loads(cli("prices", "list", "--format", "json").stdout)["rows"]
    o4 = {r["tier"]: r for r in listed if r["model"] == "o4-mini-2025-04-16"}
    assert set(o4) == {"standard", "flex", "priority"}
    assert o4["flex"]["input"] == "0.55" and o4["priority"]["output"] == "8.00"
    mini = {r["tier"]: r for r in listed if r["model"] == "gpt-4o-mini-2024-07-18"}
    assert mini["standard"]["ft_cached_input"] == "0.15"
    shown = cli("prices", "show", "o4-mini", "--tier", "flex", "--at", "2025-06-01", "-f", "json")
    doc = json.loads(shown.stdout)
    assert doc["tier"] == "flex" and doc["prices"]["output"] == "2.20"
    assert doc["tiers"] == ["standard", "flex", "priority"]
    missing = cli("prices", "show", "gpt-4.1", "--tier", "flex")
    assert missing.exit_code == 1 and "no price in the flex tier" in missing.stderr
