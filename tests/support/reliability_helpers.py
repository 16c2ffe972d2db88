"""Shared by the reliability tests: whole-ledger snapshots, subprocess runs, configs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine

from ledger.store.tables import (
    USAGE_KEY_COLUMNS,
    BilledCost,
    FineTuningJob,
    TrainingFee,
    UsageEntry,
)

WORKER = Path(__file__).with_name("reliability_worker.py")
POLL_ARGS = ("poll", "--now", "1750000000", "--since", "2025-06-11", "--no-alerts")


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a user could read from the ledger, in a backend-neutral form.

    Usage: the full sums per key (counts, cost, base cost) and the number of entries per
    key; training fees; jobs; OpenAI's billed costs. Two ledgers with equal snapshots
    answer every report the same.
    """
    cols = [getattr(UsageEntry, c) for c in USAGE_KEY_COLUMNS]
    sums = (
        func.sum(UsageEntry.requests),
        func.sum(UsageEntry.input_tokens),
        func.sum(UsageEntry.cached_tokens),
        func.sum(UsageEntry.output_tokens),
        func.sum(UsageEntry.cost_pico),
        func.sum(UsageEntry.base_cost_pico),
        func.count(),
    )
    with engine.connect() as conn:
        usage = {
            tuple(r[: len(cols)]): tuple(None if v is None else int(v) for v in r[len(cols) :])
            for r in conn.execute(select(*cols, *sums).group_by(*cols))
        }
        fees = {
            r.job_id: (r.model, r.trained_tokens, r.cost_pico, r.finished_at)
            for r in conn.execute(select(TrainingFee))
        }
        jobs = {
            r.id: (r.status, r.trained_tokens, r.fine_tuned_model, r.finished_at)
            for r in conn.execute(select(FineTuningJob))
        }
        billed = {
            (r.bucket_start, r.project_id, r.line_item, r.currency): r.amount
            for r in conn.execute(select(BilledCost))
        }
    return {"usage": usage, "fees": fees, "jobs": jobs, "billed": billed}


def entry_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in (
                "usage_entries",
                "training_fees",
                "fine_tuning_jobs",
                "billed_costs",
                "alert_decisions",
                "alert_deliveries",
            )
        }


def dump_text(engine: Engine) -> str:
    """Every row of every table as text: for searching the database for a secret."""
    parts = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(f"{table}: {tuple(row)!r}")
    return "\n".join(parts)


def ledger_toml(
    config_dir: Path,
    base_url: str,
    *,
    max_retries: int = 1,
    timeout: float = 5,
    window_days: int = 1,
    lookback_days: int = 1,
) -> Path:
    """A ledger.toml pointing at the sandbox, keys in T_ADMIN / T_KEY_<PROJECT>."""
    lines = [
        "[openai]",
        f'base_url = "{base_url}"',
        'admin_key_env = "T_ADMIN"',
        f"timeout_seconds = {timeout}",
        f"max_retries = {max_retries}",
        "[poll]",
        f"window_days = {window_days}",
        f"lookback_days = {lookback_days}",
    ]
    for name in ("support", "legal", "research"):
        lines += ["[[projects]]", f'name = "{name}"', f'key_env = "T_KEY_{name.upper()}"']
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "ledger.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def child_env(db_url: str, config_dir: Path, extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
    """The environment of an `ftledger` child process: its database, config and keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LEDGER_"))}
    env.update({"LEDGER_DATABASE_URL": db_url, "LEDGER_CONFIG_DIR": str(config_dir)})
    env.update(dict(extra))
    return env


def worker(args: list[str], env: Mapping[str, str], **options: str) -> subprocess.Popen[str]:
    """`ftledger ARGS` in a child process through tests/support/reliability_worker.py.

    options: barrier=PATH (wait for the file before running), mode=kill-on-deliver|nolock.
    """
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    return subprocess.Popen(
        [sys.executable, str(WORKER), *flags, "--", *args],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ftledger(
    args: list[str], env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m ledger ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
