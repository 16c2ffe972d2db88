"""Alert channels: webhook (JSON POST), Slack incoming webhook, email (SMTP) and log.

Every channel gets the same Alert; a channel that does not accept it raises
DeliveryError, whose message names the channel and what went wrong but never its URL,
address or credentials. HTTP goes through the standard library with a timeout and
without following redirects (a redirect is a failure: the body would be dropped).

Each attempt has two limits: `timeout` per socket operation, and the channel's
`deadline_seconds` for the whole attempt, enforced by a ledger.deadline.SocketWatchdog
that shuts the socket down, so a server trickling its answer a byte at a time fails
the attempt on time (it is retried at a later check) instead of stalling the check.
A shutdown request (serve's SIGTERM) ends an attempt in flight the same way.

SMTP URLs: smtp://user:password@host:port (plain, port 25), smtp+starttls://... or
smtp://...?starttls=1 (STARTTLS, port 587; refused if the server does not offer it),
smtps://... (TLS from the start, port 465). User and password are percent-decoded.
"""

from __future__ import annotations

import http.client
import json
import logging
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ledger.budgets import Channel
from ledger.deadline import Deadline, SocketWatchdog
from ledger.errors import DeliveryError
from ledger.money import display
from ledger.reports.text import usd
from ledger.secrets import mask

TIMEOUT_SECONDS = 10.0
USER_AGENT = "ftledger-alerts/1"
log = logging.getLogger("ledger.alerts")


@dataclass(frozen=True)
class Alert:
    """What an alert says; the same content on every retry."""

    budget: str
    period: str
    kind: str  # actual | forecast
    threshold: Decimal  # percent
    amount: Decimal
    spend: Decimal
    forecast: Decimal | None
    scope: dict[str, list[str]] = field(default_factory=dict)
    idempotency_key: str = ""
    detail: dict[str, Any] | None = None  # kind "anomaly": baseline and drivers
    currency: str = "USD"
    evaluated_at: int | None = None  # unix seconds of the decision
    top_models: tuple[tuple[str, Decimal], ...] = ()  # the biggest spenders in scope
    unpriced_models: tuple[str, ...] = ()
    link: str | None = None  # [http] public_url, when the service has one
    # Every (kind, threshold) this one message announces, when a check crossed several
    # at once (Slack and email send one message for them; empty: just this one).
    crossed: tuple[tuple[str, Decimal], ...] = ()

    @property
    def used_percent(self) -> Decimal | None:
        """What the figure that crossed the threshold is, in percent of the amount."""
        figure = self.forecast if self.kind == "forecast" else self.spend
        if figure is None or not self.amount:
            return None
        return figure * 100 / self.amount

    def payload(self) -> dict[str, Any]:
        """The webhook body: decimal strings for money, a number for the threshold."""
        if self.kind == "anomaly":
            return self._anomaly_payload()
        threshold: int | float = (
            int(self.threshold)
            if self.threshold == self.threshold.to_integral_value()
            else float(self.threshold)
        )
        return {
            "budget": self.budget,
            "period": self.period,
            "kind": self.kind,
            "threshold": threshold,
            "amount": display(self.amount),
            "spend": display(self.spend),
            "forecast": display(self.forecast),
            "scope": self.scope,
            "idempotency_key": self.idempotency_key,
            "currency": self.currency,
            "evaluated_at": _iso(self.evaluated_at),
            "top_models": [{"model": m, "spend": display(v)} for m, v in self.top_models],
            "unpriced_models": list(self.unpriced_models),
            **({"link": self.link} if self.link else {}),
        }

    def _thresholds(self) -> str:
        """`threshold 80 %`, or every threshold one message announces: `thresholds 50 %,
        80 % and forecast 90 %`."""
        if len(self.crossed) < 2:
            return f"threshold {self.threshold.normalize():f} %"
        actual = [f"{t.normalize():f} %" for k, t in self.crossed if k == "actual"]
        forecast = [f"{t.normalize():f} %" for k, t in self.crossed if k == "forecast"]
        parts = [", ".join(actual)] if actual else []
        if forecast:
            parts.append("forecast " + ", ".join(forecast))
        return f"thresholds {' and '.join(parts)}"

    def _anomaly_payload(self) -> dict[str, Any]:
        """A spend anomaly: `budget` names the [[anomaly]], `period` is the day, `amount`
        the expected spend; the detail carries the limit and the driving models."""
        detail = self.detail or {}
        return {
            "anomaly": self.budget,
            "kind": "anomaly",
            "day": self.period,
            "period": self.period,
            "spend": display(self.spend),
            "baseline": display(self.amount),
            "limit": detail.get("limit"),
            "method": detail.get("method"),
            "sensitivity": detail.get("sensitivity"),
            "history_days": detail.get("history_days"),
            "models": detail.get("models", []),
            "scope": self.scope,
            "idempotency_key": self.idempotency_key,
            "currency": self.currency,
            "evaluated_at": _iso(self.evaluated_at),
        }

    def subject(self) -> str:
        """The email subject: budget, the actual percent, the amount, the period."""
        if self.kind == "anomaly":
            return f"[ftledger] {self.budget}: spend anomaly on {self.period}"
        what = "forecast" if self.kind == "forecast" else "spend"
        return (
            f"[ftledger] {self.budget}: {what} at {_pct(self.used_percent)} of "
            f"{usd(self.amount, self.currency)} ({self.period}, {self._thresholds()})"
        )

    def text(self) -> str:
        """Readable lines, for Slack and email: what crossed, by how much, where to look."""
        if self.kind == "anomaly":
            return self._anomaly_text()
        amount = usd(self.amount, self.currency)
        used = _pct(self.used_percent)
        threshold = self._thresholds()
        if self.kind == "forecast":
            head = (
                f"Budget {self.budget} is forecast at {used} of {amount} in {self.period} "
                f"({threshold}): forecast {usd(self.forecast, self.currency)}, "
                f"spent so far {usd(self.spend, self.currency)}."
            )
        else:
            forecast = (
                f", forecast {usd(self.forecast, self.currency)}"
                if self.forecast is not None
                else ""
            )
            head = (
                f"Budget {self.budget} is at {used} of {amount} in {self.period} "
                f"({threshold}): spent {usd(self.spend, self.currency)}{forecast}."
            )
        models = ", ".join(self.scope.get("models", [])) or "all models"
        projects = ", ".join(self.scope.get("projects", [])) or "all projects"
        teams = "; teams " + ", ".join(self.scope["teams"]) if self.scope.get("teams") else ""
        lines = [head, f"Scope: {models}; {projects}{teams}."]
        if self.top_models:
            top = ", ".join(f"{m} {usd(v, self.currency)}" for m, v in self.top_models)
            lines.append(f"Top models: {top}.")
        if self.unpriced_models:
            lines.append(
                "Unpriced models (their cost is not counted): "
                + ", ".join(self.unpriced_models)
                + "."
            )
        if self.link:
            lines.append(f"Details: {self.link}")
        return "\n".join(lines)

    def _anomaly_text(self) -> str:
        drivers = (self.detail or {}).get("models", [])
        head = (
            f"Spend anomaly {self.budget} on {self.period}: spent "
            f"{usd(self.spend, self.currency)}, against a usual {usd(self.amount, self.currency)}."
        )
        driven = ", ".join(
            f"{d['model']} {usd(Decimal(d['spend']), self.currency)}"
            f" (usually {usd(Decimal(d['baseline']), self.currency)})"
            for d in drivers
        )
        models = ", ".join(self.scope.get("models", [])) or "all models"
        projects = ", ".join(self.scope.get("projects", [])) or "all projects"
        return (
            head
            + (f"\nDriven by: {driven}." if driven else "")
            + (f"\nScope: {models}; {projects}.")
        )


