"""Budget checks: evaluate every budget, record crossed thresholds, deliver alerts.

`run_budget_check` is what `ftledger budgets check`, `ftledger poll` and `ftledger serve`
call. One check:

1. reads budgets.toml and, per budget, the spend in scope of the current UTC period
   (usage cost + training fees) and its forecast;
2. records a decision for each threshold crossed - (budget, period, kind, threshold) is
   unique in the database, so of two concurrent checks only one records it - together
   with one pending delivery per channel, before anything is sent;
3. delivers every pending delivery, old ones included: each is claimed with a lease by
   an atomic UPDATE, sent with the decision's idempotency key, then marked delivered or
   released with its error. A failure is retried at the next check; a crash between
   sending and marking is retried after the lease, under the same key.

Decisions are never deleted or revised: a period that ended keeps its alerts, and spend
revised downwards sends nothing new. Webhook URLs and SMTP credentials stay in memory.

Spend anomalies ([[anomaly]] in budgets.toml) go through the same steps: each of the
last ANOMALY_LOOKBACK_DAYS complete UTC days is judged by ledger.anomaly, and a spike
is recorded as a decision of kind "anomaly" for (anomaly, day) - once, whoever checks -
then delivered like any other alert.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Connection, Engine

from ledger.allocation import Allocation, load_allocation
from ledger.anomaly import SENSITIVITY_K, Spike, days_to_check, detect
from ledger.anomaly import WINDOW_DAYS as ANOMALY_WINDOW_DAYS
from ledger.budgets import Anomaly, Budget, BudgetConfig, load_budgets
from ledger.errors import DeliveryError
from ledger.forecast import HISTORY_WINDOW_DAYS, Forecast, crossing_date, forecast_period, percent
from ledger.money import display, from_pico
from ledger.notify import Alert, deliver
from ledger.period import Period, day_start, period_containing, utc_now
from ledger.pricebook import PriceBook
from ledger.secrets import mask
from ledger.settings import Settings
from ledger.spend import DayCost, by_day, first_day
from ledger.store.alert_log import Decision, claim_delivery, finish_delivery, record_decision
from ledger.store.engine import read_connection
from ledger.store.errors import db_errors, in_transaction
from ledger.store.read import PendingDelivery, alerted, pending_deliveries
from ledger.views import day_costs

CLAIM_LEASE_SECONDS = 300
TOP_MODELS = 3  # named in a budget alert
GROUPED_CHANNELS = ("slack", "email")  # for people: thresholds crossed together, one message
ANOMALY_LOOKBACK_DAYS = 3  # complete days judged at each check: late usage still counts


@dataclass(frozen=True)
class BudgetStatus:
    """A budget in its current period: spend, forecast, and where it is heading."""

    budget: Budget
    period: Period
    spend: int  # pico-USD, actual so far
    forecast: Forecast | None
    crosses_on: date | None
    unpriced_models: tuple[str, ...]
    alerted: tuple[tuple[str, Decimal, str], ...] = ()  # (kind, threshold, delivery state)
    top_models: tuple[tuple[str, int], ...] = ()  # the biggest spenders in the period, pico

    @property
    def used(self) -> Decimal:
        return percent(self.spend, self.budget.amount_pico)

    def crossed(self) -> list[tuple[str, Decimal]]:
        """(kind, threshold) pairs this status has reached."""
        amount = self.budget.amount_pico
        found = [("actual", t) for t in self.budget.thresholds if self.spend * 100 >= amount * t]
        if self.forecast is not None and self.forecast.method != "actual":
            found += [
                ("forecast", t)
                for t in self.budget.forecast_thresholds
                if self.forecast.point * 100 >= amount * t
            ]
        return found


@dataclass(frozen=True)
class DeliveryOutcome:
    budget: str
    period: str
    kind: str
    threshold: Decimal
    channel: str
    status: str  # delivered | failed | skipped (another checker holds it, or no channel)
    attempts: int
    error: str | None = None


@dataclass
class CheckResult:
    checked_at: datetime
    statuses: list[BudgetStatus] = field(default_factory=list)
    decided: list[tuple[str, str, str, Decimal]] = field(default_factory=list)  # new ones
    deliveries: list[DeliveryOutcome] = field(default_factory=list)
    spikes: list[tuple[Anomaly, Spike]] = field(default_factory=list)  # judged this check

    @property
    def failed(self) -> list[DeliveryOutcome]:
        return [d for d in self.deliveries if d.status == "failed"]

    @property
    def delivered(self) -> list[DeliveryOutcome]:
        return [d for d in self.deliveries if d.status == "delivered"]


def idempotency_key(budget: str, period: str, kind: str, threshold: Decimal) -> str:
    """The same key for a decision on every retry, from every checker."""
    text = f"{budget}|{period}|{kind}|{_threshold_text(threshold)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _threshold_text(threshold: Decimal) -> str:
    return f"{threshold.normalize():f}"


def budget_config(settings: Settings, *, resolve_secrets: bool = True) -> BudgetConfig:
    config = load_budgets(settings.config_file("budgets.toml"), resolve_secrets=resolve_secrets)
    if not any(b.teams for b in config.budgets):
        return config
    return config.with_allocation(load_allocation(settings.config_file("allocation.toml")))


def evaluate(
    conn: Connection,
    budget: Budget,
    now: datetime,
    period: Period | None = None,
    allocation: Allocation | None = None,
    day_spend: Sequence[DayCost] | None = None,
) -> BudgetStatus:
    """Spend, forecast and projected crossing of `budget` in `period` as seen at `now`.

    The period defaults to the budget's period containing `now`; a period that has
    ended reports its actual spend as the forecast. A budget scoped by `teams` needs
    the `allocation` that defines them (BudgetConfig.allocation). `day_spend`: the day
    costs of the history window and period (`spend_window`), read once by a caller that
    evaluates several budgets; a budget scoped by teams reads its own (team-tagged).
    """
    today = now.date()
    period = period or period_containing(budget.period, today)
    start, end = spend_window(period, today)
    teams = allocation if budget.teams else None
    if day_spend is None or teams is not None:
        day_spend = day_costs(conn, start, end, teams)
    rows = [r for r in day_spend if budget.covers(r.model, r.project, r.team)]
    daily = by_day(rows)
    spend = sum(v for d, v in daily.items() if d >= period.start)
    forecast = forecast_period(daily, period, today, first_day=first_day(rows))
    crosses = crossing_date(budget.amount_pico, daily, period, today, forecast)
    unpriced = sorted({r.model for r in rows if not r.cost.priced and r.day >= period.start})
    per_model: dict[str, int] = {}
    for row in rows:
        if row.day >= period.start and row.cost.known:
            per_model[row.model] = per_model.get(row.model, 0) + row.cost.known
    top = sorted(per_model.items(), key=lambda mv: (-mv[1], mv[0]))[:TOP_MODELS]
    return BudgetStatus(
        budget, period, spend, forecast, crosses, tuple(unpriced), top_models=tuple(top)
    )


def spend_window(period: Period, today: date) -> tuple[int, int]:
    """[start, end) of the day costs a forecast of `period` on `today` reads: the
    history window before today, and the period."""
    history_start = min(period.start, today - timedelta(days=HISTORY_WINDOW_DAYS))
    return Period("daily", history_start, period.end).start_ts, period.end_ts


def budget_statuses(
    engine: Engine, config: BudgetConfig, now: datetime | int | None = None
) -> list[BudgetStatus]:
    """Every budget's status now, with the thresholds already alerted; writes nothing."""
    at = utc_now(now)
    with db_errors("reading the budgets' spend", engine.url), read_connection(engine) as conn:
        result = []
        for budget in config.budgets:
            status = evaluate(conn, budget, at, allocation=config.allocation)
            result.append(
                BudgetStatus(
                    **{
                        **status.__dict__,
                        "alerted": alerted(conn, budget.name, status.period.label),
                    }
                )
            )
        return result


