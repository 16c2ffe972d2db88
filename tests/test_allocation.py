"""Teams: allocation.toml rules, --by team, budgets scoped by team, FOCUS Tags and
BilledCost from the Costs API."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from reports_seed import FT, fee, post, ts, usage

from ledger import views
from ledger.alerts import budget_config, evaluate
from ledger.allocation import UNALLOCATED, Allocation, Team, parse_allocation
from ledger.budgets import Budget
from ledger.domain import CostObservation
from ledger.errors import AllocationError, BudgetConfigError
from ledger.period import Month
from ledger.settings import load_settings
from ledger.store.billed import mirror_costs

ALLOCATION = """
[[team]]
name = "support-prod"
projects = ["proj_a"]
api_keys = ["key_prod"]

[[team]]
name = "gpt-4o"
models = ["gpt-4o-*"]

[[team]]
name = "support"
projects = ["proj_a"]
"""
MONTH = Month(2024, 11)


def seed(engine, book) -> None:
    post(
        engine,
        book,
        usage(FT, "2024-11-01T00:00", inp=1_000_000, out=500_000, api_key="key_prod"),
        usage(FT, "2024-11-01T01:00", inp=2_000_000, api_key="key_dev"),
        usage("gpt-4o-2024-08-06", "2024-11-02T00:00", inp=1_000_000, api_key="key_prod"),
        usage(FT, "2024-11-03T00:00", inp=1_000_000, project="proj_b"),
    )
    fee(engine, book, "ftjob-1", FT, "2024-11-10T12:00", 1_000_000)


def test_first_match_wins_and_filters_combine():
    teams = parse_allocation(tomllib.loads(ALLOCATION), source="a.toml")
    assert teams.team_of(FT, "proj_a", "key_prod") == "support-prod"
    assert teams.team_of("gpt-4o-2024-08-06", "proj_a", "key_prod") == "support-prod"
    assert teams.team_of("gpt-4o-2024-08-06", "proj_b", "key_x") == "gpt-4o"
    assert teams.team_of(FT, "proj_a", "key_dev") == "support"
    assert teams.team_of(FT, "proj_a", None) == "support"  # a fee has no API key
    assert teams.team_of(FT, "proj_b", "") == UNALLOCATED


def test_allocation_problems_are_listed_with_key_paths():
    data = {"team": [{"name": "a", "models": "x*"}, {"name": "a"}, {"projects": []}], "x": 1}
    with pytest.raises(AllocationError) as caught:
        parse_allocation(data, source="allocation.toml")
    text = str(caught.value)
    for where in ("x: unknown key", "team[0].models: must be a list", "team[1].name: 'a' is al"):
        assert f"allocation.toml: {where}" in text
    assert "team[2].name: is required" in text


def test_by_team_splits_the_month_exactly(engine, book, cli, config_dir):
    seed(engine, book)
    (config_dir / "allocation.toml").write_text(ALLOCATION, encoding="utf-8")
    doc = json.loads(
        cli("report", "monthly", "--month", "2024-11", "--by", "team", "-f", "json").stdout
    )
    rows = {r["team"]: r for r in doc["rows"]}
    assert set(rows) == {"support-prod", "support", UNALLOCATED}
    assert rows["support"]["training_cost"] == "3.000000"  # the fee: project rule, no key
    total = sum(Decimal(r["total_cost"]) for r in doc["rows"])
    by_model = json.loads(cli("report", "monthly", "--month", "2024-11", "-f", "json").stdout)
    assert (
        total == Decimal(doc["totals"]["total_cost"]) == Decimal(by_model["totals"]["total_cost"])
    )


def test_without_teams_everything_is_unallocated(engine, book, cli):
    seed(engine, book)
    doc = json.loads(
        cli("report", "monthly", "--month", "2024-11", "--by", "team", "-f", "json").stdout
    )
    assert [r["team"] for r in doc["rows"]] == [UNALLOCATED]


def test_budget_scoped_by_team(engine, book):
    seed(engine, book)
    teams = Allocation((Team("support", projects=("proj_a",)),))
    at = datetime(2024, 12, 2, tzinfo=UTC)
    with engine.connect() as conn:
        support = evaluate(
            conn,
            Budget("s", Decimal(1), teams=("support",), period="monthly"),
            at,
            MONTH.period(),
            teams,
        )
        rest = evaluate(
            conn,
            Budget("r", Decimal(1), teams=(UNALLOCATED,), period="monthly"),
            at,
            MONTH.period(),
            teams,
        )
        org = evaluate(conn, Budget("o", Decimal(1), period="monthly"), at, MONTH.period())
    assert support.spend > 0 and rest.spend > 0 and support.spend + rest.spend == org.spend


def test_a_budget_naming_an_unknown_team_is_a_problem(config_dir):
    (config_dir / "budgets.toml").write_text(
        '[[channel]]\nname = "log"\ntype = "log"\n'
        '[[budget]]\nname = "b"\namount = "1"\nteams = ["nobody"]\nchannels = ["log"]\n',
        encoding="utf-8",
    )
    with pytest.raises(BudgetConfigError, match=r"budget\[0\]\.teams\[0\]: no team 'nobody'"):
        budget_config(load_settings())


def test_focus_tags_and_billed_cost(engine, book, cli, config_dir, tmp_path):
    seed(engine, book)
    (config_dir / "allocation.toml").write_text(ALLOCATION, encoding="utf-8")
    day = ts("2024-11-01T00:00")
    lines = {
        (day, "proj_a", "ft-gpt-4o-mini-2024-07-18, input", "usd"): CostObservation(
            day, day + 86400, "proj_a", "ft-gpt-4o-mini-2024-07-18, input", Decimal("1.00")
        )
    }
    with engine.begin() as conn:
        mirror_costs(conn, lines, MONTH.start, MONTH.end, now=day)
    out = tmp_path / "focus.csv"
    assert cli("export", "focus", "--month", "2024-11", "--output", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    first_day = [r for r in rows if r["ChargePeriodStart"].startswith("2024-11-01")]
    assert {r["Tags"] for r in first_day} == {'{"team": "support-prod"}', '{"team": "support"}'}
    assert sum(Decimal(r["BilledCost"]) for r in first_day) == Decimal("1.00")
    assert {r["x_BilledCostSource"] for r in first_day} == {"costs_api"}
    others = [r for r in rows if r not in first_day]
    assert all(
        r["BilledCost"] == r["ListCost"] and r["x_BilledCostSource"] == "list" for r in others
    )
    assert {r["ChargeFrequency"] for r in rows} == {"Usage-Based", "One-Time"}
    assert any(r["Tags"] == "{}" for r in rows)  # proj_b's spend is unallocated


def test_views_focus_rows_sum_per_team(engine, book):
    seed(engine, book)
    teams = Allocation((Team("support", projects=("proj_a",)),))
    with engine.connect() as conn:
        export = views.focus(conn, book, MONTH, allocation=teams)
        report = views.monthly(conn, book, MONTH, "team", allocation=teams)
    tagged = {}
    for row in export.rows:
        tagged[row["Tags"]] = tagged.get(row["Tags"], 0) + row["ListCost"]
    assert tagged['{"team": "support"}'] == next(
        r["total_cost"] for r in report.rows if r["team"] == "support"
    )
