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

    from ledger.allocation import Allocation
    from ledger.period import Month
    from ledger.pricebook import PriceBook
    from ledger.reports.table import Column


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="Output format: table for people, json/csv for machines (any case).",
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to FILE (`-` = stdout); without --format its extension picks the format "
        "(.json, .csv, .md, .html).",
        dir_okay=False,
        show_default=False,
    ),
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Table columns to show, comma-separated (see --wide for every column).",
        show_default=False,
    ),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Table: every column, at full width (may not fit).")
]
EXTENSION_FORMATS = {
    ".json": "json",
    ".csv": "csv",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "table",
}
NO_LEDGER_HINT = "run `ftledger poll` or `ftledger import usage`"


@dataclass(frozen=True)
class TableChoice:
    """`--columns` / `--wide` of a command that prints a table."""

    columns: str | None = None
    wide: bool = False


@dataclass
class AppContext:
    """Settings plus lazily opened resources, so `--help` opens nothing."""

    settings: Settings
    explicit_db: str | None = None  # --db as given, for `demo`
    _engine: Engine | None = field(default=None, repr=False)
    _pricebook: PriceBook | None = field(default=None, repr=False)

    @property
    def pricebook(self) -> PriceBook:
        if self._pricebook is None:
            from ledger.pricebook import load_pricebook

            self._pricebook = load_pricebook(self.settings.config_file("prices.toml"))
        return self._pricebook

    @property
    def allocation(self) -> Allocation:
        """Teams from allocation.toml (the bundled one defines none)."""
        from ledger.allocation import load_allocation

        return load_allocation(self.settings.config_file("allocation.toml"))

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

        engine = self.existing_engine
        with db_errors("reading the ledger", engine.url), read_connection(engine) as conn:
            yield conn

    @property
    def existing_engine(self) -> Engine:
        """The ledger for a read-only command: an embedded SQLite file that does not exist
        is an error ("no ledger at ..."), never created empty."""
        missing = missing_sqlite_file(self.settings.database_url)
        if missing is not None:
            from ledger.errors import StoreError

            folder = (
                "" if missing.parent.is_dir() else f" (the folder {missing.parent} does not exist)"
            )
            raise StoreError(f"no ledger at {missing}{folder}; {NO_LEDGER_HINT}")
        return self.engine

    @property
    def engine(self) -> Engine:
        """The ledger database, created or upgraded when it is embedded SQLite."""
        if self._engine is None:
            from ledger.store.engine import open_engine

            self._engine = open_engine(self.settings.database_url)
        return self._engine


def missing_sqlite_file(url: str) -> Path | None:
    """The path of an embedded SQLite database named by `url` that does not exist yet."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # opening it reports the bad URL
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.database).startswith("file:"):
        return None
    path = Path(str(parsed.database)).absolute()
    return None if path.exists() else path


def as_database_url(value: str) -> str:
    """`--db`: a URL, or a plain path to an embedded SQLite file (`--db ledger.db`)."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().absolute()}"


def output_format(ctx: typer.Context, fmt: Any, output: Path | None, param: str = "fmt") -> Any:
    """The format to write: --format when given, else the --output file's extension,
    else the default. A format the command cannot write is a usage error."""
    source = ctx.get_parameter_source(param)
    given = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
    if given or output is None or str(output) == "-":
        return fmt
    name = EXTENSION_FORMATS.get(output.suffix.lower())
    if name is None:
        return fmt
    try:
        return type(fmt)(name)
    except ValueError:
        choices = ", ".join(f.value for f in type(fmt))
        raise typer.BadParameter(
            f"cannot write {name} to {output}; this command writes {choices}",
            param_hint="--output",
        ) from None


def check_output(output: Path | None) -> Path | None:
    """The --output path to write (None: stdout, also for `-`); a folder that does not
    exist is a usage error before any work is done."""
    if output is None or str(output) == "-":
        return None
    folder = output.expanduser().absolute().parent
    if not folder.is_dir():
        raise typer.BadParameter(
            f"cannot write {output}: the folder {folder} does not exist", param_hint="--output"
        )
    return output


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
    columns: Sequence[str] | Sequence[Column],
    *,
    title: str | None = None,
    out: Path | None = None,
    totals: Sequence[dict[str, Any]] = (),
    footer: Sequence[str] = (),
    choice: TableChoice = TableChoice(),
) -> None:
    """A table for people: money as $1,234.57, counts with separators, the default
    columns (or --columns / --wide), fitted to the terminal width (COLUMNS, else 100)."""
    from ledger.reports.table import ColumnChoiceError, choose, infer, render, terminal_width

    specs = [c if not isinstance(c, str) else infer([c])[0] for c in columns]
    try:
        chosen = choose(specs, choice.columns, choice.wide)
    except ColumnChoiceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--columns") from None
    width = None if choice.wide else terminal_width()
    if not rows and not totals:
        write_text(f"{title or ''}\n" if title else "(none)\n", out)
        return
    text = render(chosen, rows, title=title, totals=totals, footer=footer, width=width)
    write_text(text, out)


def csv_columns(columns: Sequence[str] | Sequence[Column]) -> list[str]:
    return [c if isinstance(c, str) else c.key for c in columns]


def write_text(text: str, out: Path | None = None, *, append: bool = False) -> None:
    """Write to stdout (None or `-`) or a file; a file that cannot be written is one line."""
    if out is None or str(out) == "-":
        sys.stdout.write(text)
        return
    try:
        with out.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        from ledger.errors import LedgerError

        reason = exc.strerror or type(exc).__name__
        raise LedgerError(f"cannot write {out}: {reason}") from None


def emit(
    fmt: Format,
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | Sequence[Column],
    *,
    document: Any = None,
    kind: str | None = None,
    title: str | None = None,
    out: Path | None = None,
    totals: Sequence[dict[str, Any]] = (),
    footer: Sequence[str] = (),
    choice: TableChoice = TableChoice(),
) -> None:
    """Print rows in the chosen format; json prints `document`, by default the rows in
    the JSON envelope of `kind` (ledger.reports.documents.envelope). CSV has every
    column; the table the chosen ones, then `totals` and `footer`."""
    if fmt is Format.json:
        if document is None:
            from ledger.reports.documents import envelope

            document = envelope(kind or "rows", rows=rows)
        emit_json(document, out)
    elif fmt is Format.csv:
        emit_csv(rows, csv_columns(columns), out)
    else:
        emit_table(rows, columns, title=title, out=out, totals=totals, footer=footer, choice=choice)
