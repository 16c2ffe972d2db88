"""Helpers shared by the polling tests: a sandbox organisation and the truth to compare with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from ledger.config_file import LedgerConfig, ProjectConfig
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.sandbox import SandboxOrg, SandboxServer
from ledger.sandbox.cast import PROJECTS
from ledger.sandbox.faults import FaultPlan
from ledger.store.tables import USAGE_KEY_COLUMNS, TrainingFee, UsageEntry
from ledger.sync import CycleReport, openai_specs, poll_sources

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z, the sandbox's default clock
DAY = 86400
SINCE = date(2025, 6, 11)
SINCE_TS = 1_749_600_000  # 2025-06-11T00:00:00Z
ADMIN_KEY = "sk-admin-CANARY-7f3c9d2e1b"


@dataclass
class Sandbox:
    org: SandboxOrg
    server: SandboxServer
    config: LedgerConfig
    env: dict[str, str]

    def poll(self, engine: Engine, book: PriceBook, **kwargs: object) -> CycleReport:
        kwargs.setdefault("now", self.org.now)
        kwargs.setdefault("since", SINCE)
        return poll_sources(
            engine, book, self.config, openai_specs(self.config, self.env), **kwargs
        )  # type: ignore[arg-type]


def project_key(name: str) -> str:
    return f"sk-proj-CANARY-{name}-5e8a"


@contextmanager
def sandbox(days: int = 5, now: int = NOW, **config: object) -> Iterator[Sandbox]:
    org = SandboxOrg(now=now, days=days, extra_jobs=6)
    names = ["support", "legal", "research"]
    with SandboxServer(
        org,
        admin_key=ADMIN_KEY,
        project_keys={n: project_key(n) for n in names},
        faults=FaultPlan(),
    ) as server:
        env = {"T_ADMIN": ADMIN_KEY, **{f"T_KEY_{n.upper()}": project_key(n) for n in names}}
        base = LedgerConfig(
            base_url=server.base_url,
            admin_key_env="T_ADMIN",
            timeout_seconds=5.0,
            max_retries=3,
            projects=tuple(ProjectConfig(n, f"T_KEY_{n.upper()}", PROJECTS[n]) for n in names),
        )
        yield Sandbox(org, server, replace(base, **config), env)  # type: ignore[arg-type]


def ledger_usage(engine: Engine) -> dict[tuple, tuple]:
    """Every usage key's summed counts and cost, keys that sum to nothing left out."""
    cols = [getattr(UsageEntry, c) for c in USAGE_KEY_COLUMNS]
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                *cols,
                func.sum(UsageEntry.requests),
                func.sum(UsageEntry.input_tokens),
                func.sum(UsageEntry.cached_tokens),
                func.sum(UsageEntry.output_tokens),
                func.sum(UsageEntry.cost_pico),
            ).group_by(*cols)
        ).all()
    n = len(USAGE_KEY_COLUMNS)
    out = {}
    for row in rows:
        counts = tuple(None if v is None else int(v) for v in row[n:])
        if any(counts[:4]) or counts[4]:
            out[tuple(row[:n])] = counts
    return out


def true_usage(org: SandboxOrg, book: PriceBook, start: int, end: int) -> dict[tuple, tuple]:
    """The organisation's true usage in [start, end), priced at list prices."""
    pricer = UsagePricer(book)
    out = {}
    for obs in org.usage_rows(start, end, "1h"):
        if not (obs.requests or obs.input_tokens or obs.output_tokens):
            continue
        cost, _ = pricer.price(obs)
        out[tuple(obs.key)] = (
            obs.requests,
            obs.input_tokens,
            obs.cached_tokens,
            obs.output_tokens,
            cost,
        )
    return out


def fees(engine: Engine) -> dict[str, int | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(TrainingFee.job_id, TrainingFee.cost_pico)).all())


def write_config(config_dir: Path, sb, **poll: int) -> Path:
    settings = {"window_days": 3, "lookback_days": 3, **poll}
    lines = [
        "[openai]",
        f'base_url = "{sb.server.base_url}"',
        'admin_key_env = "T_ADMIN"',
        "timeout_seconds = 5",
        "max_retries = 1",
        "[poll]",
        *(f"{k} = {v}" for k, v in settings.items()),
    ]
    for name in ("support", "legal", "research"):
        lines += ["[[projects]]", f'name = "{name}"', f'key_env = "T_KEY_{name.upper()}"']
        lines += [f'id = "{PROJECTS[name]}"']
    path = config_dir / "ledger.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
