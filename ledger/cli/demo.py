"""`ftledger demo`: see ftledger work end to end in seconds, without a key."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import Format, FormatOption, emit, write_text


def demo(
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
    from ledger.demo import run_demo
    from ledger.pricebook import load_pricebook
    from ledger.resources import bundled_config_dir
    from ledger.store.engine import open_engine, redact_url

    book = load_pricebook(bundled_config_dir() / "prices.toml")
    scratch = None if db else Path(tempfile.mkdtemp(prefix="ftledger-demo-"))
    url = _as_url(db) if db else f"sqlite:///{Path(str(scratch)) / 'demo.db'}"
    engine = open_engine(url)
    try:
        run = run_demo(engine, book)
        text = _report(engine, book, run.now, fmt)
        if fmt is Format.table:
            _header(run, url if db else None, redact_url)
        if text is not None:
            write_text(text)
    finally:
        engine.dispose()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _as_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def _header(run: Any, kept: str | None, redact: Any) -> None:
    from ledger.sync import iso

    counts = {s.source: s for s in run.poll.sources}
    usage, costs = counts["openai.usage"], counts["openai.costs"]
    jobs = [s for name, s in counts.items() if name.startswith("openai.jobs:")]
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


def _report(engine: Any, book: Any, now: int, fmt: Format) -> str | None:
    """The monthly report when the reports module is present, else a per-model summary."""
    try:
        from ledger.reports.monthly import monthly_report
        from ledger.reports.period import Month
        from ledger.reports.render import render_csv, render_json, render_table
    except ImportError:
        _summary(engine, now, fmt)
        return None
    with engine.connect() as conn:
        report = monthly_report(conn, book, Month.current(now))
    render = {Format.table: render_table, Format.json: render_json, Format.csv: render_csv}
    return render[fmt](report)


def _summary(engine: Any, now: int, fmt: Format) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from ledger.money import pico_display
    from ledger.store.tables import TrainingFee, UsageEntry

    moment = datetime.fromtimestamp(now, UTC)
    start = int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
    with engine.connect() as conn:
        usage = conn.execute(
            select(
                UsageEntry.model,
                func.sum(UsageEntry.input_tokens),
                func.sum(UsageEntry.output_tokens),
                func.sum(UsageEntry.cost_pico),
                func.sum(UsageEntry.base_cost_pico),
            )
            .where(UsageEntry.bucket_start >= start, UsageEntry.bucket_start < now)
            .group_by(UsageEntry.model)
            .order_by(UsageEntry.model)
        ).all()
        fees = dict(
            conn.execute(
                select(TrainingFee.model, func.sum(TrainingFee.cost_pico))
                .where(TrainingFee.finished_at >= start)
                .group_by(TrainingFee.model)
            ).all()
        )
    rows = [
        {
            "model": model,
            "input_tokens": int(inp),
            "output_tokens": int(out),
            "usage_cost": pico_display(None if cost is None else int(cost)),
            "base_model_cost": pico_display(None if base is None else int(base)),
            "training_cost": pico_display(fees.get(model)),
        }
        for model, inp, out, cost, base in usage
    ]
    emit(fmt, rows, list(rows[0]) if rows else ["model"], title=f"Spend {moment:%Y-%m}")
