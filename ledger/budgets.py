"""Budgets and alert channels from budgets.toml (their UTC periods: ledger.period).

The file is validated as a whole, like the price book: every problem is reported
together with its file and key path. Channel settings may say `${VAR}` to read the
environment, so webhook URLs and SMTP passwords stay out of the file; an unset or
empty variable disables that channel only (`Channel.disabled` names the key and the
variable; a warning on stderr says so; its deliveries fail and wait), never every
budget. No message ever repeats a channel's URL, address or credential (expanded or
not).
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ledger.allocation import UNALLOCATED, Allocation
from ledger.errors import BudgetConfigError, Problem
from ledger.money import D, to_pico
from ledger.period import PERIOD_KINDS
from ledger.tomlfile import read_toml

CHANNEL_TYPES = ("webhook", "slack", "email", "log")
PERIODS = PERIOD_KINDS
SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")
NAME_MAX = 128

_TOP_KEYS = {"channel", "budget", "anomaly"}
_CHANNEL_KEYS = {
    "webhook": {"name", "type", "url", "deadline_seconds"},
    "slack": {"name", "type", "url", "deadline_seconds"},
    "email": {"name", "type", "to", "smtp_url", "from", "deadline_seconds"},
    "log": {"name", "type"},
}
DEFAULT_DEADLINE_SECONDS = 30.0  # wall clock for one delivery attempt, however slow the server
MAX_DEADLINE_SECONDS = 600
_BUDGET_KEYS = {
    "name",
    "amount",
    "period",
    "models",
    "projects",
    "teams",
    "thresholds",
    "forecast_thresholds",
    "channels",
}
_ANOMALY_KEYS = {"name", "models", "projects", "channels", "min_amount", "sensitivity"}
SENSITIVITIES = ("low", "medium", "high")
DEFAULT_MIN_AMOUNT = "1.00"  # USD above the expected day: smaller spikes are not worth a page
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# --- configuration --------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """Where alerts go. Secret fields are kept out of repr, so they cannot leak by printing."""

    name: str
    type: str
    url: str | None = field(default=None, repr=False)
    to: tuple[str, ...] = field(default=(), repr=False)
    smtp_url: str | None = field(default=None, repr=False)
    sender: str = field(default="ftledger@localhost", repr=False)
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS  # one delivery attempt, in total
    resolved: bool = True  # False: loaded without reading secrets (status, forecast)
    # Why the channel sends nothing (an unset ${VAR}: key path and variable, no secret);
    # its deliveries fail and wait, every other channel and budget works.
    disabled: str | None = None


@dataclass(frozen=True)
class Budget:
    name: str
    amount: Decimal  # USD per period
    period: str
    models: tuple[str, ...] = ()  # fnmatch patterns; empty: every model
    projects: tuple[str, ...] = ()  # project ids; empty: every project
    thresholds: tuple[Decimal, ...] = (Decimal(100),)  # percent, on actual spend
    forecast_thresholds: tuple[Decimal, ...] = ()  # percent, on forecast spend
    channels: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # allocation.toml team names; empty: every team

    @property
    def amount_pico(self) -> int:
        return to_pico(self.amount)

    def scope(self) -> dict[str, list[str]]:
        scope = {"models": list(self.models), "projects": list(self.projects)}
        if self.teams:
            scope["teams"] = list(self.teams)
        return scope

    def covers(self, model: str, project: str, team: str = "") -> bool:
        """Whether spend of `model` in `project`, allocated to `team`, is in scope: models
        match by fnmatch (case-sensitive `*`, `?`, `[seq]`), projects by id, teams by
        name ("(unallocated)" too); no filter matches all."""
        return (
            (not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models))
            and (not self.projects or project in self.projects)
            and (not self.teams or team in self.teams)
        )


@dataclass(frozen=True)
class Anomaly:
    """A spend anomaly monitor: each complete UTC day in scope against its baseline
    (ledger.anomaly); a spike alerts once per (anomaly, day)."""

    name: str
    channels: tuple[str, ...]
    models: tuple[str, ...] = ()  # fnmatch patterns; empty: every model
    projects: tuple[str, ...] = ()  # project ids; empty: every project
    min_amount: Decimal = Decimal(DEFAULT_MIN_AMOUNT)  # USD over the expected day's spend
    sensitivity: str = "medium"  # low | medium | high

    @property
    def min_amount_pico(self) -> int:
        return to_pico(self.min_amount)

    def scope(self) -> dict[str, list[str]]:
        return {"models": list(self.models), "projects": list(self.projects)}

    def covers(self, model: str, project: str) -> bool:
        """The same matching as Budget.covers."""
        return (not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)) and (
            not self.projects or project in self.projects
        )


@dataclass(frozen=True)
class BudgetConfig:
    channels: dict[str, Channel]
    budgets: tuple[Budget, ...]
    source: str = "budgets.toml"
    anomalies: tuple[Anomaly, ...] = ()
    allocation: Allocation = field(default_factory=Allocation)  # teams, for `teams = [...]`

    def with_allocation(self, allocation: Allocation) -> BudgetConfig:
        """This config with the teams of allocation.toml; a budget naming a team that
        allocation.toml does not define is a problem (it would never see spend)."""
        known = {*allocation.names, UNALLOCATED}
        problems = [
            Problem(
                f"{self.source}: budget[{i}].teams[{j}]",
                f"no team {team!r} in {allocation.source}",
            )
            for i, budget in enumerate(self.budgets)
            for j, team in enumerate(budget.teams)
            if team not in known
        ]
        if problems:
            raise BudgetConfigError(problems)
        return replace(self, allocation=allocation)


def load_budgets(
    path: Path, *, env: Mapping[str, str] | None = None, resolve_secrets: bool = True
) -> BudgetConfig:
    """Read and validate budgets.toml; raise BudgetConfigError listing every problem.

    With resolve_secrets=False, `${VAR}` values are left unexpanded and unchecked, so
    commands that only read spend (status, forecast) work without the secrets.
    """
    if not path.exists():
        return BudgetConfig({}, (), str(path))
    raw, data = read_toml(path, BudgetConfigError)
    _warn_if_exposed(path, raw.decode("utf-8"))
    config = parse_budgets(
        data,
        source=str(path),
        env=os.environ if env is None else env,
        resolve_secrets=resolve_secrets,
    )
    for channel in config.channels.values():
        if channel.disabled:
            print(
                f"ftledger: warning: {path}: {channel.disabled}: channel {channel.name!r} "
                "is disabled, its alerts wait until the variable is set",
                file=sys.stderr,
            )
    return config


def _warn_if_exposed(path: Path, text: str) -> None:
    """Warn on stderr (as for ledger.toml) when the file holds a secret written in it, not
    read from ${VAR} (a webhook token, an SMTP password), and others can read it."""
    from ledger.config_file import exposure_warning

    warning = exposure_warning(path, text)
    if warning:
        print(f"ftledger: warning: {warning}", file=sys.stderr)


def parse_budgets(
    data: dict[str, Any],
    *,
    source: str,
    env: Mapping[str, str],
    resolve_secrets: bool = True,
) -> BudgetConfig:
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(f"{source}: {key}" if key else source, message))

    for key in sorted(set(data) - _TOP_KEYS):
        problem(key, "unknown key")
    channels: dict[str, Channel] = {}
    for i, raw in enumerate(_tables(data, "channel", problem)):
        channel = _parse_channel(raw, f"channel[{i}]", env, resolve_secrets, problem)
        if channel is None:
            continue
        if channel.name in channels:
            problem(f"channel[{i}].name", f"{channel.name!r} is already defined")
        else:
            channels[channel.name] = channel
    channel_names = {
        str(raw.get("name")) for raw in _tables(data, "channel", lambda *a: None) if "name" in raw
    }
    budgets: list[Budget] = []
    seen: set[str] = set()
    for i, raw in enumerate(_tables(data, "budget", problem)):
        budget = _parse_budget(raw, f"budget[{i}]", channel_names, problem)
        if budget is None:
            continue
        if budget.name in seen:
            problem(f"budget[{i}].name", f"{budget.name!r} is already defined")
        seen.add(budget.name)
        budgets.append(budget)
    anomalies: list[Anomaly] = []
    for i, raw in enumerate(_tables(data, "anomaly", problem)):
        anomaly = _parse_anomaly(raw, f"anomaly[{i}]", channel_names, problem)
        if anomaly is None:
            continue
        if anomaly.name in {a.name for a in anomalies}:
            problem(f"anomaly[{i}].name", f"{anomaly.name!r} is already defined")
        elif anomaly.name in seen:
            # Budgets and anomalies share the alert log's name column: one name, one rule.
            problem(f"anomaly[{i}].name", f"{anomaly.name!r} is already a budget's name")
        anomalies.append(anomaly)
    if problems:
        raise BudgetConfigError(problems)
    return BudgetConfig(channels, tuple(budgets), source, tuple(anomalies))


def _tables(data: dict[str, Any], key: str, problem: Any) -> list[dict[str, Any]]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        problem(key, f"must be an array of tables ([[{key}]])")
        return []
    tables = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            tables.append(item)
        else:
            problem(f"{key}[{i}]", "must be a table")
    return tables


def _name(raw: dict[str, Any], key: str, problem: Any) -> str | None:
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problem(f"{key}.name", "is required (a non-empty string)")
        return None
    if len(name) > NAME_MAX:
        problem(f"{key}.name", f"is longer than {NAME_MAX} characters")
        return None
    control = next((c for c in name if c < " " or c == "\x7f"), None)
    if control is not None:  # NUL cannot be stored; none belongs in a name shown to people
        problem(f"{key}.name", f"contains the control character {control!a}")
        return None
    return name


def _parse_channel(
    raw: dict[str, Any],
    key: str,
    env: Mapping[str, str],
    resolve: bool,
    problem: Any,
) -> Channel | None:
    ok = True
    missing: list[str] = []

    def unset(where: str, message: str) -> None:  # an unset ${VAR} disables the channel
        missing.append(f"{where}: {message}")

    name = _name(raw, key, problem)
    kind = raw.get("type")
    if kind not in CHANNEL_TYPES:
        problem(f"{key}.type", f"{kind!r} is not one of {', '.join(CHANNEL_TYPES)}")
        return None
    for extra in sorted(set(raw) - _CHANNEL_KEYS[kind]):
        problem(f"{key}.{extra}", f"unknown key for a {kind} channel")
        ok = False

    def text(field_name: str, required: bool) -> str | None:
        value = raw.get(field_name)
        if value is None:
            if required:
                problem(f"{key}.{field_name}", "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            problem(f"{key}.{field_name}", "must be a non-empty string")
            return None
        expanded = _expand(value, f"{key}.{field_name}", env, resolve, unset)
        return value if expanded is None else expanded  # unset: kept as ${VAR}, disabled

    url = smtp_url = None
    to: list[str] = []
    sender = "ftledger@localhost"
    if kind in ("webhook", "slack"):
        url = text("url", True)
        if url is not None and not _unresolved(url) and not _http_url(url):
            problem(f"{key}.url", "must be an http:// or https:// URL")
            url = None
        ok = ok and url is not None
    elif kind == "email":
        smtp_url = text("smtp_url", True)
        if smtp_url is not None and not _unresolved(smtp_url):
            message = _smtp_url_problem(smtp_url)
            if message:
                problem(f"{key}.smtp_url", message)
                smtp_url = None
        raw_to = raw.get("to")
        if not isinstance(raw_to, list) or not raw_to:
            problem(f"{key}.to", "is required (a list of email addresses)")
            ok = False
        else:
            for j, address in enumerate(raw_to):
                where = f"{key}.to[{j}]"
                if not isinstance(address, str):
                    problem(where, "must be a string")
                    ok = False
                    continue
                expanded = _expand(address, where, env, resolve, unset)
                if expanded is None:
                    to.append(address)  # kept as ${VAR}: the channel is disabled
                elif not _unresolved(expanded) and "@" not in expanded:
                    problem(where, "is not an email address")
                    ok = False
                else:
                    to.append(expanded)
        from_value = text("from", False)
        if from_value is not None:
            sender = from_value
        elif "from" in raw:
            ok = False
        ok = ok and smtp_url is not None
    deadline = raw.get("deadline_seconds", DEFAULT_DEADLINE_SECONDS)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        problem(f"{key}.deadline_seconds", "must be a number")
        ok = False
    elif not 0 < deadline <= MAX_DEADLINE_SECONDS:
        problem(
            f"{key}.deadline_seconds", f"must be more than 0 and at most {MAX_DEADLINE_SECONDS}"
        )
        ok = False
    if not ok or name is None:
        return None
    return Channel(
        name,
        kind,
        url,
        tuple(to),
        smtp_url,
        sender,
        float(deadline),
        resolved=resolve,
        disabled="; ".join(missing) or None,
    )


def _expand(
    value: str, key: str, env: Mapping[str, str], resolve: bool, problem: Any
) -> str | None:
    """Replace ${VAR} from the environment; unset or empty variables are problems."""
    if not resolve:
        return value
    missing = [m.group(1) for m in _VAR.finditer(value) if not env.get(m.group(1))]
    if missing:
        for var in dict.fromkeys(missing):
            state = "is empty" if var in env else "is not set"
            problem(key, f"environment variable {var} {state}")
        return None
    return _VAR.sub(lambda m: env[m.group(1)], value)


def _unresolved(value: str) -> bool:
    return _VAR.search(value) is not None


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _smtp_url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return "is not a valid URL (smtp://user:password@host:port)"
    if parts.scheme not in SMTP_SCHEMES:
        return f"must start with {', '.join(s + '://' for s in SMTP_SCHEMES)}"
    if not parts.hostname:
        return "has no host (smtp://user:password@host:port)"
    if port == 0:
        return "has port 0"
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"starttls"}:
        return "accepts only the query parameter starttls=1"
    if query.get("starttls", ["1"])[-1] not in ("0", "1", "true", "false"):
        return "starttls must be 1 or 0"
    return None


def _percents(value: Any, key: str, problem: Any) -> tuple[Decimal, ...] | None:
    if not isinstance(value, list):
        problem(key, "must be a list of percentages, e.g. [50, 80, 100]")
        return None
    result: list[Decimal] = []
    ok = True
    for j, item in enumerate(value):
        where = f"{key}[{j}]"
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            problem(where, f"{item!r} is not a number")
            ok = False
            continue
        try:
            # A TOML float is converted through its shortest text, which is what was written.
            percent = Decimal(str(item).strip())
        except InvalidOperation:
            problem(where, f"{item!r} is not a number")
            ok = False
            continue
        if not percent.is_finite() or percent <= 0 or percent > 10_000:
            problem(where, f"{item} must be greater than 0 and at most 10000")
            ok = False
        elif percent.as_tuple().exponent < -4:  # type: ignore[operator]
            problem(where, f"{item} has more than 4 decimal places")
            ok = False
        elif percent in result:
            problem(where, f"{item} is listed twice")
            ok = False
        else:
            result.append(percent)
    return tuple(sorted(result)) if ok else None


def _strings(value: Any, key: str, what: str, problem: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problem(key, f"must be a list of {what}")
        return None
    return tuple(value)


def _parse_budget(
    raw: dict[str, Any], key: str, channel_names: set[str], problem: Any
) -> Budget | None:
    ok = True
    for extra in sorted(set(raw) - _BUDGET_KEYS):
        problem(f"{key}.{extra}", "unknown key")
        ok = False
    name = _name(raw, key, problem)
    amount = _amount(raw.get("amount"), f"{key}.amount", problem)
    period = raw.get("period", "monthly")
    if period not in PERIODS:
        problem(f"{key}.period", f"{period!r} is not one of {', '.join(PERIODS)}")
        ok = False
    models = _strings(raw.get("models", []), f"{key}.models", "model name patterns", problem)
    projects = _strings(raw.get("projects", []), f"{key}.projects", "project ids", problem)
    teams = _strings(raw.get("teams", []), f"{key}.teams", "team names", problem)
    thresholds = _percents(raw.get("thresholds", [100]), f"{key}.thresholds", problem)
    forecast = _percents(raw.get("forecast_thresholds", []), f"{key}.forecast_thresholds", problem)
    if forecast and period == "daily":
        problem(
            f"{key}.forecast_thresholds",
            "a daily budget has no forecast (a forecast needs 3 days of data in the period)",
        )
        ok = False
    if thresholds is not None and forecast is not None and not thresholds and not forecast:
        problem(key, "has no thresholds and no forecast_thresholds: it would never alert")
        ok = False
    channels = _channels(raw, key, channel_names, problem)
    values = (name, amount, models, projects, teams, thresholds, forecast, channels)
    if not ok or any(v is None for v in values):
        return None
    assert name and amount is not None and channels is not None
    return Budget(
        name=name,
        amount=amount,
        period=str(period),
        models=models or (),
        projects=projects or (),
        teams=teams or (),
        thresholds=thresholds or (),
        forecast_thresholds=forecast or (),
        channels=channels,
    )


def _channels(
    raw: dict[str, Any], key: str, channel_names: set[str], problem: Any
) -> tuple[str, ...] | None:
    """The `channels` of a [[budget]] or [[anomaly]]: required, not empty, each a
    defined [[channel]]; None (with every problem reported) otherwise."""
    if "channels" not in raw:
        problem(f"{key}.channels", "is required (names of [[channel]] tables)")
        return None
    channels = _strings(raw["channels"], f"{key}.channels", "channel names", problem)
    if channels is None:
        return None
    ok = bool(channels)
    if not channels:
        problem(f"{key}.channels", "is empty: name at least one [[channel]]")
    for j, channel in enumerate(channels):
        if channel not in channel_names:
            problem(f"{key}.channels[{j}]", f"no channel named {channel!r}")
            ok = False
    return channels if ok else None


def _amount(value: Any, key: str, problem: Any) -> Decimal | None:
    if value is None:
        problem(key, 'is required (USD per period as a decimal string, e.g. "500.00")')
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        kind = "a float" if isinstance(value, float) else type(value).__name__
        problem(key, f'{value!r} is {kind}; write amounts as decimal strings, e.g. "500.00"')
        return None
    try:
        amount = D(value)
    except ValueError:
        problem(key, f"{value!r} is not a decimal")
        return None
    if amount <= 0:
        problem(key, f"{amount} must be greater than 0")
        return None
    try:
        to_pico(amount)
    except ValueError:
        problem(key, f"{amount} has more than 12 decimal places")
        return None
    return amount


def _parse_anomaly(
    raw: dict[str, Any], key: str, channel_names: set[str], problem: Any
) -> Anomaly | None:
    ok = True
    for extra in sorted(set(raw) - _ANOMALY_KEYS):
        problem(f"{key}.{extra}", "unknown key")
        ok = False
    name = _name(raw, key, problem)
    models = _strings(raw.get("models", []), f"{key}.models", "model name patterns", problem)
    projects = _strings(raw.get("projects", []), f"{key}.projects", "project ids", problem)
    sensitivity = raw.get("sensitivity", "medium")
    if sensitivity not in SENSITIVITIES:
        problem(f"{key}.sensitivity", f"{sensitivity!r} is not one of {', '.join(SENSITIVITIES)}")
        ok = False
    min_amount: Decimal | None = Decimal(DEFAULT_MIN_AMOUNT)
    if "min_amount" in raw:
        min_amount = _min_amount(raw["min_amount"], f"{key}.min_amount", problem)
    channels = _channels(raw, key, channel_names, problem)
    if not ok or name is None or channels is None or models is None or projects is None:
        return None
    if min_amount is None:
        return None
    return Anomaly(name, channels, models, projects, min_amount, str(sensitivity))


def _min_amount(value: Any, key: str, problem: Any) -> Decimal | None:
    """A non-negative USD amount as a decimal string (0: every spike alerts)."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        try:
            if D(value) == 0:
                return Decimal(0)
        except ValueError:
            pass
    return _amount(value, key, problem)
