"""`ftledger demo`: the whole path on a simulated organisation, with no key and no network.

The sandbox (a fake OpenAI on loopback) is polled through the real SDK into a fresh
embedded database, exactly as `ftledger poll` polls OpenAI; then the month's spend
report is built from the ledger. The sandbox clock is fixed, so every run shows the
same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ledger.config_file import LedgerConfig, ProjectConfig
from ledger.errors import SourceError, StoreError
from ledger.pricebook import PriceBook
from ledger.store.read import data_start
from ledger.sync import CycleReport, openai_specs


@dataclass
class DemoRun:
    organisation: str
    now: int  # the sandbox's clock
    poll: CycleReport


def run_demo(engine: Engine, book: PriceBook) -> DemoRun:
    """Poll a freshly started sandbox organisation into `engine` (which must be empty)."""
    from ledger.sandbox import ORGANIZATION_ID, SandboxOrg, SandboxServer
    from ledger.sandbox.cast import PROJECTS
    from ledger.service import run_poll

    _require_empty(engine)
    org = SandboxOrg()
    with SandboxServer(org) as server:
        env = {"DEMO_ADMIN_KEY": server.admin_key}
        projects = []
        for name, key in server.project_keys.items():
            env[f"DEMO_KEY_{name.upper()}"] = key
            projects.append(ProjectConfig(name, f"DEMO_KEY_{name.upper()}", PROJECTS[name]))
        config = LedgerConfig(
            base_url=server.base_url,
            admin_key_env="DEMO_ADMIN_KEY",
            timeout_seconds=10.0,
            max_retries=2,
            window_days=7,
            projects=tuple(projects),
        )
        report = run_poll(engine, book, config, openai_specs(config, env), now=org.now)
    if report.failed:
        first = report.failed[0]
        raise SourceError(f"the demo poll failed: {first.source}: {first.error}")
    return DemoRun(ORGANIZATION_ID, org.now, report)


def _require_empty(engine: Engine) -> None:
    with engine.connect() as conn:
        used = data_start(conn) is not None
    if used:
        raise StoreError("the demo needs a fresh database, and this one already holds entries")
