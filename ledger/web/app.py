"""The HTTP face of `ftledger serve`: JSON API, dashboard, /metrics, /healthz, /readyz.

A Starlette app over the same functions the CLI calls (ledger.views, ledger.documents,
reports.documents): each JSON body is the document `ftledger ... --format json` prints,
in the one envelope. It writes nothing to the ledger. Handlers are plain functions that
Starlette runs in its thread pool, since the database calls block.

Auth: when the variable `[http] token_env` names is set, `/api/*`, the dashboard and
(with `metrics_auth`) `/metrics` need `Authorization: Bearer <token>`, or, for the
dashboard, the HttpOnly SameSite=Strict cookie the sign-in form sets. Comparisons are
constant-time (hmac.compare_digest); the cookie holds an HMAC of the token, not the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from ledger.errors import LedgerError, PricingError
from ledger.secrets import mask

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from ledger.config_file import LedgerConfig
    from ledger.period import Month
    from ledger.pricebook import PriceBook
    from ledger.settings import Settings
    from ledger.web.metrics import ServiceMetrics

log = logging.getLogger("ledger.web")

MAX_ESTIMATE_BYTES = 50 * 1024 * 1024  # POST /api/v1/estimate: larger bodies get 413
COOKIE = "ftledger_session"
_COOKIE_SALT = b"ftledger dashboard session v1"


@dataclass
class WebContext:
    """What the handlers need: the ledger, its settings and config, the token, metrics."""

    engine: Engine
    settings: Settings
    config: LedgerConfig
    token: str | None
    metrics: ServiceMetrics
    _book: PriceBook | None = field(default=None, repr=False)

    @property
    def book(self) -> PriceBook:
        if self._book is None:
            from ledger.pricebook import load_pricebook

            self._book = load_pricebook(self.settings.config_file("prices.toml"))
        return self._book

    @contextmanager
    def read(self) -> Iterator[Connection]:
        from ledger.store.engine import read_connection
        from ledger.store.errors import db_errors

        with db_errors("reading the ledger", self.engine.url), read_connection(self.engine) as c:
            yield c


class BadParameter(Exception):
    def __init__(self, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.parameter, self.message, self.status = parameter, message, status


def _json(document: Any, status: int = 200) -> Response:
    body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return Response(body, status, media_type="application/json")


def _error(status: int, message: str, **extra: Any) -> Response:
    return _json({"error": message, **extra}, status)


# --- auth -------------------------------------------------------------------------------


def _session(token: str) -> str:
    return hmac.new(token.encode(), _COOKIE_SALT, hashlib.sha256).hexdigest()


def authorized(request: Request, token: str | None, *, cookie: bool = False) -> bool:
    """Whether `request` carries the token (header; with `cookie`, the session cookie)."""
    if not token:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    if cookie:
        value = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(value.encode(), _session(token).encode())
    return False


def _unauthorized() -> Response:
    response = _error(401, "missing or wrong bearer token")
    response.headers["WWW-Authenticate"] = 'Bearer realm="ftledger"'
    return response


Handler = Callable[[Request], Response]


def api(ctx: WebContext, handler: Callable[[WebContext, Request], Response]) -> Handler:
    """An /api endpoint: token checked, parameters and ledger errors as JSON."""

    def endpoint(request: Request) -> Response:
        if not authorized(request, ctx.token):
            return _unauthorized()
        try:
            return handler(ctx, request)
        except BadParameter as exc:
            return _error(exc.status, exc.message, parameter=exc.parameter)
        except LedgerError as exc:
            log.error("%s %s failed: %s", request.method, request.url.path, _one_line(exc))
            return _error(503, _one_line(exc))

    return endpoint


def _one_line(exc: BaseException) -> str:
    """The error as one line (a config error's problems joined with "; "), masked."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        text = f"{lines[0]} " + "; ".join(lines[1:])
    else:
        text = lines[0] if lines else type(exc).__name__
    return mask(text)


# --- parameters -------------------------------------------------------------------------


def _month(request: Request, name: str = "month") -> Month:
    from ledger.period import Month

    value = request.query_params.get(name)
    if not value:
        return Month.current()
    try:
        return Month.parse(value)
    except ValueError as exc:
        raise BadParameter(name, f"{name}: {exc}") from None


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if not value:
        raise BadParameter(name, f"{name} is required")
    return value


# --- endpoints --------------------------------------------------------------------------


def monthly(ctx: WebContext, request: Request) -> Response:
    from ledger import views
    from ledger.reports.documents import monthly_document
    from ledger.reports.monthly import GROUP_BY_CHOICES

    month, by = _month(request), request.query_params.get("by", "model")
    if by not in GROUP_BY_CHOICES:
        raise BadParameter("by", f"by must be one of {', '.join(GROUP_BY_CHOICES)}")
    with ctx.read() as conn:
        report = views.monthly(conn, ctx.book, month, by)
        return _json(monthly_document(report, views.as_of(conn)))


def monthly_file(kind: str) -> Callable[[WebContext, Request], Response]:
    """The monthly report as CSV or the self-contained HTML page (dashboard downloads)."""

    def handler(ctx: WebContext, request: Request) -> Response:
        from ledger import views
        from ledger.reports.html import render_html
        from ledger.reports.render import render_csv

        month = _month(request)
        with ctx.read() as conn:
            report = views.monthly(conn, ctx.book, month)
            if kind == "html":
                return HTMLResponse(render_html(report, views.daily_chart(conn, month)))
        name = f"ftledger-{month}.csv"
        return Response(
            render_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return handler


def whatif(ctx: WebContext, request: Request) -> Response:
    from ledger import views
    from ledger.reports.documents import whatif_document

    month, model = _month(request), _required(request, "model")
    try:
        with ctx.read() as conn:
            result = views.whatif(conn, ctx.book, month, model)
            return _json(whatif_document(result, views.as_of(conn)))
    except PricingError as exc:
        raise BadParameter("model", _one_line(exc)) from None


def reconcile(ctx: WebContext, request: Request) -> Response:
    from ledger import views
    from ledger.reports.documents import reconcile_document

    month, text = _month(request), request.query_params.get("tolerance", "2")
    try:
        pct = Decimal(text)
    except InvalidOperation:
        pct = Decimal(-1)
    if not pct.is_finite() or pct < 0:
        raise BadParameter("tolerance", f"tolerance: {text!r} is not a percentage")
    with ctx.read() as conn:
        result = views.reconciliation(conn, ctx.book, month, pct)
        return _json(reconcile_document(result, views.as_of(conn)))


def forecast(ctx: WebContext, request: Request) -> Response:
    from ledger import views
    from ledger.alerts import budget_config
    from ledger.documents import forecast_document
    from ledger.period import parse_month, period_containing, utc_now

    at = utc_now()
    value = request.query_params.get("month")
    try:
        period = parse_month(value) if value else period_containing("monthly", at.date())
    except ValueError as exc:
        raise BadParameter("month", f"month: {exc}") from None
    if period.start > at.date():
        raise BadParameter("month", f"{period.label} has not started yet")
    config = budget_config(ctx.settings, resolve_secrets=False)
    with ctx.read() as conn:
        lines = views.forecast(conn, config.budgets, period, at)
        return _json(forecast_document(lines, period, at, views.as_of(conn)))


def budgets(ctx: WebContext, request: Request) -> Response:
    return _json(_budgets(ctx))


def _budgets(ctx: WebContext) -> dict[str, Any]:
    from ledger.alerts import budget_config
    from ledger.documents import budgets_status
    from ledger.period import utc_now

    config = budget_config(ctx.settings, resolve_secrets=False)
    return budgets_status(ctx.engine, config, utc_now())


def status(ctx: WebContext, request: Request) -> Response:
    return _json(_status(ctx))


def _status(ctx: WebContext) -> dict[str, Any]:
    from ledger.documents import status_document
    from ledger.sync import openai_specs, read_watermarks

    names = [s.name for s in openai_specs(ctx.config, environ={})]
    interval = ctx.config.every_minutes * 60
    return status_document(read_watermarks(ctx.engine), names, int(time.time()), interval)


def prices(ctx: WebContext, request: Request) -> Response:
    from ledger.documents import prices_document
    from ledger.period import utc_date

    return _json(prices_document(ctx.book, utc_date(int(time.time()))))


def focus(ctx: WebContext, request: Request) -> Response:
    from ledger import views
    from ledger.reports.documents import focus_csv

    month = _month(request)
    with ctx.read() as conn:
        export = views.focus(conn, ctx.book, month)
    return Response(
        focus_csv(export),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="focus-{month}.csv"'},
    )


async def estimate(request: Request) -> Response:
    """POST /api/v1/estimate?model=&epochs=: the JSONL body streamed to a temporary file
    (at most MAX_ESTIMATE_BYTES), then `ftledger estimate --format json`'s document."""
    from starlette.concurrency import run_in_threadpool

    ctx: WebContext = request.app.state.ctx
    if not authorized(request, ctx.token):
        return _unauthorized()
    try:
        model = _required(request, "model")
        epochs = _epochs(request)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_ESTIMATE_BYTES:
            raise BadParameter("body", _too_large(), 413)
        with tempfile.TemporaryDirectory(prefix="ftledger-estimate-") as folder:
            path = Path(folder) / "upload.jsonl"
            size = 0
            with path.open("wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_ESTIMATE_BYTES:
                        raise BadParameter("body", _too_large(), 413)
                    out.write(chunk)
            document = await run_in_threadpool(_estimate, ctx, model, path, epochs)
    except BadParameter as exc:
        ctx.metrics.estimate_requests.labels("rejected").inc()
        return _error(exc.status, exc.message, parameter=exc.parameter)
    ctx.metrics.estimate_requests.labels("ok" if document["valid"] else "invalid").inc()
    return _json(document)


def _too_large() -> str:
    return f"body: larger than {MAX_ESTIMATE_BYTES // (1024 * 1024)} MB"


def _epochs(request: Request) -> int | None:
    value = request.query_params.get("epochs")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise BadParameter("epochs", "epochs must be an integer from 1 to 100")
    return int(value)


def _estimate(ctx: WebContext, model: str, path: Path, epochs: int | None) -> dict[str, Any]:
    from ledger.documents import estimate_document
    from ledger.estimate import estimate as run_estimate
    from ledger.period import utc_date

    try:
        result = run_estimate(
            ctx.book, model, path, epochs=epochs, at=utc_date(int(time.time())), workers=1
        )
    except PricingError as exc:
        raise BadParameter("model", _one_line(exc)) from None
    except LedgerError as exc:
        raise BadParameter("body", _one_line(exc)) from None
    return estimate_document(replace(result, file="-"))


# --- health, metrics, dashboard -----------------------------------------------------------


def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


def readyz(request: Request) -> Response:
    """200 when the database answers, its schema is current and no source is failing."""
    ctx: WebContext = request.app.state.ctx
    reason = _not_ready(ctx)
    if reason:
        return _json({"status": "unavailable", "reason": reason}, 503)
    return _json({"status": "ready"})


def _not_ready(ctx: WebContext) -> str | None:
    from ledger.store.engine import SCHEMA_HEAD
    from ledger.store.migrate import current_revision
    from ledger.sync import read_watermarks

    try:
        current = current_revision(ctx.engine)
        if current != SCHEMA_HEAD:
            return f"database schema at {current or 'nothing'}, this ftledger needs {SCHEMA_HEAD}"
        failing = [m for m in read_watermarks(ctx.engine) if m.consecutive_failures]
    except LedgerError as exc:
        return f"database unreachable: {_one_line(exc)}"
    if failing:
        first = failing[0]
        return (
            f"source {first.source} failing ({first.consecutive_failures} polls): "
            f"{mask(first.last_error or 'unknown error')}"
        )
    return None


def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    ctx: WebContext = request.app.state.ctx
    if ctx.config.metrics_auth and not authorized(request, ctx.token):
        return _unauthorized()
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def dashboard(request: Request) -> Response:
    from ledger import views
    from ledger.alerts import budget_config
    from ledger.documents import forecast_document
    from ledger.period import period_containing, utc_now
    from ledger.reports.dashboard import render_dashboard, render_login
    from ledger.reports.documents import monthly_document

    ctx: WebContext = request.app.state.ctx
    if not authorized(request, ctx.token, cookie=True):
        return HTMLResponse(render_login(), 401)
    try:
        month = _month(request)
    except BadParameter as exc:
        return PlainTextResponse(exc.message, 400)
    at = utc_now()
    config = budget_config(ctx.settings, resolve_secrets=False)
    with ctx.read() as conn:
        as_of = views.as_of(conn)
        report = views.monthly(conn, ctx.book, month)
        daily = views.dashboard_daily(conn, month)
        period = period_containing("monthly", month.first_day)
        fc = None
        if period.start <= at.date():
            fc = forecast_document(views.forecast(conn, config.budgets, period, at), period, at)
        months = [str(m) for m in views.months(conn)]
    if str(month) not in months:
        months.append(str(month))
    page = render_dashboard(
        month=str(month),
        months=sorted(months, reverse=True),
        monthly=monthly_document(report, as_of),
        daily=daily,
        forecast=fc,
        budgets=_budgets(ctx),
        status=_status(ctx),
    )
    return HTMLResponse(page)


async def login(request: Request) -> Response:
    from ledger.reports.dashboard import render_login

    ctx: WebContext = request.app.state.ctx
    body = (await request.body())[:4096].decode("utf-8", "replace")
    given = (parse_qs(body).get("token") or [""])[0]
    if not ctx.token or not hmac.compare_digest(given.encode(), ctx.token.encode()):
        return HTMLResponse(render_login("Wrong token."), 401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        _session(ctx.token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=7 * 86400,
    )
    return response


async def not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return _error(404, f"no such endpoint: {request.url.path}")
    if status == 405:
        return _error(405, f"{request.method} not allowed on {request.url.path}")
    return _error(status, "error")


def create_app(ctx: WebContext) -> Starlette:
    def get(path: str, handler: Callable[[WebContext, Request], Response]) -> Route:
        return Route(path, api(ctx, handler), methods=["GET"])

    routes = [
        Route("/", dashboard, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        get("/api/v1/reports/monthly", monthly),
        get("/api/v1/reports/monthly.csv", monthly_file("csv")),
        get("/api/v1/reports/monthly.html", monthly_file("html")),
        get("/api/v1/reports/whatif", whatif),
        get("/api/v1/reconcile", reconcile),
        get("/api/v1/forecast", forecast),
        get("/api/v1/budgets", budgets),
        get("/api/v1/status", status),
        get("/api/v1/prices", prices),
        get("/api/v1/export/focus", focus),
        Route("/api/v1/estimate", estimate, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.ctx = ctx
    return app


def token_from_env(config: LedgerConfig, environ: dict[str, str] | None = None) -> str | None:
    """The API token from the variable `[http] token_env` names (None when unset or empty)."""
    env = os.environ if environ is None else environ
    return env.get(config.token_env) or None
