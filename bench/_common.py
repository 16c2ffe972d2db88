"""Shared by the benchmarks: timing whole processes and summarising ratios."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ftledger_cmd(*args: str) -> list[str]:
    """Run the CLI with the same interpreter, so the benchmark uses this environment."""
    return [sys.executable, "-m", "ledger", *args]


def timed(cmd: Sequence[str], **kwargs: object) -> float:
    """Wall-clock seconds of a whole process (start-up included); fails loudly."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start


def alternate(
    ours: Sequence[str], floor: Sequence[str], runs: int
) -> tuple[list[float], float, float]:
    """Time both commands `runs` times, floor first, alternating so noise hits both.

    Returns the ratios (ours / floor) and each side's middle time in seconds.
    """
    ratios, ours_s, floor_s = [], [], []
    for _ in range(runs):
        f = timed(floor)
        o = timed(ours)
        ratios.append(o / f)
        ours_s.append(o)
        floor_s.append(f)
    ours_s.sort()
    floor_s.sort()
    return ratios, ours_s[len(ours_s) // 2], floor_s[len(floor_s) // 2]


def summary(name: str, ratios: list[float], target: float, *, smoke: bool = False) -> str:
    """The line BENCHMARKS.md quotes; a smoke run's tiny input is not judged."""
    med = statistics.median(ratios)
    verdict = "smoke run, not judged" if smoke else ("meets" if med <= target else "MISSES")
    return (
        f"{name}: median ratio {med:.2f} (range {min(ratios):.2f}-{max(ratios):.2f}, "
        f"{len(ratios)} runs), target <= {target:.1f}: {verdict}"
    )
