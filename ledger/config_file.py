"""ledger.toml: how the service polls OpenAI (never the keys themselves).

The file names the environment variables that hold keys (`key_env`), so it can be
committed and shared. Every problem is reported together with file and key path, like
the price book. A file that nevertheless holds a secret (as `ledger.secrets` defines it)
and is readable by other users earns a warning.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import Problem, SettingsError
from ledger.secrets import has_credentials, holds_secret
from ledger.tomlfile import read_toml

BUCKET_WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
MAX_DEADLINE_SECONDS = 86400
MAX_DAYS = 366  # lookback and window: OpenAI revises days, not years


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be OpenAI's base URL (the setting or OPENAI_BASE_URL), or None."""
    from urllib.parse import urlsplit

    if not re.match(r"^https?://", url):
        return "must start with http:// or https://"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if not parts.hostname:
        return "has no host name"
    if has_credentials(url):
        return "must not carry credentials"
    return None


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROJECT_ID = re.compile(r"^proj_[A-Za-z0-9_-]+$")
_VAR_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")  # ${VAR}: read at run time


@dataclass(frozen=True)
class ProjectConfig:
    """A project whose fine-tuning jobs are read with the key in env var `key_env`.

    `id` is OpenAI's project id (`proj_...`): its training fees are attributed to it,
    the scheme usage carries. Without one they fall under "(no project)".
    """

    name: str
    key_env: str
    id: str = ""


@dataclass(frozen=True)
class LedgerConfig:
    path: Path | None = None
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI
    admin_key_env: str = "OPENAI_ADMIN_KEY"
    timeout_seconds: float = 30.0
    max_retries: int = 3
    retry_backoff_seconds: float = 0.5  # first retry's wait, doubling (Retry-After wins)
    max_retry_after_seconds: float = 60.0  # a longer Retry-After fails the poll at once
    bucket_width: str = "1h"
    lookback_days: int = 3
    window_days: int = 7  # written window by window, atomically; 7 = one usage page at 1h
    every_minutes: int = 15
    cron: str | None = None
    source_deadline_seconds: float = 300.0  # wall clock for one source's reads in a poll
    deadline_seconds: float = 900.0  # wall clock for the whole poll
    projects: tuple[ProjectConfig, ...] = (ProjectConfig("default", "OPENAI_API_KEY"),)
    # [http]: the service face of `ftledger serve`
    listen: str = "127.0.0.1:8080"
    token_env: str = "LEDGER_HTTP_TOKEN"  # the NAME of the variable holding the API token
    public_url: str | None = None  # where people reach the dashboard (links in alerts)
    metrics_auth: bool = False  # /metrics needs the token too
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def bucket_seconds(self) -> int:
        return BUCKET_WIDTHS[self.bucket_width]


_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "openai": {
        "base_url": str,
        "admin_key_env": str,
        "timeout_seconds": (int, float),
        "max_retries": int,
        "retry_backoff_seconds": (int, float),
        "max_retry_after_seconds": (int, float),
    },
    "poll": {
        "bucket_width": str,
        "lookback_days": int,
        "window_days": int,
        "every_minutes": int,
        "cron": str,
        "source_deadline_seconds": (int, float),
        "deadline_seconds": (int, float),
    },
    "http": {"listen": str, "token_env": str, "public_url": str, "metrics_auth": bool},
}


_KINDS: dict[Any, str] = {int: "an integer", str: "a string", bool: "true or false"}


def load_ledger_config(path: Path | None) -> LedgerConfig:
    """The settings in `path` (defaults where it is silent); None or absent: all defaults."""
    if path is None or not path.is_file():
        return LedgerConfig()
    raw, data = read_toml(path, SettingsError)
    text = raw.decode("utf-8")
    config = parse_ledger_config(data, source=str(path))
    warning = exposure_warning(path, text)
    return LedgerConfig(
        **{**config.__dict__, "path": path, "warnings": (warning,) if warning else ()}
    )


def parse_ledger_config(data: dict[str, Any], *, source: str) -> LedgerConfig:
    """Validate a parsed ledger.toml; every problem is collected before raising."""
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(f"{source}: {key}", message))

    values: dict[str, Any] = {}
    for name in data:
        if name not in (*_SCHEMA, "projects"):
            problem(name, "unknown key")
    for table, fields in _SCHEMA.items():
        section = data.get(table, {})
        if not isinstance(section, dict):
            problem(table, "must be a table")
            continue
        for key, value in section.items():
            where = f"{table}.{key}"
            expected = fields.get(key)
            if expected is None:
                problem(where, "unknown key")
            elif (isinstance(value, bool) and expected is not bool) or not isinstance(
                value, expected
            ):
                kind = _KINDS.get(expected, "a number")
                problem(where, f"must be {kind}")
            else:
                values[key] = value
    _check_values(values, problem)
    projects = _parse_projects(data.get("projects"), problem)
    if problems:
        raise SettingsError(problems)
    if projects is not None:
        values["projects"] = projects
    for key in (
        "timeout_seconds",
        "retry_backoff_seconds",
        "max_retry_after_seconds",
        "source_deadline_seconds",
        "deadline_seconds",
    ):
        if key in values:
            values[key] = float(values[key])
    return LedgerConfig(**values)


