"""`ftledger serve`: poll on a schedule (then check budgets) and serve the HTTP face
(JSON API, dashboard, /metrics, /healthz, /readyz) until stopped."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer

from ledger.cli.common import app_context

# Per-request and per-job chatter: shown with --verbose only.
CHATTY_LOGGERS = ("httpx", "httpcore", "openai", "apscheduler", "uvicorn.access")


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class JsonLines(logging.Formatter):
    """One JSON object per event: time (UTC), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        event = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            event["error"] = record.exc_info[0].__name__
        return json.dumps(event, ensure_ascii=False)


def configure_logging(fmt: LogFormat, verbose: bool = False) -> None:
    """One line per event with its level, on stderr; HTTP chatter only with --verbose."""
    import time

    handler = logging.StreamHandler()
    if fmt is LogFormat.json:
        handler.setFormatter(JsonLines())
    else:
        text = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
        text.converter = time.gmtime
        handler.setFormatter(text)
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def serve(
    ctx: typer.Context,
    every: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Minutes between polls (default: poll.every_minutes or poll.cron in "
            "ledger.toml, else 15).",
            show_default=False,
        ),
    ] = None,
    every_seconds: Annotated[int | None, typer.Option(min=1, hidden=True)] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Skip the budget check after each poll.")
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT of the HTTP face (default: [http] listen, else 127.0.0.1:8080). "
            "A non-loopback address needs the token variable set.",
            show_default=False,
        ),
    ] = None,
    no_poll: Annotated[
        bool, typer.Option("--no-poll", help="Serve HTTP only (a read replica).")
    ] = False,
    no_http: Annotated[bool, typer.Option("--no-http", hidden=True)] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format", case_sensitive=False, help="text (one line per event) or json."
        ),
    ] = LogFormat.text,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log HTTP requests and scheduler detail.")
    ] = False,
) -> None:
    """Poll every source on a schedule (UTC), then run the budget check, and serve the
    JSON API, the dashboard and /metrics; stop with Ctrl-C or SIGTERM. Several replicas
    may share one PostgreSQL database: one polls at a time.

    Example: LEDGER_HTTP_TOKEN=s3cret ftledger serve --listen 127.0.0.1:8080 --every 15
    """
    from ledger.cli.poll import load_config
    from ledger.config_file import parse_listen
    from ledger.secrets import MaskingFilter
    from ledger.service import Schedule, run_budget_check, run_poll
    from ledger.service import serve as run_scheduler
    from ledger.sync import openai_specs
    from ledger.web.app import token_from_env

    configure_logging(log_format, verbose)
    app_ctx = app_context(ctx)
    config = load_config(app_ctx)
    token = token_from_env(config)
    for handler in logging.getLogger().handlers:  # every logger's lines, httpx's too
        handler.addFilter(MaskingFilter(known=[token] if token else []))
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz checks the schema
    log = logging.getLogger("ledger.serve")
    address = listen or config.listen
    try:
        host, port = parse_listen(address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None
    if not no_http and not token and not _loopback(host):
        raise typer.BadParameter(
            f"{address} is reachable from other machines: set {config.token_env} "
            "(the API token) or listen on 127.0.0.1",
            param_hint="--listen",
        )
    engine, book = app_ctx.engine, app_ctx.pricebook  # fail fast on a bad database or book
    http, metrics = None, None
    if not no_http:
        from ledger.web.app import WebContext, create_app
        from ledger.web.metrics import ServiceMetrics
        from ledger.web.server import HttpServer

        metrics = ServiceMetrics()
        web = WebContext(engine, app_ctx.settings, config, token, metrics, book)
        metrics.watch(web)
        http = HttpServer(create_app(web), host, port)
        if not token:
            log.warning(
                "no %s set: the API and dashboard are open on %s", config.token_env, address
            )
    if every_seconds is not None:
        schedule = Schedule(every_seconds=every_seconds)
    elif every is not None:
        schedule = Schedule(every_seconds=every * 60)
    elif config.cron:
        schedule = Schedule(cron=config.cron)
    else:
        schedule = Schedule(every_seconds=config.every_minutes * 60)

    def tick(stop: Callable[[], bool]) -> bool:
        """One poll; True when it ran (a replica that was refused the lock leaves the
        budget check to the one that polled)."""
        started = time.monotonic()
        report = run_poll(engine, book, config, openai_specs(config), stop=stop)
        if report.skipped:
            return False
        if metrics is not None:
            metrics.observe_poll(time.monotonic() - started, [s.source for s in report.failed])
        for source in report.sources:
            if source.error:
                log.warning("%s failed: %s", source.source, source.error)
            else:
                log.info(
                    "%s: read %d, posted %d, fees %d",
                    source.source,
                    source.read,
                    source.posted,
                    source.fees_posted,
                )
        return True

    def check(stop: Callable[[], bool]) -> None:
        if not stop():
            run_budget_check(engine, app_ctx.settings, book)

    run_scheduler(tick, schedule, after=None if no_alerts else check, http=http, poll=not no_poll)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
