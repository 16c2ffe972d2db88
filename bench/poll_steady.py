"""Benchmark: a steady in-process poll that re-reads a busy lookback window, nothing new.

A SQLite ledger holds the trailing 3-day lookback (73 hourly buckets) of an organisation
with many keys per hour (default ~50k usage buckets). A usage reader serves that window
as the Usage API's JSON text, one page (1h buckets: 168 per page), parsed by the same
functions `ledger.sources.openai` uses. The poll is `ledger.sync.poll_sources` as
`ftledger serve` runs it, in-process (no start-up): read the window, compare it with
the ledger, post nothing, advance the watermark.

The floor, timed alternately in the same process: `json.loads` of the page, one range
read of the window's entries through sqlite3 into a dict, and a comparison of every
result's counts with it. Also printed: Python's peak traced allocation during a poll
against the page's own size (memory must be bounded by a page, not by the ledger).

    python bench/poll_steady.py             # ~50k buckets, 15 rounds
    python bench/poll_steady.py --smoke     # ~2k buckets, 3 rounds (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import summary

from ledger.config_file import LedgerConfig
from ledger.pricebook import load_pricebook
from ledger.settings import load_settings
from ledger.sources.checks import UsagePage
from ledger.sources.openai import USAGE, _buckets, _parse_page, _usage_observations
from ledger.store.engine import open_engine
from ledger.sync import USAGE_SOURCE, SourceSpec, poll_sources

TARGET = 3.0
HOUR = 3600
NOW = 1_750_000_000  # 2025-06-15T15:06:40Z
BASES = ("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14")


def page_body(keys_per_hour: int, hours: int, end_hour: int) -> str:
    """The Usage API's JSON text for `hours` hourly buckets ending at `end_hour`."""
    models = max(1, keys_per_hour // 20)
    data = []
    for h in range(end_hour - hours, end_hour):
        results = []
        for i in range(keys_per_hour):
            m, rest = divmod(i, 20)
            project, key = divmod(rest, 2)
            n = (h * 7919 + i * 104729) % 5000 + 1
            results.append(
                {
                    "object": "organization.usage.completions.result",
                    "input_tokens": n * 300,
                    "output_tokens": n * 40,
                    "input_cached_tokens": n * 20,
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "num_model_requests": n,
                    "project_id": f"proj_{project:02d}",
                    "user_id": None,
                    "api_key_id": f"key_{project:02d}_{key}",
                    "model": f"ft:{BASES[m % len(BASES)]}:acme:team{m % models}:M{m:03d}",
                    "batch": False,
                    "service_tier": "default",
                }
            )
        data.append(
            {
                "object": "bucket",
                "start_time": h * HOUR,
                "end_time": (h + 1) * HOUR,
                "results": results,
            }
        )
    return json.dumps({"object": "page", "data": data, "has_more": False, "next_page": None})


class PageReader:
    """A usage reader serving one page of JSON text, parsed as OpenAISource parses it."""

    def __init__(self, body: str) -> None:
        self.body = body

    def usage_pages(self, start: int, end: int, bucket_width: str) -> Any:
        body = json.loads(self.body)
        body["data"] = [b for b in body["data"] if start <= b["start_time"] < end]
        rows = _parse_page(USAGE, body, None, _usage_observations)
        yield UsagePage(rows, _buckets(body))

    def cost_pages(self, start: int, end: int) -> Any:
        return iter(())


FLOOR_SQL = (
    "SELECT bucket_start, bucket_end, model, project_id, api_key_id, user_id, batch, "
    "service_tier, requests, input_tokens, cached_tokens, output_tokens "
    "FROM usage_entries WHERE source = 'openai' AND bucket_start BETWEEN ? AND ?"
)


def floor(db: Path, body: str, start: int, end: int) -> int:
    """Parse the page and compare every result with the ledger's rows: changed count."""
    page = json.loads(body)
    conn = sqlite3.connect(db)
    held = {r[:8]: r[8:] for r in conn.execute(FLOOR_SQL, (start, end - 1))}
    conn.close()
    changed = 0
    for bucket in page["data"]:
        s, e = bucket["start_time"], bucket["end_time"]
        if not start <= s < end:
            continue
        for r in bucket["results"]:
            key = (
                s,
                e,
                r["model"],
                r["project_id"] or "",
                r["api_key_id"] or "",
                r["user_id"] or "",
                int(bool(r["batch"])),
                r["service_tier"] or "",
            )
            counts = (
                r["num_model_requests"],
                r["input_tokens"],
                r["input_cached_tokens"] or 0,
                r["output_tokens"],
            )
            if held.get(key) != counts:
                changed += 1
    return changed


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys-per-hour", type=int, default=700)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="small window, three rounds")
    args = parser.parse_args()
    if args.smoke:
        args.keys_per_hour, args.runs = 30, 3
    config = LedgerConfig()
    end_hour = NOW // HOUR + 1
    hours = end_hour - (NOW - config.lookback_days * 86400) // HOUR
    first_hour = (end_hour - hours) // 24 * 24  # the backfill starts at a day's start
    body = page_body(args.keys_per_hour, end_hour - first_hour, end_hour)
    buckets = hours * args.keys_per_hour
    print(
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        engine = open_engine(f"sqlite:///{db}")
        book = load_pricebook(load_settings().config_file("prices.toml"))
        reader = PageReader(body)
        spec = SourceSpec(USAGE_SOURCE, "usage", lambda: reader)
        since = datetime.fromtimestamp(first_hour * HOUR, UTC).date()
        first = poll_sources(engine, book, config, [spec], since=since, now=NOW).sources[0]
        if first.error or first.posted != (end_hour - first_hour) * args.keys_per_hour:
            sys.exit(f"setup poll: {first.as_row()}")
        window = ((end_hour - hours) * HOUR, end_hour * HOUR)

        def ours() -> None:
            report = poll_sources(engine, book, config, [spec], now=NOW + 900).sources[0]
            if report.error or report.posted or report.read != buckets:
                sys.exit(f"steady poll: {report.as_row()}")

        ratios, ours_s, floor_s = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            if floor(db, body, *window):
                sys.exit("floor: the ledger differs from the page")
            t1 = time.perf_counter()
            ours()
            t2 = time.perf_counter()
            floor_s.append(t1 - t0)
            ours_s.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        tracemalloc.start()
        ours()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        engine.dispose()
    page_mb = len(body) / 1e6
    print(
        f"poll steady (in-process, {hours} hourly buckets x {args.keys_per_hour} keys = "
        f"{buckets:,} usage buckets re-read, nothing new): "
        f"median {statistics.median(ours_s) * 1000:.0f} ms, "
        f"parse + compare floor median {statistics.median(floor_s) * 1000:.0f} ms; "
        f"peak traced memory {peak / 1e6:.0f} MB for a {page_mb:.0f} MB page"
    )
    print(load())
    print(summary("poll steady (in-process)", ratios, TARGET, smoke=args.smoke))


if __name__ == "__main__":
    main()