def _check_values(values: dict[str, Any], problem: Any) -> None:
    if "bucket_width" in values and values["bucket_width"] not in BUCKET_WIDTHS:
        problem("poll.bucket_width", f"must be one of {', '.join(BUCKET_WIDTHS)}")
        del values["bucket_width"]
    for key, low, high in (
        ("lookback_days", 0, MAX_DAYS),
        ("window_days", 1, MAX_DAYS),
        ("every_minutes", 1, 1440 * MAX_DAYS),
    ):
        if key in values and not low <= values[key] <= high:
            problem(f"poll.{key}", f"must be between {low} and {high}")
    if "max_retries" in values and not 0 <= values["max_retries"] <= 10:
        problem("openai.max_retries", "must be between 0 and 10")
    if "timeout_seconds" in values and not 0 < values["timeout_seconds"] <= 600:
        problem("openai.timeout_seconds", "must be more than 0 and at most 600")
    for key in ("retry_backoff_seconds", "max_retry_after_seconds"):
        if key in values and not 0 <= values[key] <= 600:
            problem(f"openai.{key}", "must be between 0 and 600")
    for key in ("source_deadline_seconds", "deadline_seconds"):
        if key in values and not 0 < values[key] <= MAX_DEADLINE_SECONDS:
            problem(f"poll.{key}", f"must be more than 0 and at most {MAX_DEADLINE_SECONDS}")
    if "admin_key_env" in values:
        _check_env_name(values["admin_key_env"], "openai.admin_key_env", problem)
    if "base_url" in values and (bad := base_url_problem(values["base_url"])):
        problem("openai.base_url", bad)
    if "listen" in values:
        try:
            parse_listen(values["listen"])
        except ValueError as exc:
            problem("http.listen", str(exc))
    if "token_env" in values:
        _check_env_name(values["token_env"], "http.token_env", problem)
    if "public_url" in values and not re.match(r"^https?://", values["public_url"]):
        problem("http.public_url", "must start with http:// or https://")
    elif "public_url" in values and has_credentials(values["public_url"]):
        problem("http.public_url", "must not carry credentials")
    if "cron" in values:
        try:
            cron_trigger(values["cron"])
        except ValueError as exc:
            problem("poll.cron", f"not a crontab expression: {exc}")


def _parse_projects(raw: Any, problem: Any) -> tuple[ProjectConfig, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw:
        problem("projects", "must be a non-empty array of tables ([[projects]])")
        return None
    projects: list[ProjectConfig] = []
    names: set[str] = set()
    ids: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"projects[{i}]"
        if not isinstance(entry, dict):
            problem(where, "must be a table with name and key_env")
            continue
        for key in entry:
            if key not in ("name", "key_env", "id"):
                problem(f"{where}.{key}", "unknown key")
        name, key_env = entry.get("name"), entry.get("key_env")
        project_id = entry.get("id", "")
        if not isinstance(project_id, str) or (project_id and not _PROJECT_ID.match(project_id)):
            problem(f"{where}.id", f"{project_id!r} is not an OpenAI project id (proj_...)")
            project_id = ""
        elif project_id in ids:
            problem(f"{where}.id", f"duplicate project id {project_id!r}")
        elif project_id:
            ids.add(project_id)
        if not isinstance(name, str) or not name.strip():
            problem(f"{where}.name", "required: a non-empty string")
        elif name in names:
            problem(f"{where}.name", f"duplicate project {name!r}")
        if not isinstance(key_env, str):
            problem(f"{where}.key_env", "required: the NAME of the variable holding the key")
        else:
            _check_env_name(key_env, f"{where}.key_env", problem)
        if isinstance(name, str) and isinstance(key_env, str):
            names.add(name)
            projects.append(ProjectConfig(name.strip(), key_env, project_id))
    return tuple(projects)


def _check_env_name(value: str, where: str, problem: Any) -> None:
    if holds_secret(value):
        problem(where, "looks like a key itself: give the NAME of an environment variable")
    elif not _ENV_NAME.match(value):
        problem(where, "must be an environment variable name (letters, digits, _)")


def exposure_warning(path: Path, text: str) -> str | None:
    """A warning when a file that holds a secret is readable by others; a `${VAR}`
    reference holds none (a loopback webhook URL without a token holds none either)."""
    if not holds_secret(_VAR_REF.sub("", text)):
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (
            f"{path} seems to hold a secret and is readable by other users "
            f"(mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`"
        )
    return None


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:8080) -> (host, port); ValueError naming what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
    return host, int(port)


def cron_trigger(expression: str) -> Any:
    """An APScheduler CronTrigger in UTC from a crontab line; ValueError if malformed."""
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(expression, timezone="UTC")
