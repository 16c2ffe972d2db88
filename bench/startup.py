"""Benchmark: `ftledger --help` against `python -c "import typer"`, and `ftledger report
monthly` on an empty month against `python -c "import sqlalchemy"`.

Both pairs are whole processes of the same interpreter, alternating for many rounds so
machine noise hits both; the floors are what any Typer CLI pays before its first line,
and what any SQLAlchemy program pays before its first query. The report runs on a
current, empty SQLite ledger (created once, before timing). Also fails if `--help`
imported a module that only some commands need, or the report the ORM or OpenAI's SDK.

    python bench/startup.py            # 40 rounds
    python bench/startup.py --smoke    # 3 rounds (CI)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, ftledger_cmd, summary, timed

TARGET = 2.0
TARGET_REPORT = 2.0
HEAVY = ("sqlalchemy", "openai", "tiktoken", "apscheduler", "alembic", "rich", "httpx")
REPORT_HEAVY = ("sqlalchemy.orm", "openai", "tiktoken", "apscheduler", "alembic", "httpx")


def heavy_imports(*args: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """Modules among `heavy` (packages, or a package's module) that the command imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *ftledger_cmd(*args)[1:]],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()}
    names |= {name.split(".")[0] for name in names}
    return sorted(names.intersection(heavy))


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="three rounds")
    args = parser.parse_args()
    if args.smoke:
        args.runs = 3
    heavy = heavy_imports("--help")
    if heavy:
        sys.exit(f"startup: `ftledger --help` imports {', '.join(heavy)}")
    print(load())
    ours, floor = ftledger_cmd("--help"), [sys.executable, "-c", "import typer"]
    timed(ours), timed(floor)  # warm the file cache and .pyc files
    ratios, ours_mid, floor_mid = alternate(ours, floor, args.runs)
    print(
        f"startup: ftledger --help median {ours_mid * 1000:.0f} ms, "
        f"import typer median {floor_mid * 1000:.0f} ms; "
        f"no heavy imports ({', '.join(HEAVY)})"
    )
    print(summary("startup (ftledger --help)", ratios, TARGET, smoke=args.smoke))
    with tempfile.TemporaryDirectory() as tmp:
        db = ("--db", f"sqlite:///{Path(tmp) / 'ledger.db'}")
        subprocess.run(ftledger_cmd(*db, "db", "upgrade"), check=True, capture_output=True)
        report = ftledger_cmd(*db, "report", "monthly", "--month", "2025-01")
        heavy = heavy_imports(*report[3:], heavy=REPORT_HEAVY)
        if heavy:
            sys.exit(f"startup: `ftledger report monthly` imports {', '.join(heavy)}")
        floor = [sys.executable, "-c", "import sqlalchemy"]
        timed(report), timed(floor)
        print(load())
        ratios, ours_mid, floor_mid = alternate(report, floor, args.runs)
        print(load())
    print(
        f"startup: report monthly (empty month) median {ours_mid * 1000:.0f} ms, "
        f"import sqlalchemy median {floor_mid * 1000:.0f} ms; "
        f"no {', '.join(REPORT_HEAVY)}"
    )
    print(summary("report monthly, empty month", ratios, TARGET_REPORT, smoke=args.smoke))


if __name__ == "__main__":
    main()