def run_budget_check(
    engine: Engine,
    settings: Settings,
    book: PriceBook | None = None,
    now: datetime | int | None = None,
) -> CheckResult:
    """Evaluate every budget, record crossed thresholds and deliver pending alerts.

    Raises BudgetConfigError when budgets.toml is invalid (nothing is recorded then).
    Delivery failures never raise: they are in the result and retried at the next check.
    `book` is accepted for the poller's convenience; spend comes priced from the ledger.
    """
    del book  # entries carry their cost; nothing is re-priced here
    at = utc_now(now)
    config = budget_config(settings)
    link = _public_url(settings)
    result = CheckResult(checked_at=at)
    if not config.budgets and not config.anomalies:
        result.deliveries = _deliver_pending(engine, config, at, link)
        return result
    with db_errors("reading the budgets' spend", engine.url), read_connection(engine) as conn:
        result.statuses = [
            evaluate(conn, b, at, allocation=config.allocation) for b in config.budgets
        ]
        result.spikes = [
            (a, spike) for a in config.anomalies for spike in anomaly_spikes(conn, a, at.date())
        ]

    def decide_all(conn: Connection) -> list[tuple[str, str, str, Decimal]]:
        decided = []
        for status in result.statuses:
            for kind, threshold in status.crossed():
                if _decide(conn, status, kind, threshold, int(at.timestamp())):
                    decided.append((status.budget.name, status.period.label, kind, threshold))
        for anomaly, spike in result.spikes:
            if _decide_anomaly(conn, anomaly, spike, int(at.timestamp())):
                decided.append((anomaly.name, spike.day.isoformat(), "anomaly", Decimal(0)))
        return decided

    result.decided = in_transaction(engine, decide_all, doing="recording alert decisions")
    result.deliveries = _deliver_pending(engine, config, at, link)
    return result


