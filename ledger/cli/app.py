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
from ledger.cli.common import AppContext
from ledger.errors import LedgerError
from ledger.settings import load_settings

app = typer.Typer(
    name="ftledger",
    help="Cost and usage accounting for fine-tuned OpenAI models.\n\n"
    "Example: ftledger prices show ft:gpt-4o-mini:acme:support:A1b2 --at 2025-01-15",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL (default: $LEDGER_DATABASE_URL, else sqlite:///ledger.db).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Cost and usage accounting for fine-tuned OpenAI models."""
    ctx.obj = AppContext(load_settings(db))
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
    """Run the CLI; a LedgerError becomes one line on stderr and exit status 1."""
    try:
        app(args=argv, prog_name="ftledger")
    except LedgerError as exc:
        print(f"ftledger: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("ftledger: interrupted", file=sys.stderr)
        sys.exit(130)
