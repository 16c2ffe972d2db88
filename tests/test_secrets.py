"""One definition of a secret: what `mask` hides and keeps, and every place that uses it
(config warnings, a base URL with credentials, `status`, alert delivery errors, logs)."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select
from sync_helpers import NOW
from test_budgets_alerts import NOW as ALERT_NOW
from test_budgets_alerts import seed_85_percent, write_budgets

from ledger.errors import DeliveryError, SettingsError, SourceError
from ledger.secrets import MaskingFilter, has_credentials, holds_secret, mask

MASKED = [
    # OpenAI keys, any length, their kind kept
    ("sk-a", "sk-***"),
    ("key sk-abc.", "key sk-***."),
    ("sk-proj-abc123XYZ", "sk-proj-***"),
    ("sk-admin-0123456789abcdef", "sk-admin-***"),
    ("sk-svcacct-Zz9_-", "sk-svcacct-***"),
    ("rk-live-abc", "rk-***"),
    ('{"key":"sk-abc"}', '{"key":"sk-***"}'),
    ("Incorrect API key provided: sk-adm****9a9a.", "Incorrect API key provided: sk-***."),
    # bearer tokens and authorization headers
    ("Bearer my-secret.token", "Bearer ***"),
    ("Authorization: Bearer xyz", "Authorization: Bearer ***"),
    ('"authorization": "Basic dXNlcjpw"', '"authorization": "Basic ***"'),
    ("x-api-key: 0123abcd", "x-api-key: ***"),
    # URL userinfo, any scheme
    ("postgresql://u:pw@db.internal/ledger", "postgresql://u:***@db.internal/ledger"),
    ("cannot open postgresql://u:p@ss@h:5432/x.", "cannot open postgresql://u:***@h:5432/x."),
    ("http://u:key@proxy.example.com/v1", "http://u:***@proxy.example.com/v1"),
    ("smtp://user:pw@", "smtp://user:***@"),
    ("https://ghp0token@github.com/x", "https://***@github.com/x"),
    ("http://sk-abc:pw@h", "http://sk-***:***@h"),
    # webhook URLs
    ("https://hooks.slack.com/services/T0/B0/abcdef", "https://hooks.slack.com/***"),
    ("see https://hooks.slack.com/services/T0/B0/x.", "see https://hooks.slack.com/***."),
    ("https://example.com/hooks/a1b2c3d4e5f6a7b8c9d0", "https://example.com/***"),
    ("https://example.com/hook?token=abc&x=1", "https://example.com/hook?token=***&x=1"),
    ("https://e.com/h?sig=abc;api_key=k", "https://e.com/h?sig=***;api_key=***"),
    ("https://x.com/cb#access_token=abc", "https://x.com/cb#access_token=***"),
    ("http://h/x?api=sk-abc", "http://h/x?api=sk-***"),
]

KEPT = [
    "ft:gpt-4o-mini:acme:sk-team:abc",  # a model name: its suffix is a name the user chose
    "ft:gpt-4o-mini-2024-07-18:acme:support:A1b2C3:ckpt-step-88",
    "proj_abc",
    "task-1, risk-free work-item, disk-2",
    "sk-",
    "http://127.0.0.1:9000/hook",
    "http://127.0.0.1:9000/CANARY-ops-7d1c",
    "https://example.com/h/abc",
    "https://example.com/hook?token=",
    "https://hooks.slack.com/services/",
    "smtp://alerts@mail.example.com:25",
    "postgresql://ledger@db/ledger",
    "sqlite:////tmp/pytest-of-me/test_the_canary_never0/ledger.db",
    "GET /v1/organization/usage/completions?start_time=1&page=page_AAAA1111bbbb2222",
]


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_mask_hides_every_secret_and_keeps_enough_to_tell_what_it_was(text, masked):
    assert mask(text) == masked
    assert holds_secret(text)
    assert mask(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize("text", KEPT)
def test_mask_keeps_what_is_not_secret(text):
    assert mask(text) == text
    assert not holds_secret(text)


def test_known_secrets_are_masked_whatever_their_shape():
    assert mask("the key hunter2-XYZ was refused", ["hunter2-XYZ", ""]) == (
        "the key *** was refused"
    )


def test_credentials_in_a_url_are_userinfo_or_a_secret_parameter_not_a_long_path():
    assert has_credentials("http://u:key@host")
    assert has_credentials("https://host/v1?api_key=abc")
    assert not has_credentials("http://127.0.0.1:9000/v1")
    # an AI gateway's account id is not a credential, though logs mask it
    gateway = "https://gateway.ai.cloudflare.com/v1/023e105f4ecef8ad9ca31a8372d0c353/gw/openai"
    assert not has_credentials(gateway)


def test_the_masking_filter_masks_messages_and_tracebacks():
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET %s", ("http://u:k@h/",), None
    )
    try:
        raise ValueError("Bearer abc123")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "GET http://u:***@h/"
    assert record.exc_text and "Bearer ***" in record.exc_text and "abc123" not in record.exc_text


# --- the config-file warning -------------------------------------------------------------

BUDGETS = """
[[channel]]
name = "ops"
type = "{kind}"
{line}

