"""One project scheme: fees under the configured OpenAI project id, like usage;
usage without a project under "(no project)"."""

from __future__ import annotations

import json
import tomllib

import pytest
from sqlalchemy import select
from sync_helpers import NOW, sandbox, write_config

from ledger.config_file import parse_ledger_config
from ledger.errors import ConfigError
from ledger.store.tables import TrainingFee

PROJECT_IDS = {"proj_support", "proj_legal", "proj_research"}


def test_training_fees_are_attributed_to_the_configured_project_id(engine, book):
    with sandbox() as sb:
        sb.poll(engine, book)
    with engine.connect() as conn:
        projects = set(conn.execute(select(TrainingFee.project)).scalars())
    assert projects and projects <= PROJECT_IDS


def test_by_project_carries_ids_for_usage_and_fees(engine, cli, config_dir, monkeypatch):
    with sandbox() as sb:
        for k, v in sb.env.items():
            monkeypatch.setenv(k, v)
        write_config(config_dir, sb)
        polled = cli("poll", "--now", str(NOW), "--since", "2025-06-11", "--no-alerts")
        assert polled.exit_code == 0, polled.stderr
    month = "2025-06"
    by_project = cli("report", "monthly", "--month", month, "--by", "project", "-f", "json")
    doc = json.loads(by_project.stdout)
    assert {r["project"] for r in doc["rows"]} <= PROJECT_IDS
    assert sum(r["training_tokens"] for r in doc["rows"]) > 0
    focus = cli("export", "focus", "--month", month)
    assert focus.exit_code == 0, focus.stderr
    header, *lines = focus.stdout.splitlines()
    column = header.split(",").index("SubAccountId")
    assert {line.split(",")[column] for line in lines} <= PROJECT_IDS


def test_usage_without_a_project_shows_as_no_project(engine, cli, tmp_path):
    path = tmp_path / "u.csv"
    path.write_text(
        "start_time,end_time,model,num_model_requests,input_tokens,output_tokens\n"
        "1730419200,1730422800,gpt-4o-mini,1,1000,10\n",
        encoding="utf-8",
    )
    assert cli("import", "usage", str(path)).exit_code == 0
    doc = json.loads(
        cli("report", "monthly", "--month", "2024-11", "--by", "project", "-f", "json").stdout
    )
    assert [r["project"] for r in doc["rows"]] == ["(no project)"]


@pytest.mark.parametrize(
    ("value", "message"),
    [('"default"', "is not an OpenAI project id"), ("7", "is not an OpenAI project id")],
)
def test_project_id_is_validated(value, message):
    data = tomllib.loads(f'[[projects]]\nname = "a"\nkey_env = "K"\nid = {value}\n')
    with pytest.raises(ConfigError) as caught:
        parse_ledger_config(data, source="ledger.toml")
    assert "projects[0].id" in str(caught.value) and message in str(caught.value)