def _pct(value: Decimal | None) -> str:
    """`123 %` for whole percents, else one decimal: `87.5 %`."""
    if value is None:
        return "n/a"
    rounded = value.quantize(Decimal("0.1"))
    text = f"{rounded:f}".removesuffix(".0")
    return f"{text} %"


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    from ledger.period import iso_utc

    return iso_utc(seconds)


def deliver(
    channel: Channel,
    alert: Alert,
    *,
    timeout: float = TIMEOUT_SECONDS,
    deadline: float | None = None,
) -> None:
    """Send `alert` to `channel`; DeliveryError when the channel did not accept it.

    `timeout` bounds each socket operation, `deadline` (default: the channel's
    deadline_seconds) the whole attempt."""
    if not channel.resolved:
        raise DeliveryError(f"channel {channel.name!r}: its secrets were not loaded")
    if channel.disabled:
        raise DeliveryError(f"channel {channel.name!r} is disabled: {channel.disabled}")
    limit = Deadline(channel.deadline_seconds if deadline is None else deadline)
    if channel.type == "webhook":
        _post_json(channel, alert.payload(), alert.idempotency_key, timeout, limit)
    elif channel.type == "slack":
        _post_json(channel, {"text": alert.text()}, alert.idempotency_key, timeout, limit)
    elif channel.type == "email":
        _send_email(channel, alert, timeout, limit)
    elif channel.type == "log":
        log.warning(mask(json.dumps({"event": "budget_alert", **alert.payload()}, sort_keys=True)))
    else:
        raise DeliveryError(f"channel {channel.name!r}: unknown type {channel.type!r}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _watched_handlers(dog: SocketWatchdog) -> list[urllib.request.BaseHandler]:
    """urllib's HTTP(S) handlers, with every connection's socket given to `dog`."""

    def watched(base: type[http.client.HTTPConnection]) -> Any:
        class Watched(base):  # type: ignore[valid-type,misc]
            def connect(self) -> None:
                super().connect()
                sock = self.sock  # urllib drops `self.sock` once the headers are in
                dog.watch(lambda: sock)

        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(watched(http.client.HTTPSConnection), req)

    return [HTTP(), HTTPS()]


def _post_json(
    channel: Channel, body: dict[str, Any], key: str, timeout: float, deadline: Deadline
) -> None:
    assert channel.url is not None
    request = urllib.request.Request(
        channel.url,
        data=json.dumps(body).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "User-Agent": USER_AGENT,
        },
    )
    where = f"{channel.type} channel {channel.name!r}"
    with SocketWatchdog(deadline) as dog:
        opener = urllib.request.build_opener(_NoRedirect, *_watched_handlers(dog))
        try:
            _open(opener, request, where, max(min(timeout, deadline.remaining()), 0.001))
        except DeliveryError:
            if dog.fired:
                raise DeliveryError(f"{where}: {dog.reason}") from None
            raise


