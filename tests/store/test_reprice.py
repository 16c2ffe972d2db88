"""Usage of a model without a price is kept, flagged, and priced once a price exists."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from ledger.resources import bundled_config_dir
from ledger.store.tables import UsageEntry

HEADER = (
    "start_time,end_time,model,project_id,batch,num_model_requests,"
    "input_tokens,input_cached_tokens,output_tokens\n"
)
MODEL = "mystery-model"
# 800k uncached x $2 + 200k cached x $1 + 500k output x $8 = $5.80.
ROW = f"1730419200,1730422800,{MODEL},proj_a,false,2,1000000,200000,500000"
COST = "5.800000"
NO_FEES = {"fees_repriced": 0, "fees_still_unpriced": 0}
MYSTERY_PRICE = f"""
[[model]]
name = "{MODEL}"
encoding = "o200k_base"
  [[model.price]]
  effective = 2024-01-01
  input = "2.00"
  cached_input = "1.00"
  output = "8.00"
"""


def usage_csv(tmp_path: Path) -> Path:
    path = tmp_path / "usage.csv"
    path.write_text(HEADER + ROW + "\n", encoding="utf-8")
    return path


def add_price(config_dir: Path) -> None:
    bundled = (bundled_config_dir() / "prices.toml").read_text(encoding="utf-8")
    (config_dir / "prices.toml").write_text(bundled + MYSTERY_PRICE, encoding="utf-8")


def mystery_row(cli) -> dict:
    result = cli("report", "monthly", "--month", "2024-11", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    [row] = [r for r in doc["rows"] if r["model"] == MODEL]
    return {**row, "unpriced_models": doc["unpriced_models"]}


def key_sums(engine) -> list[tuple]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    func.sum(UsageEntry.requests),
                    func.sum(UsageEntry.input_tokens),
                    func.sum(UsageEntry.cached_tokens),
                    func.sum(UsageEntry.output_tokens),
                    func.sum(UsageEntry.cost_pico),
                    func.sum(UsageEntry.unpriced),
                    func.count(),
                ).group_by(UsageEntry.model, UsageEntry.bucket_start, UsageEntry.project_id)
            )
        )


def import_usage(cli, path: Path) -> dict:
    result = cli("import", "usage", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_unknown_model_is_kept_unpriced_with_null_costs(engine, cli, tmp_path):
    import_usage(cli, usage_csv(tmp_path))
    row = mystery_row(cli)
    assert row["priced"] is False and row["unpriced_models"] == [MODEL]
    assert row["usage_cost"] is None and row["total_cost"] is None
    assert row["input_tokens"] == 1_000_000
    assert key_sums(engine) == [(2, 1_000_000, 200_000, 500_000, None, 1, 1)]


def test_reprice_prices_the_key_once_a_price_exists(engine, cli, tmp_path, config_dir):
    import_usage(cli, usage_csv(tmp_path))
    before = cli("reprice", "--format", "json")
    assert json.loads(before.stdout)["rows"] == [
        {"model": MODEL, "keys_repriced": 0, "keys_still_unpriced": 1, **NO_FEES}
        | {"difference": "0.000000"}
    ]
    add_price(config_dir)
    first = cli("reprice", "--since", "2024-11-01", "--until", "2024-11-01", "--format", "json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["rows"] == [
        {"model": MODEL, "keys_repriced": 1, "keys_still_unpriced": 0, **NO_FEES}
        | {"difference": COST}
    ]
    row = mystery_row(cli)
    assert row["priced"] is True and row["unpriced_models"] == []
    assert row["usage_cost"] == COST and row["total_cost"] == COST
    # A base model prices as itself: its base-model cost is known now too, premium 0.
    assert row["base_model_cost"] == COST and row["premium"] == "0.000000"
    # Tokens unchanged, cost the full cost, flag summed back to 0: one correction entry.
    assert key_sums(engine) == [(2, 1_000_000, 200_000, 500_000, 5_800_000_000_000, 0, 2)]
    again = cli("reprice", "--format", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["rows"] == []
    assert key_sums(engine)[0][-1] == 2


def test_reprice_leaves_buckets_outside_the_range(engine, cli, tmp_path, config_dir):
    import_usage(cli, usage_csv(tmp_path))
    add_price(config_dir)
    outside = cli("reprice", "--since", "2024-11-02", "--format", "json")
    assert json.loads(outside.stdout)["rows"] == []
    assert mystery_row(cli)["priced"] is False
    table = cli("reprice", "--until", "2024-11-01")
    assert table.exit_code == 0 and "1 key(s) repriced" in table.stdout
    assert mystery_row(cli)["usage_cost"] == COST


def test_reimport_after_the_price_is_added_prices_the_key(engine, cli, tmp_path, config_dir):
    path = usage_csv(tmp_path)
    assert import_usage(cli, path)["unpriced_models"] == [MODEL]
    assert import_usage(cli, path)["entries_posted"] == 0  # still no price: nothing to do
    add_price(config_dir)
    repriced = import_usage(cli, path)
    assert repriced["entries_posted"] == 1 and repriced["unpriced_models"] == []
    assert import_usage(cli, path)["entries_posted"] == 0
    row = mystery_row(cli)
    assert row["priced"] is True and row["usage_cost"] == COST
    assert key_sums(engine) == [(2, 1_000_000, 200_000, 500_000, 5_800_000_000_000, 0, 2)]
    assert json.loads(cli("reprice", "--format", "json").stdout)["rows"] == []


def test_a_revised_unpriced_bucket_is_priced_in_full(engine, cli, tmp_path, config_dir):
    import_usage(cli, usage_csv(tmp_path))
    add_price(config_dir)
    revised = tmp_path / "revised.csv"
    revised.write_text(HEADER + ROW.replace(",500000", ",1000000") + "\n", encoding="utf-8")
    assert import_usage(cli, revised)["entries_posted"] == 1
    # The latest observation, priced in full: $1.80 + 1M output x $8 = $9.80.
    assert key_sums(engine) == [(2, 1_000_000, 200_000, 1_000_000, 9_800_000_000_000, 0, 2)]
    assert mystery_row(cli)["usage_cost"] == "9.800000"


def test_upgrade_flags_entries_posted_without_a_price(db_url):
    from sqlalchemy import text

    from ledger.store import migrate
    from ledger.store.engine import create_ledger_engine

    eng = create_ledger_engine(db_url)
    try:
        migrate.upgrade(eng, "0003")
        with eng.begin() as conn:
            for model, cost in ((MODEL, None), ("gpt-4o-mini", 7)):
                conn.execute(
                    text(
                        "INSERT INTO usage_entries (source, bucket_start, bucket_end, model, "
                        "project_id, api_key_id, user_id, batch, service_tier, revision, "
                        "requests, input_tokens, cached_tokens, output_tokens, cost_pico, "
                        "base_cost_pico, price_version, recorded_at) VALUES ('import', 0, 60, "
                        ":model, '', '', '', false, '', 1, 1, 1, 0, 1, :cost, NULL, 'v', 0)"
                    ),
                    {"model": model, "cost": cost},
                )
        migrate.upgrade(eng)
        with eng.connect() as conn:
            flags = dict(conn.execute(select(UsageEntry.model, UsageEntry.unpriced)).all())
        assert flags == {MODEL: 1, "gpt-4o-mini": 0}
    finally:
        eng.dispose()
