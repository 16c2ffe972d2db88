"""Prometheus metrics of `ftledger serve`, in a registry of their own (no global state).

Poll durations, poll failures and estimate requests are counted as they happen in this
process. Everything about the ledger is read at scrape time through the same views as
the API: per source the last success and lag (watermarks), month-to-date spend,
base-model cost and training fees per model (the top TOP_MODELS by spend, the rest
summed as "other"), each budget's used and forecast ratio, alert deliveries by status.
Prometheus samples are floats: these are for graphs and alerts, the API has exact text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ledger.web.app import WebContext

log = logging.getLogger("ledger.web")

TOP_MODELS = 20
POLL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.poll_duration = Histogram(
            "ftledger_poll_duration_seconds",
            "Wall-clock duration of a poll cycle in this process.",
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self.poll_failures = Counter(
            "ftledger_poll_failures",
            "Sources that failed in a poll cycle of this process.",
            ["source"],
            registry=self.registry,
        )
        self.estimate_requests = Counter(
            "ftledger_estimate_requests",
            "POST /api/v1/estimate requests by outcome (ok, invalid, rejected).",
            ["outcome"],
            registry=self.registry,
        )

    def watch(self, ctx: WebContext) -> None:
        """Add the scrape-time ledger collector for `ctx`."""
        self.registry.register(LedgerCollector(ctx))

    def observe_poll(self, seconds: float, failed_sources: list[str]) -> None:
        self.poll_duration.observe(seconds)
        for source in failed_sources:
            self.poll_failures.labels(source).inc()


def _usd(pico: Any) -> float:
    return 0.0 if pico is None else int(pico) / 1e12


class LedgerCollector(Collector):
    def __init__(self, ctx: WebContext, clock: Callable[[], float] = time.time) -> None:
        self.ctx, self.clock = ctx, clock

    def describe(self) -> list[Any]:
        return []  # nothing read at registration

    def collect(self) -> Iterator[Any]:
        try:
            yield from self._sources()
            yield from self._spend()
            yield from self._budgets()
        except Exception as exc:  # a scrape must not fail on one bad read
            from ledger.secrets import mask

            log.warning("metrics: ledger read failed: %s", mask(str(exc).splitlines()[0]))
            failed = GaugeMetricFamily(
                "ftledger_ledger_read_ok", "1 when the scrape read the ledger."
            )
            failed.add_metric([], 0)
            yield failed
            return
        ok = GaugeMetricFamily("ftledger_ledger_read_ok", "1 when the scrape read the ledger.")
        ok.add_metric([], 1)
        yield ok

    def _sources(self) -> Iterator[Any]:
        from ledger.sync import read_watermarks

        now = self.clock()
        last = GaugeMetricFamily(
            "ftledger_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll.",
            labels=["source"],
        )
        lag = GaugeMetricFamily(
            "ftledger_source_lag_seconds",
            "Seconds since the last successful poll.",
            labels=["source"],
        )
        failing = GaugeMetricFamily(
            "ftledger_source_consecutive_failures",
            "Polls of the source that failed in a row (from the ledger, every replica).",
            labels=["source"],
        )
        for mark in read_watermarks(self.ctx.engine):
            if mark.last_success_at is not None:
                last.add_metric([mark.source], mark.last_success_at)
                lag.add_metric([mark.source], max(0.0, now - mark.last_success_at))
            failing.add_metric([mark.source], mark.consecutive_failures)
        yield from (last, lag, failing)

    def _spend(self) -> Iterator[Any]:
        from ledger import views
        from ledger.period import Month
        from ledger.store import read

        month = Month.current(int(self.clock()))
        with self.ctx.read() as conn:
            report = views.monthly(conn, self.ctx.book, month)
            deliveries = read.delivery_counts(conn)
        rows = sorted(report.rows, key=lambda r: -int(r.get("total_cost") or 0))
        shown, rest = rows[:TOP_MODELS], rows[TOP_MODELS:]
        families = {
            "total_cost": GaugeMetricFamily(
                "ftledger_month_spend_usd",
                "Month-to-date known spend (inference + training), USD.",
                labels=["model"],
            ),
            "base_model_cost": GaugeMetricFamily(
                "ftledger_month_base_model_cost_usd",
                "Month-to-date cost of the same tokens on the base model, USD.",
                labels=["model"],
            ),
            "training_cost": GaugeMetricFamily(
                "ftledger_month_training_fees_usd",
                "Month-to-date training fees, USD.",
                labels=["model"],
            ),
        }
        for field, family in families.items():
            for row in shown:
                family.add_metric([str(row["model"])], _usd(row.get(field)))
            if rest:
                family.add_metric(["other"], sum(_usd(r.get(field)) for r in rest))
        yield from families.values()
        alerts = GaugeMetricFamily(
            "ftledger_alert_deliveries",
            "Alert deliveries in the ledger by status.",
            labels=["status"],
        )
        for status, count in sorted(deliveries.items()):
            alerts.add_metric([status], count)
        yield alerts

    def _budgets(self) -> Iterator[Any]:
        from ledger.alerts import budget_config, budget_statuses

        used = GaugeMetricFamily(
            "ftledger_budget_used_ratio", "Spend / amount in the current period.", labels=["budget"]
        )
        forecast = GaugeMetricFamily(
            "ftledger_budget_forecast_ratio",
            "Forecast spend at period end / amount.",
            labels=["budget"],
        )
        config = budget_config(self.ctx.settings, resolve_secrets=False)
        for status in budget_statuses(self.ctx.engine, config, int(self.clock())):
            amount = status.budget.amount_pico
            if not amount:
                continue
            used.add_metric([status.budget.name], status.spend / amount)
            if status.forecast is not None:
                forecast.add_metric([status.budget.name], status.forecast.point / amount)
        yield from (used, forecast)
