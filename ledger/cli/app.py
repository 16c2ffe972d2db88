"""The root Typer app: global options, command groups, and the one place errors are caught."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ledger.cli import budgets as budgets_cli
from ledger.cli import db as db_cli
from ledger.cli import estimate as estimate_cli
from ledger.cli import export as export_cli
from ledger.cli import importer as import_cli
from ledger.cli import poll as poll_cli
from ledger.cli import prices as prices_cli
from ledger.cli import reconcile as reconcile_cli
from ledger.cli import report as report_cli
from ledger.cli import reprice as reprice_cli
from ledger.cli.common import AppContext, as_database_url
from ledger.errors import LedgerError
from ledger.settings import load_settings

app = typer.Typer(
    name="ftledger",
    help="Cost and usage accounting for fine-tuned OpenAI models.\n\n"
    "Example: ftledger prices show ft:gpt-4o-mini:acme:support:A1b2 --at 2025-01-15",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from ledger import __version__

        print(f"ftledger {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL or SQLite file path, before or after the command "
            "(default: $LEDGER_DATABASE_URL, else ./ledger.db).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Cost and usage accounting for fine-tuned OpenAI models.

    Exit status: 0 ok, 1 a data problem (no ledger, a failed source, a bad file),
    2 a usage error (a bad option or value).
    """
    ctx.obj = AppContext(load_settings(as_database_url(db) if db else None), explicit_db=db)
    ctx.call_on_close(ctx.obj.close)


app.add_typer(prices_cli.app, name="prices")
app.add_typer(db_cli.app, name="db")
app.add_typer(import_cli.app, name="import")
# Command groups register below, one line each.
poll_cli.register(app)  # poll, status, serve, demo
app.command("estimate")(estimate_cli.estimate)
app.command("breakeven")(estimate_cli.breakeven)
report_cli.app.command("estimates")(estimate_cli.report_estimates)
app.add_typer(report_cli.app, name="report")
app.add_typer(export_cli.app, name="export")
app.command("reconcile")(reconcile_cli.reconcile)
app.add_typer(budgets_cli.app, name="budgets")
app.command("forecast")(budgets_cli.forecast)
app.command("reprice")(reprice_cli.reprice)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Every error is one line on stderr: a LedgerError (a data problem)
    exits 1, a usage error (bad option or value) exits 2; never a traceback."""
    args = hoist_db(list(sys.argv[1:] if argv is None else argv))
    try:
        code = app(args=args, prog_name="ftledger", standalone_mode=False)
    except LedgerError as exc:
        print(f"ftledger: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        print("ftledger: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors
        show = getattr(exc, "show", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and show is not None:
            show()
        else:
            print(f"ftledger: error: {_usage_message(exc)}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_message(exc: Exception) -> str:
    fmt = getattr(exc, "format_message", None)
    message = fmt() if callable(fmt) else str(exc)
    message = " ".join(str(message).split())
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path} " if ctx is not None else ""
    return f"{message} (see `{where}--help`)"


def hoist_db(args: list[str]) -> list[str]:
    """`--db` after the subcommand (`ftledger report monthly --db x.db`) moves before it,
    where the root option reads it; `demo` has its own --db and keeps it."""
    if "demo" in args[: next((i for i, a in enumerate(args) if a == "--"), len(args))]:
        return args
    out: list[str] = []
    moved: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        if i > 0 and arg == "--db" and i + 1 < len(args):
            moved += [arg, args[i + 1]]
            i += 2
            continue
        if i > 0 and arg.startswith("--db="):
            moved.append(arg)
            i += 1
            continue
        out.append(arg)
        i += 1
    return [*moved, *out]
