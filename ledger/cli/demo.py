"""`ftledger demo`: see ftledger work end to end in seconds, without a key."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import Format, FormatOption, write_text


def demo(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Keep the demo ledger in this fresh database (a SQLite path or a URL); "
            "default: a temporary one, deleted afterwards.",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Poll a simulated OpenAI organisation (a local sandbox, no key, no network) into a
    fresh ledger and print its monthly spend report.

    Example: ftledger demo --db demo.db
    """
    from ledger.cli.common import AppContext
    from ledger.demo import run_demo
    from ledger.pricebook import load_pricebook
    from ledger.resources import bundled_config_dir
    from ledger.store.engine import open_engine, redact_url

    root = ctx.find_root().obj
    if db is None and isinstance(root, AppContext):
        db = root.explicit_db  # `ftledger --db demo.db demo` means the same
    book = load_pricebook(bundled_config_dir() / "prices.toml")
    scratch = None if db else Path(tempfile.mkdtemp(prefix="ftledger-demo-"))
    url = _as_url(db) if db else f"sqlite:///{Path(str(scratch)) / 'demo.db'}"
    engine = open_engine(url)
    try:
        run = run_demo(engine, book)
        text = _report(engine, book, run.now, fmt)
        if fmt is Format.table:
            _header(run, url if db else None, redact_url)
        write_text(text)
    finally:
        engine.dispose()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _as_url(db: str) -> str:
    from ledger.cli.common import as_database_url

    return as_database_url(db)


def _header(run: Any, kept: str | None, redact: Any) -> None:
    from ledger.sync import COSTS_SOURCE, JOBS_SOURCE_PREFIX, USAGE_SOURCE, iso

    counts = {s.source: s for s in run.poll.sources}
    usage, costs = counts[USAGE_SOURCE], counts[COSTS_SOURCE]
    jobs = [s for name, s in counts.items() if name.startswith(JOBS_SOURCE_PREFIX)]
    where = f"into {redact(kept)}" if kept else "into a temporary ledger"
    print(
        f"Sandbox organisation {run.organisation}, simulated clock {iso(run.now)}: polled "
        f"{usage.read} usage buckets, {costs.read} billed cost lines and "
        f"{sum(j.read for j in jobs)} fine-tuning jobs "
        f"({sum(j.fees_posted for j in jobs)} training fees) {where}.\n"
    )
    if kept:
        print(f"Explore it: ftledger --db {redact(kept)} status\n")
    sys.stdout.flush()


def _report(engine: Any, book: Any, now: int, fmt: Format) -> str:
    """The sandbox month's spend report, rendered as `ftledger report` renders it."""
    from ledger import views
    from ledger.period import Month
    from ledger.reports.render import render_csv, render_json, render_table

    with engine.connect() as conn:
        report = views.monthly(conn, book, Month.current(now), now=now)
    if fmt is Format.json:
        return render_json(report)
    return render_csv(report) if fmt is Format.csv else render_table(report)
