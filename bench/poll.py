"""Benchmark: requests `ftledger poll` makes, against the fewest the API allows.

A sandbox organisation (the fake OpenAI on loopback) serves 60 days of traffic; the
real `ftledger poll` (a subprocess, configured by a ledger.toml with the defaults
except the sandbox URL and key variables) backfills them at 1h buckets, then polls
again 15 minutes later, as `ftledger serve` would. The sandbox counts the requests it
served per endpoint.

The minimum for the backfill: ceil(hours / 168) usage pages (168 hourly buckets per
page at most), ceil(days / 180) cost pages, and for each project ceil(jobs / 100) job
pages (at least one). A steady-state poll cannot do with less than one request per
source: it re-reads the trailing lookback window (OpenAI revises recent buckets), which
at 1h buckets and a few days' lookback fits in one usage page and one cost page.

    python bench/poll.py            # 60-day backfill and a 15-minute poll
    python bench/poll.py --smoke    # 7-day backfill (CI)
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ftledger_cmd

from ledger.sandbox import HOUR, SandboxOrg, SandboxServer

NOW = 1_750_000_000  # 2025-06-15T15:06:40Z, the sandbox's default clock
STEADY = 15 * 60
ENDPOINTS = ("usage", "costs", "jobs")


def minimum(org: SandboxOrg, start: int, now: int, projects: list[str]) -> dict[str, int]:
    """The fewest requests that can read [start, end of now's hour) at 1h buckets."""
    hours = (now // HOUR + 1) - start // HOUR
    days = math.ceil(hours / 24)
    job_pages = sum(max(1, math.ceil(len(org.jobs(p)) / 100)) for p in projects)
    return {"usage": math.ceil(hours / 168), "costs": math.ceil(days / 180), "jobs": job_pages}


def counts(server: SandboxServer) -> dict[str, int]:
    return {e: server.requests[e] for e in ENDPOINTS}


def line(name: str, made: dict[str, int], floor: dict[str, int] | None = None) -> str:
    parts = [f"{e} {made[e]}" + (f"/{floor[e]}" if floor else "") for e in ENDPOINTS]
    total = sum(made.values())
    ratio = f", {total / sum(floor.values()):.2f}x the minimum" if floor else ""
    return f"{name}: {total} requests ({', '.join(parts)}){ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="backfill length in days")
    parser.add_argument("--smoke", action="store_true", help="a 7-day backfill")
    args = parser.parse_args()
    if args.smoke:
        args.days = 7
    since = (datetime.fromtimestamp(NOW, UTC) - timedelta(days=args.days)).date()
    start = int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp())
    org = SandboxOrg(now=NOW, days=args.days + 1)
    with SandboxServer(org) as server, tempfile.TemporaryDirectory() as tmp:
        projects = list(server.project_keys)
        config = Path(tmp)
        toml = ["[openai]", f'base_url = "{server.base_url}"', 'admin_key_env = "BENCH_ADMIN"']
        env = {**os.environ, "LEDGER_CONFIG_DIR": str(config), "BENCH_ADMIN": server.admin_key}
        for name, key in server.project_keys.items():
            toml += ["[[projects]]", f'name = "{name}"', f'key_env = "BENCH_{name.upper()}"']
            env[f"BENCH_{name.upper()}"] = key
        (config / "ledger.toml").write_text("\n".join(toml) + "\n", encoding="utf-8")
        (config / "ledger.toml").chmod(0o600)
        db = ("--db", f"sqlite:///{config / 'ledger.db'}")

        def poll(now: int, *extra: str) -> dict[str, int]:
            before = counts(server)
            cmd = ftledger_cmd(*db, "poll", "--now", str(now), "--no-alerts", *extra)
            subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
            return {e: n - before[e] for e, n in counts(server).items()}

        backfill = poll(NOW, "--since", since.isoformat())
        floor = minimum(org, start, NOW, projects)
        org.advance(NOW + STEADY)
        steady = poll(NOW + STEADY)
        steady_floor = {"usage": 1, "costs": 1, "jobs": minimum(org, NOW, NOW, projects)["jobs"]}
    hours = (NOW // HOUR + 1) - start // HOUR
    print(line(f"poll backfill ({args.days} days, {hours} hourly buckets)", backfill, floor))
    print(line("poll steady state (15 minutes later)", steady, steady_floor))


if __name__ == "__main__":
    main()
