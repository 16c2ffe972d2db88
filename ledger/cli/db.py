"""`ftledger db`: apply migrations and show the schema revision."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli.common import app_context

app = typer.Typer(
    help="Manage the ledger database schema (Alembic migrations).", no_args_is_help=True
)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: the newest). Safe to run twice.

    Example: ftledger --db postgresql+psycopg://ledger@db/ledger db upgrade
    """
    from ledger.store import migrate
    from ledger.store.engine import create_ledger_engine, redact_url

    url = app_context(ctx).settings.database_url
    engine = create_ledger_engine(url)
    try:
        migrate.upgrade(engine, revision)
        typer.echo(f"{redact_url(url)}: at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the newest one this version knows.

    Example: ftledger db current
    """
    from ledger.store import migrate
    from ledger.store.engine import SCHEMA_HEAD, create_ledger_engine, redact_url

    url = app_context(ctx).settings.database_url
    engine = create_ledger_engine(url)
    try:
        rev = migrate.current_revision(engine)
    finally:
        engine.dispose()
    if rev == SCHEMA_HEAD:
        state = "up to date"
    elif rev is not None and not migrate.known_revision(rev):
        state = "newer than this ftledger: upgrade ftledger"
    else:
        state = "behind: run `ftledger db upgrade`"
    typer.echo(f"{redact_url(url)}: revision {rev or '(none)'}, head {SCHEMA_HEAD} ({state})")
