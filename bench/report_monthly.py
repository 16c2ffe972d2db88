"""Benchmark: `ftledger report monthly --format json` over a million-entry ledger.

The ledger is built once by `ftledger import usage` of bench/import_usage's generated
CSV; the floor's table is built once by that benchmark's floor script from the same
file. Then, alternating, as whole processes (start-up included): the report of one
month against a raw `GROUP BY model` over the floor's table for the same month,
printed as JSON.

    python bench/report_monthly.py            # 1,000,000 rows, 15 rounds
    python bench/report_monthly.py --smoke    # small ledger, one round (CI)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, ftledger_cmd, summary
from import_usage import FLOOR, generate

TARGET = 4.0
MONTH = "2025-06"  # bench/import_usage.generate puts every row in this month
MONTH_START, MONTH_END = 1_748_736_000, 1_751_328_000

FLOOR_REPORT = r"""
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute('''SELECT model, sum(requests), sum(input_tokens), sum(cached_tokens),
  sum(output_tokens) FROM usage WHERE start_time >= ? AND start_time < ? GROUP BY model''',
  (int(sys.argv[2]), int(sys.argv[3]))).fetchall()
print(json.dumps([dict(zip(("model", "requests", "input", "cached", "output"), r))
  for r in rows], indent=2))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="small ledger, one round")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.runs = 50_000, 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, floor_db, ours_db = work / "usage.csv", work / "floor.db", work / "ours.db"
        generate(data, args.rows)
        subprocess.run([sys.executable, "-c", FLOOR, str(data), str(floor_db), "0"], check=True)
        db = ("--db", f"sqlite:///{ours_db}")
        subprocess.run(
            ftledger_cmd(*db, "import", "usage", str(data)), check=True, stdout=subprocess.DEVNULL
        )
        ours = ftledger_cmd(*db, "report", "monthly", "--format", "json", "--month", MONTH)
        floor = [sys.executable, "-c", FLOOR_REPORT, str(floor_db), str(MONTH_START)]
        floor.append(str(MONTH_END))
        report = json.loads(subprocess.run(ours, check=True, capture_output=True).stdout)
        raw = json.loads(subprocess.run(floor, check=True, capture_output=True).stdout)
        totals = {k: sum(r[k] for r in raw) for k in ("requests", "input", "output")}
        mine = report["totals"]
        if (mine["requests"], mine["input_tokens"], mine["output_tokens"]) != tuple(
            totals.values()
        ):
            sys.exit(f"report totals {mine} differ from the floor's {totals}")
        ratios, ours_mid, floor_mid = alternate(ours, floor, args.runs)
        print(
            f"report: {args.rows:,} entries, month {MONTH} ({len(raw)} models, "
            f"{mine['requests']:,} requests); report monthly median "
            f"{ours_mid * 1000:.0f} ms, raw GROUP BY median {floor_mid * 1000:.0f} ms"
        )
        print(summary("report monthly --format json", ratios, TARGET, smoke=args.smoke))


if __name__ == "__main__":
    main()
