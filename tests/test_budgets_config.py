"""budgets.toml: every problem reported with its key path, secrets read from the environment."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ledger.budgets import load_budgets
from ledger.errors import BudgetConfigError
from ledger.resources import bundled_config_dir

CANARY = "https://hooks.example.com/CANARY-s3cr3t-7f1e"


def problems(path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BudgetConfigError) as failed:
        load_budgets(path, env=env or {})
    return [str(p).removeprefix(f"{path}: ") for p in failed.value.problems]


def test_bundled_file_is_valid_and_defines_nothing():
    config = load_budgets(bundled_config_dir() / "budgets.toml", env={})
    assert config.budgets == () and config.channels == {}


def test_example_file_has_the_issue_shape():
    env = {"OPS_WEBHOOK_URL": CANARY, "SLACK_WEBHOOK_URL": CANARY, "SMTP_URL": "smtp://h:25"}
    config = load_budgets(bundled_config_dir() / "budgets.example.toml", env=env)
    support = config.budgets[0]
    assert support.name == "support-bot" and support.amount == Decimal("500.00")
    assert support.thresholds == (50, 80, 100) and support.forecast_thresholds == (100,)
    assert support.channels == ("ops", "cfo") and config.channels["ops"].url == CANARY
    assert config.channels["cfo"].to == ("cfo@example.com",)


def test_every_problem_is_reported_with_its_key_path(tmp_path):
    found = problems(
        tmp_path / "budgets.toml",
        """
        colour = "blue"
        [[channel]]
        name = "ops"
        type = "pager"
        [[channel]]
        name = "hook"
        type = "webhook"
        url = "ftp://example.com/x"
        secret = "x"
        [[channel]]
        name = "mail"
        type = "email"
        to = ["nobody"]
        smtp_url = "imap://h"
        [[channel]]
        name = "hook"
        type = "log"
        [[budget]]
        name = "a"
        amount = 500.0
        period = "yearly"
        models = "ft:*"
        thresholds = [50, 0, 50, "lots"]
        channels = ["hook", "nope"]
        size = 3
        [[budget]]
        name = "b"
        amount = "-1"
        period = "daily"
        forecast_thresholds = [100]
        [[budget]]
        name = "c"
        amount = "1.0000000000001"
        thresholds = []
        channels = []
        """,
    )
    assert found == [
        "colour: unknown key",
        "channel[0].type: 'pager' is not one of webhook, slack, email, log",
        "channel[1].secret: unknown key for a webhook channel",
        "channel[1].url: must be an http:// or https:// URL",
        "channel[2].smtp_url: must start with smtp://, smtp+starttls://, smtps://",
        "channel[2].to[0]: is not an email address",
        "budget[0].size: unknown key",
        'budget[0].amount: 500.0 is a float; write amounts as decimal strings, e.g. "500.00"',
        "budget[0].period: 'yearly' is not one of monthly, weekly, daily",
        "budget[0].models: must be a list of model name patterns",
        "budget[0].thresholds[1]: 0 must be greater than 0 and at most 10000",
        "budget[0].thresholds[2]: 50 is listed twice",
        "budget[0].thresholds[3]: 'lots' is not a number",
        "budget[0].channels[1]: no channel named 'nope'",
        "budget[1].amount: -1 must be greater than 0",
        "budget[1].forecast_thresholds: a daily budget has no forecast "
        "(a forecast needs 3 days of data in the period)",
        "budget[1].channels: is required (names of [[channel]] tables)",
        "budget[2].amount: 1.0000000000001 has more than 12 decimal places",
        "budget[2]: has no thresholds and no forecast_thresholds: it would never alert",
        "budget[2].channels: is empty: name at least one [[channel]]",
    ]


def test_duplicate_names(tmp_path):
    found = problems(
        tmp_path / "budgets.toml",
        """
        [[channel]]
        name = "j"
        type = "log"
        [[channel]]
        name = "j"
        type = "log"
        [[budget]]
        name = "x"
        amount = "1"
        channels = ["j"]
        [[budget]]
        name = "x"
        amount = "2"
        channels = ["j"]
        """,
    )
    assert found == [
        "channel[1].name: 'j' is already defined",
        "budget[1].name: 'x' is already defined",
    ]


def test_environment_variables_fill_secrets_and_unset_ones_disable_their_channel(tmp_path, capsys):
    path = tmp_path / "budgets.toml"
    text = """
        [[channel]]
        name = "ops"
        type = "webhook"
        url = "${OPS_WEBHOOK_URL}"
        [[channel]]
        name = "cfo"
        type = "email"
        to = ["${CFO_EMAIL}"]
        smtp_url = "smtp://${SMTP_USER}:${SMTP_PASSWORD}@mail.example.com:587?starttls=1"
        """
    path.write_text(text, encoding="utf-8")
    partial = load_budgets(path, env={"SMTP_USER": "u", "SMTP_PASSWORD": ""})
    assert partial.channels["ops"].disabled == (
        "channel[0].url: environment variable OPS_WEBHOOK_URL is not set"
    )
    assert partial.channels["cfo"].disabled == (
        "channel[1].smtp_url: environment variable SMTP_PASSWORD is empty; "
        "channel[1].to[0]: environment variable CFO_EMAIL is not set"
    )
    warned = capsys.readouterr().err.splitlines()
    assert len(warned) == 2 and all("is disabled" in line for line in warned)
    assert "OPS_WEBHOOK_URL is not set: channel 'ops' is disabled" in warned[0]
    env = {
        "OPS_WEBHOOK_URL": CANARY,
        "CFO_EMAIL": "cfo@example.com",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "pw",
    }
    config = load_budgets(path, env=env)
    assert config.channels["ops"].disabled is None
    assert config.channels["ops"].url == CANARY
    assert config.channels["cfo"].smtp_url == "smtp://u:pw@mail.example.com:587?starttls=1"
    assert "CANARY" not in repr(config) and "pw" not in repr(config.channels["cfo"])
    # status and forecast read budgets without the secrets
    unresolved = load_budgets(path, env={}, resolve_secrets=False)
    assert unresolved.channels["ops"].resolved is False


def test_an_invalid_expanded_url_is_not_echoed(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text(
        '[[channel]]\nname = "ops"\ntype = "slack"\nurl = "${HOOK}"\n', encoding="utf-8"
    )
    with pytest.raises(BudgetConfigError) as failed:
        load_budgets(path, env={"HOOK": "CANARY-s3cr3t-7f1e"})
    assert str(failed.value) == (
        f"1 problem found:\n  {path}: channel[0].url: must be an http:// or https:// URL"
    )


def test_broken_toml_is_one_problem_with_the_file(tmp_path):
    path = tmp_path / "budgets.toml"
    path.write_text("[[budget]\n", encoding="utf-8")
    with pytest.raises(BudgetConfigError, match="not valid TOML"):
        load_budgets(path, env={})
