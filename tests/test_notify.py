"""Alert channels: webhook, Slack, email and log, and failures that never show the URL."""

from __future__ import annotations

import email
import json
import logging
from decimal import Decimal

import pytest
from alert_receivers import free_port, http_receiver, smtp_server

from ledger.budgets import Channel
from ledger.errors import DeliveryError
from ledger.notify import Alert, deliver

ALERT = Alert(
    budget="support-bot",
    period="2026-11",
    kind="actual",
    threshold=Decimal(80),
    amount=Decimal("500.00"),
    spend=Decimal("412.5"),
    forecast=Decimal("630.123456789"),
    scope={"models": ["ft:gpt-4o-mini-2024-07-18:acme:support:*"], "projects": ["proj_abc"]},
    idempotency_key="k" * 64,
)
CANARY = "CANARY-s3cr3t-7f1e"


def test_webhook_posts_the_payload_with_an_idempotency_key_header():
    with http_receiver() as rx:
        deliver(Channel("ops", "webhook", url=rx.url), ALERT)
    (request,) = rx.requests
    assert request.headers["Idempotency-Key"] == "k" * 64
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "budget": "support-bot",
        "period": "2026-11",
        "kind": "actual",
        "threshold": 80,
        "amount": "500.000000",
        "spend": "412.500000",
        "forecast": "630.123457",
        "scope": {
            "models": ["ft:gpt-4o-mini-2024-07-18:acme:support:*"],
            "projects": ["proj_abc"],
        },
        "idempotency_key": "k" * 64,
        "currency": "USD",
        "evaluated_at": None,
        "top_models": [],
        "unpriced_models": [],
    }


def test_fractional_threshold_and_missing_forecast_in_payload():
    alert = Alert(**{**ALERT.__dict__, "threshold": Decimal("87.5"), "forecast": None})
    assert alert.payload()["threshold"] == 87.5
    assert alert.payload()["forecast"] is None


def test_slack_gets_a_readable_sentence():
    with http_receiver() as rx:
        deliver(Channel("team", "slack", url=rx.url), ALERT)
    body = rx.requests[0].json()
    assert list(body) == ["text"]
    assert body["text"] == (
        "Budget support-bot is at 82.5 % of $500.00 in 2026-11 (threshold 80 %): "
        "spent $412.50, forecast $630.12.\n"
        "Scope: ft:gpt-4o-mini-2024-07-18:acme:support:*; proj_abc."
    )


def test_alert_text_names_top_and_unpriced_models_and_links_to_the_dashboard():
    alert = Alert(
        **{
            **ALERT.__dict__,
            "spend": Decimal("615"),
            "evaluated_at": 1_790_000_000,
            "top_models": (("ft:a", Decimal("400")), ("ft:b", Decimal("1234.5"))),
            "unpriced_models": ("mystery",),
            "link": "https://ledger.example/budgets",
        }
    )
    text = alert.text()
    assert text.startswith("Budget support-bot is at 123 % of $500.00 in 2026-11")
    assert "Top models: ft:a $400.00, ft:b $1,234.50." in text
    assert "Unpriced models (their cost is not counted): mystery." in text
    assert text.endswith("Details: https://ledger.example/budgets")
    assert alert.subject() == (
        "[ftledger] support-bot: spend at 123 % of $500.00 (2026-11, threshold 80 %)"
    )
    assert alert.payload()["evaluated_at"] == "2026-09-21T14:13:20Z"


def test_forecast_alert_text_says_forecast():
    alert = Alert(**{**ALERT.__dict__, "kind": "forecast", "threshold": Decimal(100)})
    assert alert.text().startswith(
        "Budget support-bot is forecast at 126 % of $500.00 in 2026-11 (threshold 100 %): "
        "forecast $630.12, spent so far $412.50."
    )


def test_http_error_and_refused_connection_never_show_the_url():
    with (
        http_receiver(fail_first=1, path=f"/hooks/{CANARY}") as rx,
        pytest.raises(DeliveryError) as failed,
    ):
        deliver(Channel("ops", "webhook", url=rx.url), ALERT)
    assert str(failed.value) == "webhook channel 'ops': HTTP 500"
    url = f"http://127.0.0.1:{free_port()}/hooks/{CANARY}"
    with pytest.raises(DeliveryError) as refused:
        deliver(Channel("ops", "webhook", url=url), ALERT)
    assert str(refused.value) == "webhook channel 'ops': connection refused"
    for exc in (failed.value, refused.value):
        assert CANARY not in repr(exc) and exc.__cause__ is None and exc.__suppress_context__


def test_log_channel_writes_one_json_line(caplog):
    with caplog.at_level(logging.INFO, logger="ledger.alerts"):
        deliver(Channel("journal", "log"), ALERT)
    (record,) = caplog.records
    line = json.loads(record.getMessage())
    assert line["event"] == "budget_alert"
    assert line["budget"] == "support-bot" and line["threshold"] == 80


def test_email_goes_through_smtp_with_login():
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    with smtp_server(authenticator=authenticator, auth_require_tls=False) as (port, received):
        channel = Channel(
            "cfo",
            "email",
            to=("cfo@example.com", "fin@example.com"),
            smtp_url=f"smtp://alerts%40acme:p%3Ass@127.0.0.1:{port}",
            sender="ledger@acme.test",
        )
        deliver(channel, ALERT)
    assert logins == [(b"alerts@acme", b"p:ss")]
    (envelope,) = received
    assert envelope.rcpt_tos == ["cfo@example.com", "fin@example.com"]
    message = email.message_from_bytes(envelope.content)
    assert " ".join(message["Subject"].split()) == (
        "[ftledger] support-bot: spend at 82.5 % of $500.00 (2026-11, threshold 80 %)"
    )
    assert message["Message-ID"].strip() == f"<{'k' * 64}@ftledger>"
    body, attachment = message.get_payload()
    assert "Budget support-bot is at 82.5 % of $500.00" in body.get_payload()
    assert "{" not in body.get_payload()  # readable text; the JSON is an attachment
    assert json.loads(attachment.get_payload(decode=True))["budget"] == "support-bot"


def test_starttls_is_required_when_asked_for():
    with smtp_server() as (port, received):
        for url in (
            f"smtp+starttls://127.0.0.1:{port}",
            f"smtp://127.0.0.1:{port}?starttls=1",
        ):
            channel = Channel("cfo", "email", to=("a@b.c",), smtp_url=url)
            with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
                deliver(channel, ALERT)
    assert received == []


def test_email_to_a_dead_server_names_the_channel_only():
    url = f"smtp://{CANARY}:pw@127.0.0.1:{free_port()}"
    with pytest.raises(DeliveryError) as failed:
        deliver(Channel("cfo", "email", to=("a@b.c",), smtp_url=url), ALERT)
    assert str(failed.value) == "email channel 'cfo': connection refused"