def _open(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    where: str,
    timeout: float,
) -> None:
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DeliveryError(f"{where}: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"{where}: {_reason(exc.reason)}") from None
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise DeliveryError(f"{where}: {_reason(exc)}") from None
    except http.client.HTTPException as exc:  # a cut or malformed answer
        raise DeliveryError(f"{where}: {type(exc).__name__}") from None


def _reason(reason: object) -> str:
    """A failure's kind without its text: socket and SSL messages may quote the host."""
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.errno is not None:
        return f"{type(reason).__name__} (errno {reason.errno})"
    return type(reason).__name__ if isinstance(reason, BaseException) else "connection failed"


def _smtp_class(base: type[smtplib.SMTP], dog: SocketWatchdog) -> Any:
    """`base` with its socket given to `dog` as soon as it is connected."""

    class Watched(base):  # type: ignore[valid-type,misc]
        def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
            sock: socket.socket = super()._get_socket(host, port, timeout)
            dog.watch(lambda: getattr(self, "sock", None) or sock)  # STARTTLS replaces it
            return sock

    return Watched


def _send_email(channel: Channel, alert: Alert, timeout: float, deadline: Deadline) -> None:
    where = f"email channel {channel.name!r}"
    with SocketWatchdog(deadline) as dog:
        try:
            _send_smtp(channel, alert, max(min(timeout, deadline.remaining()), 0.001), dog)
        except DeliveryError:
            if dog.fired:
                raise DeliveryError(f"{where}: {dog.reason}") from None
            raise


def _send_smtp(channel: Channel, alert: Alert, timeout: float, dog: SocketWatchdog) -> None:
    assert channel.smtp_url is not None
    parts = urlsplit(channel.smtp_url)
    query = parse_qs(parts.query)
    starttls = parts.scheme == "smtp+starttls" or query.get("starttls", ["0"])[-1] in (
        "1",
        "true",
    )
    implicit_tls = parts.scheme == "smtps"
    port = parts.port or (465 if implicit_tls else 587 if starttls else 25)
    message = EmailMessage()
    message["Subject"] = alert.subject()
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Message-ID"] = f"<{alert.idempotency_key}@ftledger>"
    message["X-Idempotency-Key"] = alert.idempotency_key
    message.set_content(
        alert.text() + "\n\n-- \nftledger budget alert " + alert.idempotency_key + "\n"
    )
    message.add_attachment(
        json.dumps(alert.payload(), indent=2, sort_keys=True) + "\n",
        subtype="json",
        filename="alert.json",
    )
    where = f"email channel {channel.name!r}"
    context = ssl.create_default_context()
    try:
        smtp: smtplib.SMTP
        if implicit_tls:
            smtp = _smtp_class(smtplib.SMTP_SSL, dog)(
                parts.hostname or "", port, timeout=timeout, context=context
            )
        else:
            smtp = _smtp_class(smtplib.SMTP, dog)(parts.hostname or "", port, timeout=timeout)
        with smtp:
            if starttls:
                smtp.starttls(context=context)
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{where}: the server does not offer STARTTLS") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"{where}: login refused (SMTP {exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryError(f"{where}: every recipient was refused") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"{where}: SMTP {exc.smtp_code}") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}") from None
    except TimeoutError:
        raise DeliveryError(f"{where}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise DeliveryError(f"{where}: {_reason(exc)}") from None
