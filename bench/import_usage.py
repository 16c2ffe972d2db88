"""Benchmark: `ftledger import usage` of a large CSV against the floor, time and memory.

SQLite: the floor is Python's csv module feeding sqlite3.executemany into a table with
the same unique key; a second import of the same file is timed against the floor's
INSERT OR IGNORE. PostgreSQL (with --postgres URL or LEDGER_BENCH_POSTGRES_URL): the
floor COPYs the file into a staging table and INSERTs ... ON CONFLICT DO NOTHING into a
table with the same unique key, both times. Each round starts fresh databases, runs
floor and ftledger alternately as whole processes, and records ftledger's peak RSS
(the import streams: memory must not grow with the file). The load average is printed
before and after, since the machine is shared.

    python bench/import_usage.py                      # 1,000,000 rows, 3 rounds, SQLite
    python bench/import_usage.py --rows 3000000 --runs 1
    python bench/import_usage.py --postgres postgresql+psycopg://postgres@127.0.0.1/test
    python bench/import_usage.py --smoke              # small file, one round (CI)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ftledger_cmd, summary, timed

TARGET = 2.0  # SQLite, first import and again
TARGET_PG = 2.5  # PostgreSQL, first import
TARGET_PG_AGAIN = 2.0
RSS_TARGET_MB = 300
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

FLOOR_PG = r"""
import sys, psycopg
url, path, schema = sys.argv[1], sys.argv[2], sys.argv[3]
with psycopg.connect(url, options=f"-csearch_path={schema}") as conn:
    conn.execute('''CREATE TABLE IF NOT EXISTS usage (start_time BIGINT, end_time BIGINT,
      model TEXT, project_id TEXT, api_key_id TEXT, user_id TEXT, batch BOOLEAN,
      service_tier TEXT, requests BIGINT, input_tokens BIGINT, cached_tokens BIGINT,
      output_tokens BIGINT, UNIQUE (start_time, end_time, model, project_id, api_key_id,
      user_id, batch, service_tier))''')
    conn.execute("CREATE TEMPORARY TABLE stage (LIKE usage) ON COMMIT DROP")
    # An empty cell is '' (as in the ledger), not NULL: NULLs would defeat the unique key.
    copy_sql = ("COPY stage FROM STDIN WITH (FORMAT csv, HEADER true, FORCE_NOT_NULL "
                "(model, project_id, api_key_id, user_id, service_tier))")
    with conn.cursor().copy(copy_sql) as copy:
        with open(path, "rb") as f:
            while data := f.read(1 << 20):
                copy.write(data)
    conn.execute("INSERT INTO usage SELECT * FROM stage ON CONFLICT DO NOTHING")
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
    per_hour = -(-rows // MONTH_HOURS)
    # Six keys per project up to ~1.2M rows; more keys (not more hours) past that.
    keys = max(6, -(-per_hour // (len(models) * 8)))
    dims = [(m, f"proj_{p}", f"key_{p}_{k}") for m in models for p in range(8) for k in range(keys)]
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


def sqlite_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM usage_entries").fetchone()[0])


def measured(cmd: Sequence[str]) -> tuple[float, float, str]:
    """Wall-clock seconds, peak RSS (MB) and stdout of a whole process; fails loudly.

    The peak is of the process and its children together (an import reads a large file
    in a second process): their resident sizes, summed every 10 ms, or the largest one
    alone as the kernel counted it, whichever is more.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    peak = [0]
    sampler = threading.Thread(target=_sample_rss, args=(proc, peak), daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    sampler.join()
    if status:
        raise SystemExit(f"failed (status {status}): {' '.join(cmd)}")
    return seconds, max(peak[0], usage.ru_maxrss) / 1024, out


def _sample_rss(proc: subprocess.Popen[str], peak: list[int]) -> None:
    """The peak of the summed resident sizes (kB) of `proc` and its children (Linux),
    until the process is gone."""
    while True:
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            total = sum(_rss_kb(pid) for pid in [str(proc.pid), *children])
        except OSError:
            return  # ended (or no /proc): the kernel's count stands
        peak[0] = max(peak[0], total)
        time.sleep(0.01)


def _rss_kb(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # a child that just ended
    return 0


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


class Postgres:
    """Fresh schemas in one PostgreSQL database, dropped at the end."""

    def __init__(self, url: str):
        import psycopg

        self.url = url
        self.libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.admin = psycopg.connect(self.libpq, autocommit=True)
        self.schemas: list[str] = []

    def schema(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        self.admin.execute(f'CREATE SCHEMA "{name}"')
        self.schemas.append(name)
        return name

    def ledger_url(self, schema: str) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}options=-csearch_path%3D{schema}"

    def rows(self, schema: str, table: str) -> int:
        row = self.admin.execute(f'SELECT count(*) FROM "{schema}".{table}').fetchone()
        return int(row[0]) if row else 0

    def drop(self) -> None:
        while self.schemas:
            self.admin.execute(f'DROP SCHEMA "{self.schemas.pop()}" CASCADE')

    def close(self) -> None:
        self.drop()
        self.admin.close()


class Case:
    """Time ratios and peak RSS of one benchmark case over the rounds."""

    def __init__(self, name: str, target: float):
        self.name, self.target = name, target
        self.ratios: list[float] = []
        self.rss: list[float] = []

    def add(self, ours: float, floor: float, rss: float) -> str:
        self.ratios.append(ours / floor)
        self.rss.append(rss)
        return f"{self.name} {ours:.2f}s vs floor {floor:.2f}s, peak RSS {rss:.0f} MB"

    def report(self, smoke: bool) -> str:
        peak = max(self.rss)
        verdict = "" if smoke else (": meets" if peak <= RSS_TARGET_MB else ": MISSES")
        return (
            f"{summary(self.name, self.ratios, self.target, smoke=smoke)}; "
            f"peak RSS {peak:.0f} MB (target <= {RSS_TARGET_MB}){verdict}"
        )


def import_cmd(url: str, data: Path) -> list[str]:
    return ftledger_cmd("--db", url, "import", "usage", str(data), "--format", "json")


def upgrade(url: str) -> None:
    """Create the schema untimed: the benchmark times imports, not migrations."""
    subprocess.run(ftledger_cmd("--db", url, "db", "upgrade"), check=True, capture_output=True)


def posted(out: str) -> int:
    return int(json.loads(out)["entries_posted"])


def bench_sqlite(work: Path, data: Path, rows: int, runs: int) -> list[Case]:
    first = Case("import (first)", TARGET)
    again = Case("import (again, nothing changes)", TARGET)
    for run in range(runs):
        floor_db, ours_db = work / f"floor{run}.db", work / f"ours{run}.db"
        floor_cmd = [sys.executable, "-c", FLOOR, str(data), str(floor_db)]
        ours_url = f"sqlite:///{ours_db}"
        upgrade(ours_url)
        f1 = timed([*floor_cmd, "0"])
        o1, rss1, out = measured(import_cmd(ours_url, data))
        assert posted(out) == rows == sqlite_rows(ours_db), "the first import lost rows"
        o2, rss2, out = measured(import_cmd(ours_url, data))
        assert posted(out) == 0, "the second import changed the ledger"
        f2 = timed([*floor_cmd, "1"])
        assert sqlite_rows(ours_db) == rows, "row count changed"
        print(f"round {run + 1}: {first.add(o1, f1, rss1)}; {again.add(o2, f2, rss2)}")
        for path in work.glob(f"*{run}.db*"):
            path.unlink()
    return [first, again]


def bench_postgres(url: str, data: Path, rows: int, runs: int) -> list[Case]:
    first = Case("postgres import (first)", TARGET_PG)
    again = Case("postgres import (again, nothing changes)", TARGET_PG_AGAIN)
    pg = Postgres(url)
    try:
        for run in range(runs):
            floor_schema, ours_schema = pg.schema(), pg.schema()
            floor_cmd = [sys.executable, "-c", FLOOR_PG, pg.libpq, str(data), floor_schema]
            ours_url = pg.ledger_url(ours_schema)
            upgrade(ours_url)
            f1 = timed(floor_cmd)
            o1, rss1, out = measured(import_cmd(ours_url, data))
            assert posted(out) == rows == pg.rows(ours_schema, "usage_entries"), "lost rows"
            o2, rss2, out = measured(import_cmd(ours_url, data))
            assert posted(out) == 0, "the second import changed the ledger"
            f2 = timed(floor_cmd)
            floor_rows = pg.rows(floor_schema, "usage")
            assert floor_rows == rows, f"the floor holds {floor_rows} rows"
            print(f"round {run + 1}: {first.add(o1, f1, rss1)}; {again.add(o2, f2, rss2)}")
            pg.drop()
    finally:
        pg.close()
    return [first, again]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("LEDGER_BENCH_POSTGRES_URL", ""),
        help="also benchmark on this PostgreSQL database (fresh schemas, dropped after)",
    )
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--smoke", action="store_true", help="tiny input, one round")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.runs = 5_000, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "usage.csv"
        generate(data, args.rows)
        print(f"{args.rows:,} rows, {data.stat().st_size / 1e6:.0f} MB; {load()}")
        cases: list[Case] = []
        if not args.no_sqlite:
            cases += bench_sqlite(work, data, args.rows, args.runs)
        if args.postgres:
            cases += bench_postgres(args.postgres, data, args.rows, args.runs)
        for case in cases:
            print(case.report(args.smoke))
        print(load())


if __name__ == "__main__":
    main()