def _public_url(settings: Settings) -> str | None:
    """`[http] public_url` from ledger.toml: where an alert's reader finds the dashboard."""
    from ledger.config_file import load_ledger_config

    url = load_ledger_config(settings.config_file("ledger.toml")).public_url
    return None if not url else url.rstrip("/") + "/"


def _decide(
    conn: Connection, status: BudgetStatus, kind: str, threshold: Decimal, now: int
) -> bool:
    """Record a decision and its pending deliveries; False when it was already recorded."""
    budget, label = status.budget, status.period.label
    decision = Decision(
        budget=budget.name,
        period=label,
        kind=kind,
        threshold=_threshold_text(threshold),
        idempotency_key=idempotency_key(budget.name, label, kind, threshold),
        amount_pico=budget.amount_pico,
        spend_pico=status.spend,
        forecast_pico=status.forecast.point if status.forecast else None,
        scope=json.dumps(budget.scope(), sort_keys=True),
        decided_at=now,
        detail=json.dumps(
            {
                "top_models": [[m, _usd(v)] for m, v in status.top_models],
                "unpriced_models": list(status.unpriced_models),
            },
            sort_keys=True,
        ),
    )
    return record_decision(conn, decision, budget.channels)


def anomaly_spikes(conn: Connection, anomaly: Anomaly, today: date) -> list[Spike]:
    """The spikes among the last ANOMALY_LOOKBACK_DAYS complete days before `today`."""
    days = days_to_check(today, ANOMALY_LOOKBACK_DAYS)
    start = day_start(days[0] - timedelta(days=ANOMALY_WINDOW_DAYS))
    by_model: dict[str, dict[date, int]] = {}
    first: date | None = None
    for row in day_costs(conn, start, day_start(today)):
        if not anomaly.covers(row.model, row.project):
            continue
        per_day = by_model.setdefault(row.model, {})
        per_day[row.day] = per_day.get(row.day, 0) + row.cost.known
        first = row.day if first is None else min(first, row.day)
    spikes = []
    for day in days:
        spike = detect(
            by_model,
            day,
            first,
            sensitivity=anomaly.sensitivity,
            min_amount=anomaly.min_amount_pico,
        )
        if spike is not None:
            spikes.append(spike)
    return spikes


def _usd(pico: int | Decimal) -> str | None:
    return display(Decimal(pico).scaleb(-12))


def _decide_anomaly(conn: Connection, anomaly: Anomaly, spike: Spike, now: int) -> bool:
    """Record a spike once per (anomaly, day); False when it was already recorded."""
    day = spike.day.isoformat()
    base = spike.baseline
    detail = {
        "limit": _usd(base.limit),
        "method": base.method,
        "sensitivity": anomaly.sensitivity,
        "k": str(SENSITIVITY_K[anomaly.sensitivity]),
        "history_days": base.history_days,
        "models": [
            {"model": d.model, "spend": _usd(d.spend), "baseline": _usd(d.expected)}
            for d in spike.drivers
        ],
    }
    decision = Decision(
        budget=anomaly.name,
        period=day,
        kind="anomaly",
        threshold="0",
        idempotency_key=idempotency_key(anomaly.name, day, "anomaly", Decimal(0)),
        amount_pico=int(base.expected.to_integral_value()),
        spend_pico=spike.spend,
        forecast_pico=None,
        scope=json.dumps(anomaly.scope(), sort_keys=True),
        decided_at=now,
        detail=json.dumps(detail, sort_keys=True),
    )
    return record_decision(conn, decision, anomaly.channels)


