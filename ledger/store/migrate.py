"""Alembic, driven from code: upgrade, downgrade, current and head revisions.

Database errors leave here translated (store.errors), and so do Alembic's own: a
target revision it does not know, or a database at a revision newer than this code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ledger.errors import StoreError
from ledger.resources import migrations_dir
from ledger.store.errors import db_errors, redact_url

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revision(revision: str) -> bool:
    """Whether this version's migrations contain `revision` (False: a newer ftledger's)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return any(r.revision == revision for r in script.walk_revisions())


def newer_schema(engine: Engine, revision: str) -> StoreError:
    """The error for a database migrated by a newer ftledger than this one."""
    return StoreError(
        f"database {redact_url(engine.url)} is at revision {revision}, newer than this "
        "ftledger knows: upgrade ftledger"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`; a database already past what this version knows is refused."""
    from alembic import command

    current = current_revision(engine)
    if current is not None and not known_revision(current):
        raise newer_schema(engine, current)
    with _migration_errors(engine, "upgrading the database schema"), engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with _migration_errors(engine, "downgrading the database schema"), engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    from sqlalchemy import inspect, text

    with db_errors("opening the database", engine.url), engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextmanager
def _migration_errors(engine: Engine, doing: str) -> Iterator[None]:
    from alembic.util import CommandError

    try:
        with db_errors(doing, engine.url):
            yield
    except CommandError as exc:  # e.g. "Can't locate revision identified by '0009'"
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"{doing} of {redact_url(engine.url)} failed: {line}") from None
