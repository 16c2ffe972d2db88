"""Benchmark: one month's views of a year-sized ledger against raw GROUP BYs, by size.

The generator writes a ledger directly with set-based SQL (INSERT ... SELECT over an
hours x keys cross join), not through the CLI: 100 fine-tuned models x 10 projects x
2 API keys, hourly from 2025-01-01, each key active in ~57% of hours, so a year holds
~10M entries and January ~850k. A ledger of N rows is the first N/1142 hours: January
is the same at every size, so a view's cost must not grow with the ledger.

Each view of January runs as a whole process, alternating with its floor: a Python
process running the raw GROUP BY (sqlite3 or psycopg) at the view's grain over the
same rows and printing them as JSON. Views: `report monthly` (by model and `--by
day`), `export focus`, `budgets status` (one monthly budget), `forecast`, each as of
2025-01-31T12:00Z where a clock matters.

    python bench/year_ledger.py                                  # SQLite, 1M and 3M rows
    python bench/year_ledger.py --sizes 1000000,3000000,10000000
    python bench/year_ledger.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
    python bench/year_ledger.py --smoke                          # tiny ledgers (CI)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ftledger_cmd, summary, timed
from import_usage import Postgres

TARGET = 3.0
START = 1_735_689_600  # 2025-01-01T00:00Z
MONTH = "2025-01"
MONTH_END = 1_738_368_000  # 2025-02-01T00:00Z
NOW = "2025-01-31T12:00:00Z"
MODELS, PROJECTS, KEYS = 100, 10, 2
DENSITY = 571  # per mille of (hour, key) pairs with usage
BASES = ("gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14")
PER_HOUR = MODELS * PROJECTS * KEYS * DENSITY / 1000

COLUMNS = (
    "source, bucket_start, bucket_end, model, project_id, api_key_id, user_id, batch, "
    "service_tier, revision, requests, input_tokens, cached_tokens, output_tokens, "
    "cost_pico, base_cost_pico, unpriced, base_unpriced, price_version, recorded_at"
)
# r: the key's requests in the hour, a deterministic spread over 1..500.
GENERATE = f"""
INSERT INTO usage_entries ({COLUMNS})
SELECT 'openai', {START} + h * 3600, {START} + h * 3600 + 3600, k.model, k.project, k.api_key,
  '', {{false}}, 'default', 1, r, r * 300, r * 20, r * 40, r * 1234567, r * 345678, 0, 0,
  'bench', {START} + h * 3600 + 3600
FROM (SELECT h, k.kid, 1 + (h * 31 + k.kid * 17) % 500 AS r
      FROM bench_hours, bench_keys k
      WHERE (h * 7919 + k.kid * 104729) % 1000 < {DENSITY}) AS g
JOIN bench_keys k ON k.kid = g.kid
ORDER BY h, g.kid
"""
# Every entry's kind of bucket, as the ledger's own writers note it (store.ledger).
NOTE_KIND = "INSERT INTO usage_bucket_kinds (source, width, phase) VALUES ('openai', 3600, 0)"

BUDGETS = """
[[channel]]
name = "journal"
type = "log"

[[budget]]
name = "everything"
amount = "500000.00"
period = "monthly"
thresholds = [80, 100]
forecast_thresholds = [100]
channels = ["journal"]
"""

# (name, ftledger arguments, GROUP BY of the floor, floor's range starts before January?)
DAY = "bucket_start / 86400"
VIEWS: list[tuple[str, list[str], str]] = [
    ("report monthly", ["report", "monthly", "-m", MONTH, "-f", "json"], "model"),
    (
        "report monthly --by day",
        ["report", "monthly", "-m", MONTH, "--by", "day", "-f", "json"],
        f"model, {DAY}",
    ),
    (
        "export focus",
        ["export", "focus", "-m", MONTH],
        f"model, {DAY}, project_id, batch, service_tier",
    ),
    (
        "budgets status",
        ["budgets", "status", "--now", NOW, "-f", "json"],
        f"model, project_id, {DAY}",
    ),
    (
        "forecast",
        ["forecast", "-m", MONTH, "--now", NOW, "-f", "json"],
        f"model, project_id, {DAY}",
    ),
]

FLOOR = r"""
import json, sys
kind, url, group, start, end = sys.argv[1:6]
sql = (f"SELECT {group}, sum(requests), sum(input_tokens), sum(cached_tokens), "
       f"sum(output_tokens), sum(cost_pico), sum(base_cost_pico) FROM usage_entries "
       f"WHERE bucket_start >= {int(start)} AND bucket_start < {int(end)} GROUP BY {group} "
       f"ORDER BY {group}")
if kind == "sqlite":
    import sqlite3
    conn = sqlite3.connect(url)
else:
    import psycopg
    conn = psycopg.connect(url)