def _deliver_pending(
    engine: Engine, config: BudgetConfig, at: datetime, link: str | None = None
) -> list[DeliveryOutcome]:
    """Deliver every pending delivery. For Slack and email, the pending thresholds of one
    budget and period (crossed by one check, or still waiting together) go as ONE
    message naming them all; webhooks and the log get one document per decision."""
    now = int(at.timestamp())
    me = uuid.uuid4().hex
    with db_errors("reading pending alerts", engine.url), engine.connect() as conn:
        pending = pending_deliveries(conn)
    groups: dict[tuple[str, ...], list[PendingDelivery]] = {}
    for row in pending:
        channel = config.channels.get(row.channel)
        together = channel is not None and channel.type in GROUPED_CHANNELS
        if together and row.kind != "anomaly":
            key: tuple[str, ...] = (row.channel, row.budget, row.period)
        else:
            key = ("one", str(row.delivery_id))
        groups.setdefault(key, []).append(row)
    outcomes = []
    for rows in groups.values():
        outcomes += _deliver_group(engine, config, rows, me, now, link)
    return outcomes


def _deliver_group(
    engine: Engine,
    config: BudgetConfig,
    rows: list[PendingDelivery],
    me: str,
    now: int,
    link: str | None,
) -> list[DeliveryOutcome]:
    def outcome(
        row: PendingDelivery, status: str, attempts: int, error: str | None = None
    ) -> DeliveryOutcome:
        return DeliveryOutcome(
            row.budget,
            row.period,
            row.kind,
            Decimal(row.threshold),
            row.channel,
            status,
            attempts,
            error,
        )

    channel = config.channels.get(rows[0].channel)
    if channel is None:
        gone = f"channel {rows[0].channel!r} is no longer configured"
        return [outcome(row, "skipped", 0, gone) for row in rows]
    skipped, claimed = [], []
    for row in rows:
        if claim_delivery(engine, row.delivery_id, me, now, CLAIM_LEASE_SECONDS):
            claimed.append(row)
        else:
            skipped.append(outcome(row, "skipped", 0, "another check is delivering it"))
    if not claimed:
        return skipped
    error: str | None = None
    try:
        deliver(channel, _alert(claimed, link))
    except DeliveryError as exc:
        error = mask(str(exc))
    done = []
    for row in claimed:
        attempts = finish_delivery(engine, row.delivery_id, me, now, error)
        done.append(outcome(row, "delivered" if error is None else "failed", attempts, error))
    return skipped + done


def _alert(rows: list[PendingDelivery], link: str | None) -> Alert:
    """The alert for one decision, or one naming every threshold of `rows` (one budget
    and period): its figures are the latest decision's, its headline the highest
    threshold on actual spend (else on the forecast)."""
    latest = max(rows, key=lambda r: (r.decided_at, r.delivery_id))
    head = max(rows, key=lambda r: (r.kind == "actual", Decimal(r.threshold)))
    detail = None if latest.detail is None else json.loads(latest.detail)
    budget_detail = detail if head.kind != "anomaly" and detail else {}
    crossed = sorted(
        {(r.kind, Decimal(r.threshold)) for r in rows}, key=lambda kt: (kt[0] != "actual", kt[1])
    )
    if len(rows) == 1:
        key = head.idempotency_key
    else:
        joined = "|".join(sorted(r.idempotency_key for r in rows))
        key = hashlib.sha256(joined.encode("utf-8")).hexdigest()
    return Alert(
        budget=head.budget,
        period=head.period,
        kind=head.kind,
        threshold=Decimal(head.threshold),
        amount=from_pico(latest.amount_pico),
        spend=from_pico(latest.spend_pico),
        forecast=None if latest.forecast_pico is None else from_pico(latest.forecast_pico),
        scope=json.loads(head.scope),
        idempotency_key=key,
        detail=detail,
        evaluated_at=latest.decided_at,
        top_models=tuple((m, Decimal(v)) for m, v in budget_detail.get("top_models", [])),
        unpriced_models=tuple(budget_detail.get("unpriced_models", [])),
        link=link,
        crossed=tuple(crossed) if len(crossed) > 1 else (),
    )
