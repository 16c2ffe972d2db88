"""Benchmark: `ftledger --help` against `python -c "import typer"`.

Both are whole processes of the same interpreter, alternating for many rounds so
machine noise hits both; the floor is what any Typer CLI pays before its first line.
Also fails if `--help` imported a module that only some commands need.

    python bench/startup.py            # 40 rounds
    python bench/startup.py --smoke    # 3 rounds (CI)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import alternate, ftledger_cmd, summary, timed

TARGET = 2.0
HEAVY = ("sqlalchemy", "openai", "tiktoken", "apscheduler", "alembic", "rich", "httpx")


def heavy_imports() -> list[str]:
    """Top-level packages among HEAVY that `ftledger --help` imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *ftledger_cmd("--help")[1:]],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()}
    return sorted(names.intersection(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="three rounds")
    args = parser.parse_args()
    if args.smoke:
        args.runs = 3
    heavy = heavy_imports()
    if heavy:
        sys.exit(f"startup: `ftledger --help` imports {', '.join(heavy)}")
    ours, floor = ftledger_cmd("--help"), [sys.executable, "-c", "import typer"]
    timed(ours), timed(floor)  # warm the file cache and .pyc files
    ratios, ours_mid, floor_mid = alternate(ours, floor, args.runs)
    print(
        f"startup: ftledger --help median {ours_mid * 1000:.0f} ms, "
        f"import typer median {floor_mid * 1000:.0f} ms; "
        f"no heavy imports ({', '.join(HEAVY)})"
    )
    print(summary("startup (ftledger --help)", ratios, TARGET, smoke=args.smoke))


if __name__ == "__main__":
    main()
