"""Benchmark: `ftledger import usage` of a large CSV against the floor.

The floor is Python's csv module feeding sqlite3.executemany into a table with the
same unique key, run as a whole process on the same file; a second import of the same
file is timed against the floor's INSERT OR IGNORE. Both sides start a fresh database
each round and alternate, so machine noise hits both.

    python bench/import_usage.py            # 1,000,000 rows, 3 rounds
    python bench/import_usage.py --smoke    # small file, one round (CI)
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ftledger_cmd, summary, timed

TARGET = 3.0
COLUMNS = [
    "start_time",
    "end_time",
    "model",
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
    "num_model_requests",
    "input_tokens",
    "input_cached_tokens",
    "output_tokens",
]

FLOOR = r"""
import csv, sqlite3, sys
path, db, again = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
conn = sqlite3.connect(db)
conn.execute('''CREATE TABLE IF NOT EXISTS usage (start_time INTEGER, end_time INTEGER,
  model TEXT, project_id TEXT, api_key_id TEXT, user_id TEXT, batch INTEGER,
  service_tier TEXT, requests INTEGER, input_tokens INTEGER, cached_tokens INTEGER,
  output_tokens INTEGER, UNIQUE (start_time, end_time, model, project_id, api_key_id,
  user_id, batch, service_tier))''')
verb = "INSERT OR IGNORE" if again else "INSERT"
with open(path, newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    next(rows)
    conn.executemany(f"{verb} INTO usage VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        ((int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6] == "true", r[7], int(r[8]),
          int(r[9]), int(r[10]), int(r[11])) for r in rows))
conn.commit()
"""


MONTH_START = 1_748_736_000  # 2025-06-01T00:00:00Z, after every price in the book took effect
MONTH_HOURS = 30 * 24


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """`rows` hourly buckets, all inside June 2025, over dozens of models, projects and keys.

    A whole month of a large organisation: the shape the report benchmark reads back.
    """
    rng = random.Random(seed)
    bases = ["gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-3.5-turbo-0125"]
    models = [f"ft:{b}:acme:team{i}:id{i:03d}" for b in bases for i in range(10)]
    models += [*bases, "ft:gpt-4.1-mini:acme:x:ckpt1:ckpt-step-50", "mystery-model"]
    dims = [(m, f"proj_{p}", f"key_{p}_{k}") for m in models for p in range(8) for k in range(6)]
    per_hour = -(-rows // MONTH_HOURS)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        written, hour = 0, 0
        while written < rows:
            t = MONTH_START + hour * 3600
            for model, project, key in rng.sample(dims, min(per_hour, rows - written)):
                inp = rng.randint(100, 2_000_000)
                batch = rng.random() < 0.1
                writer.writerow(
                    [
                        t,
                        t + 3600,
                        model,
                        project,
                        key,
                        "",
                        "true" if batch else "false",
                        "default",
                        rng.randint(1, 500),
                        inp,
                        rng.randint(0, inp // 2),
                        rng.randint(0, 500_000),
                    ]
                )
            written += min(per_hour, rows - written)
            hour += 1


def ledger_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM usage_entries").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny input, one round")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.runs = 5_000, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "usage.csv"
        generate(data, args.rows)
        print(f"{args.rows:,} rows, {data.stat().st_size / 1e6:.0f} MB")
        first, second = [], []
        for run in range(args.runs):
            floor_db, ours_db = work / f"floor{run}.db", work / f"ours{run}.db"
            floor_cmd = [sys.executable, "-c", FLOOR, str(data), str(floor_db)]
            ours = ftledger_cmd("--db", f"sqlite:///{ours_db}", "import", "usage", str(data))
            f1 = timed([*floor_cmd, "0"])
            o1 = timed([*ours, "--format", "json"])
            entries = ledger_rows(ours_db)
            o2_start = subprocess.run(
                [*ours, "--format", "json"], check=True, capture_output=True, text=True
            )
            assert json.loads(o2_start.stdout)["entries_posted"] == 0, "second import changed"
            o2 = timed([*ours, "--format", "json"])
            f2 = timed([*floor_cmd, "1"])
            assert ledger_rows(ours_db) == entries == args.rows, "row count changed"
            first.append(o1 / f1)
            second.append(o2 / f2)
            print(
                f"round {run + 1}: first import {o1:.2f}s vs floor {f1:.2f}s; "
                f"second import {o2:.2f}s vs floor {f2:.2f}s"
            )
        print(summary("import (first)", first, TARGET, smoke=args.smoke))
        print(summary("import (again, nothing changes)", second, TARGET, smoke=args.smoke))


if __name__ == "__main__":
    main()