[[budget]]
name = "b"
amount = "5"
channels = ["ops"]
"""


@pytest.mark.parametrize(
    ("kind", "line", "warns"),
    [
        ("slack", 'url = "https://hooks.slack.com/services/T0/B0/abcdef"', True),
        ("webhook", 'url = "https://u:pw@example.com/hook"', True),
        ("webhook", 'url = "https://example.com/hook?token=abc"', True),
        ("webhook", 'url = "http://127.0.0.1:9000/hook"', False),
        ("webhook", 'url = "${OPS_HOOK}"', False),
        ("webhook", 'url = "https://hooks.slack.com/services/${SLACK_PATH}"', False),
    ],
    ids=["slack", "userinfo", "token-query", "loopback", "var", "var-in-slack-url"],
)
def test_a_readable_budgets_toml_warns_only_when_it_holds_a_secret(
    engine, cli, config_dir, kind, line, warns
):
    path = config_dir / "budgets.toml"
    path.write_text(BUDGETS.format(kind=kind, line=line), encoding="utf-8")
    path.chmod(0o644)
    shown = cli("budgets", "status")
    assert shown.exit_code == 0, shown.stderr
    assert ("readable by other users" in shown.stderr) is warns
    assert "abcdef" not in shown.stderr and "pw@" not in shown.stderr


def test_an_email_channel_with_a_literal_smtp_password_warns(engine, cli, config_dir):
    path = config_dir / "budgets.toml"
    line = 'to = ["a@example.com"]\nfrom = "ledger@example.com"\n'
    line += 'smtp_url = "smtp://alerts:hunter2@mail.example.com:25"'
    path.write_text(BUDGETS.format(kind="email", line=line), encoding="utf-8")
    path.chmod(0o644)
    shown = cli("budgets", "status")
    assert "readable by other users" in shown.stderr
    path.write_text(BUDGETS.format(kind="email", line=line.replace("hunter2", "${PW}")))
    assert "readable by other users" not in cli("budgets", "status").stderr


# --- a base URL with credentials ---------------------------------------------------------


def test_a_base_url_with_credentials_in_ledger_toml_is_refused(cli, config_dir):
    path = config_dir / "ledger.toml"
    path.write_text('[openai]\nbase_url = "http://u:s3cret@127.0.0.1:9/v1"\n', "utf-8")
    path.chmod(0o600)
    result = cli("poll", "--no-alerts")
    assert result.exit_code == 1
    assert f"{path}: openai.base_url: must not carry credentials" in result.stderr
    assert "s3cret" not in result.stderr


def test_a_base_url_with_credentials_in_the_environment_is_refused(
    engine, cli, monkeypatch, config_dir
):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://u:s3cret@127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-test")
    result = cli("poll", "--no-alerts")
    assert result.exit_code == 1
    assert (
        "OPENAI_BASE_URL: must not carry credentials (http://u:***@127.0.0.1:9/v1)" in result.stderr
    )
    assert "s3cret" not in result.stderr
    assert cli("status").exit_code == 0  # reading the ledger needs no base URL


def test_the_source_refuses_a_base_url_with_credentials(monkeypatch):
    from ledger.sources.openai import OpenAISource

    with pytest.raises(SettingsError, match=r"base_url: .*u:\*\*\*@h") as refused:
        OpenAISource(admin_key="sk-admin-x", base_url="http://u:s3cret@h/v1")
    assert "s3cret" not in str(refused.value)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://h/v1?api_key=s3cret")
    with pytest.raises(SettingsError, match="OPENAI_BASE_URL") as refused:
        OpenAISource(admin_key="sk-admin-x")
    assert "s3cret" not in str(refused.value)


# --- status and alerts ---------------------------------------------------------------------


def test_status_shows_a_masked_last_error(engine, book, cli):
    from ledger.config_file import LedgerConfig
    from ledger.store.tables import Watermark
    from ledger.sync import USAGE_SOURCE, SourceSpec, poll_sources

    def failing() -> None:
        raise SourceError("proxy postgresql://u:pw1@db refused sk-proj-abc Bearer t0k")

    poll_sources(
        engine, book, LedgerConfig(), [SourceSpec(USAGE_SOURCE, "usage", failing)], now=NOW
    )
    with engine.begin() as conn:  # a row written before masking was this thorough
        conn.execute(
            Watermark.__table__.insert().values(
                source="openai.old", last_error="see https://hooks.slack.com/services/T/B/x"
            )
        )
    rows = {r["source"]: r for r in json.loads(cli("status", "--format", "json").stdout)["rows"]}
    assert rows[USAGE_SOURCE]["last_error"] == (
        "proxy postgresql://u:***@db refused sk-proj-*** Bearer ***"
    )
    assert rows["openai.old"]["last_error"] == "see https://hooks.slack.com/***"


def test_an_alert_delivery_error_is_stored_masked(engine, book, config_dir, monkeypatch):
    import ledger.alerts
    from ledger.alerts import run_budget_check
    from ledger.settings import load_settings
    from ledger.store.tables import AlertDelivery

    def refuse(channel, alert, **_kw):
        raise DeliveryError("rejected by https://hooks.slack.com/services/T0/B0/s3cret")

    seed_85_percent(engine, book)
    monkeypatch.setenv("OPS_HOOK", "http://127.0.0.1:9/hook")
    write_budgets(config_dir, "http://127.0.0.1:9/hook")
    monkeypatch.setattr(ledger.alerts, "deliver", refuse)
    result = run_budget_check(engine, load_settings(), book, now=ALERT_NOW)
    assert result.failed and all("s3cret" not in (d.error or "") for d in result.failed)
    with engine.connect() as conn:
        stored = conn.execute(select(AlertDelivery.last_error)).scalars().all()
    assert stored and set(stored) == {"rejected by https://hooks.slack.com/***"}
