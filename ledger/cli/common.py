"""What every command group shares: the context object, options and output helpers."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from ledger.period import Month
    from ledger.pricebook import PriceBook


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format,
    typer.Option("--format", "-f", help="Output format: table for people, json/csv for machines."),
]


@dataclass
class AppContext:
    """Settings plus lazily opened resources, so `--help` opens nothing."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _pricebook: PriceBook | None = field(default=None, repr=False)

    @property
    def pricebook(self) -> PriceBook:
        if self._pricebook is None:
            from ledger.pricebook import load_pricebook

            self._pricebook = load_pricebook(self.settings.config_file("prices.toml"))
        return self._pricebook

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A connection for queries that never takes SQLite's write lock; a database
        error while reading ends the command in one line, like every other."""
        from ledger.store.engine import read_connection
        from ledger.store.errors import db_errors

        engine = self.engine
        with db_errors("reading the ledger", engine.url), read_connection(engine) as conn:
            yield conn

    @property
    def engine(self) -> Engine:
        """The ledger database, created or upgraded when it is embedded SQLite."""
        if self._engine is None:
            from ledger.store.engine import open_engine

            self._engine = open_engine(self.settings.database_url)
        return self._engine


def day_option(value: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option value (None when absent); a bad value is a usage error."""
    from ledger.period import parse_day

    if value is None:
        return None
    try:
        return parse_day(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def now_option(value: str | None) -> int | None:
    """The hidden --now clock override (unix seconds or ISO 8601, UTC by default)."""
    from ledger.period import parse_instant

    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--now") from None


def month_option(value: str | None, now: int | None = None) -> Month:
    """The --month value, or the current UTC month; a bad value is a usage error."""
    from ledger.period import Month

    if value is None:
        return Month.current(now)
    try:
        return Month.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--month") from None


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # a command invoked without the root callback
        obj = AppContext(load_settings())
        ctx.find_root().obj = obj
    return obj


def emit_json(data: Any, out: Path | None = None) -> None:
    write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", out)


def emit_csv(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], out: Path | None = None
) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    write_text(buffer.getvalue(), out)


def emit_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    out: Path | None = None,
) -> None:
    """A plain aligned text table: readable in a terminal, a pipe or a file."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(row, widths, strict=True)
            ).rstrip()
        )
    write_text("\n".join(lines) + "\n", out)


def _numeric(value: str) -> bool:
    return bool(value) and value.lstrip("-").replace(".", "", 1).replace("%", "").isdigit()


def write_text(text: str, out: Path | None = None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def emit(
    fmt: Format,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    document: Any = None,
    kind: str | None = None,
    title: str | None = None,
    out: Path | None = None,
) -> None:
    """Print rows in the chosen format; json prints `document`, by default the rows in
    the JSON envelope of `kind` (ledger.reports.documents.envelope)."""
    if fmt is Format.json:
        if document is None:
            from ledger.reports.documents import envelope

            document = envelope(kind or "rows", rows=rows)
        emit_json(document, out)
    elif fmt is Format.csv:
        emit_csv(rows, columns, out)
    else:
        emit_table(rows, columns, title=title, out=out)