rows = conn.execute(sql).fetchall()
print(json.dumps([[str(v) for v in r] for r in rows], indent=1))
"""


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def hours_for(rows: int) -> int:
    return max(1, math.ceil(rows / PER_HOUR))


def key_rows() -> list[tuple[int, str, str, str]]:
    out = []
    for kid in range(MODELS * PROJECTS * KEYS):
        m, rest = divmod(kid, PROJECTS * KEYS)
        p, k = divmod(rest, KEYS)
        model = f"ft:{BASES[m % len(BASES)]}:acme:team{m % 12}:M{m:03d}"
        out.append((kid, model, f"proj_{p:02d}", f"key_{p:02d}_{k}"))
    return out


def generate_sqlite(db: Path, rows: int) -> int:
    import sqlite3

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("BEGIN")
    conn.execute("CREATE TEMP TABLE bench_keys (kid INTEGER PRIMARY KEY, model, project, api_key)")
    conn.executemany("INSERT INTO bench_keys VALUES (?, ?, ?, ?)", key_rows())
    conn.execute("CREATE TEMP TABLE bench_hours (h INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO bench_hours VALUES (?)", ((h,) for h in range(hours_for(rows))))
    conn.execute(GENERATE.format(false=0))
    conn.execute(NOTE_KIND)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    n = conn.execute("SELECT count(*) FROM usage_entries").fetchone()[0]
    conn.close()
    return int(n)


def generate_postgres(libpq: str, rows: int) -> int:
    import psycopg

    with psycopg.connect(libpq) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_keys "
            "(kid INT PRIMARY KEY, model TEXT, project TEXT, api_key TEXT)"
        )
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_keys VALUES (%s, %s, %s, %s)", key_rows())
        conn.execute(
            "CREATE TEMP TABLE bench_hours AS SELECT generate_series(0, %s) AS h",
            (hours_for(rows) - 1,),
        )
        conn.execute(GENERATE.format(false="false"))
        conn.execute(NOTE_KIND)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE usage_entries")
        row = conn.execute("SELECT count(*) FROM usage_entries").fetchone()
    return int(row[0]) if row else 0


def measure(
    label: str,
    views: Sequence[tuple[str, list[str], str]],
    url: str,
    floor_args: list[str],
    env: dict[str, str],
    runs: int,
    smoke: bool,
) -> list[str]:
    lines = []
    for name, args, group in views:
        ours = ftledger_cmd("--db", url, *args)
        floor = [sys.executable, "-c", FLOOR, *floor_args, group, str(START), str(MONTH_END)]
        if not smoke:
            timed(ours, env=env), timed(floor)  # warm caches
        ratios, ours_s, floor_s = [], [], []
        for _ in range(runs):
            f = timed(floor)
            o = timed(ours, env=env)
            ratios.append(o / f)
            ours_s.append(o)
            floor_s.append(f)
        lines.append(
            f"  {label} {name}: median {statistics.median(ours_s) * 1000:.0f} ms vs raw GROUP BY "
            f"{statistics.median(floor_s) * 1000:.0f} ms; "
            + summary(name, ratios, TARGET, smoke=smoke).split(": ", 1)[1]
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,3000000", help="ledger rows, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("LEDGER_BENCH_POSTGRES_URL"))
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--smoke", action="store_true", help="tiny ledgers, one round")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.smoke:
        sizes, args.runs = [5_000], 1
    print(load(), f"on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "budgets.toml").write_text(BUDGETS, encoding="utf-8")
        env = {**os.environ, "LEDGER_CONFIG_DIR": str(work)}
        for size in sizes:
            if not args.no_sqlite:
                db = work / f"ledger-{size}.db"
                url = f"sqlite:///{db}"
                subprocess.run(
                    ftledger_cmd("--db", url, "db", "upgrade"), check=True, capture_output=True
                )
                t = time.perf_counter()
                n = generate_sqlite(db, size)
                print(
                    f"sqlite: {n:,} entries generated in {time.perf_counter() - t:.0f}s; {load()}",
                    flush=True,
                )
                measure(
                    f"sqlite {n / 1e6:.1f}M",
                    VIEWS,
                    url,
                    ["sqlite", str(db)],
                    env,
                    args.runs,
                    args.smoke,
                )
                db.unlink()
            if args.postgres:
                pg = Postgres(args.postgres)
                try:
                    schema = pg.schema()
                    url = pg.ledger_url(schema)
                    subprocess.run(
                        ftledger_cmd("--db", url, "db", "upgrade"), check=True, capture_output=True
                    )
                    sep = "&" if "?" in pg.libpq else "?"
                    libpq = f"{pg.libpq}{sep}options=-csearch_path%3D{schema}"
                    t = time.perf_counter()
                    n = generate_postgres(libpq, size)
                    print(
                        f"postgres: {n:,} entries generated in "
                        f"{time.perf_counter() - t:.0f}s; {load()}",
                        flush=True,
                    )
                    measure(
                        f"postgres {n / 1e6:.1f}M",
                        VIEWS,
                        url,
                        ["postgres", libpq],
                        env,
                        args.runs,
                        args.smoke,
                    )
                finally:
                    pg.close()
    print(load())


if __name__ == "__main__":
    main()
