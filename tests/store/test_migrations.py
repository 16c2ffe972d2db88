"""Alembic owns the schema: one head, up and down cleanly, and the models agree with it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from ledger.errors import SchemaBehindError
from ledger.store import migrate
from ledger.store.base import Base
from ledger.store.engine import SCHEMA_HEAD, create_ledger_engine, open_engine


def test_single_head_matches_the_code():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert heads == [SCHEMA_HEAD]


# SQLite cannot reflect an index on an expression (usage_entries' span index, 0008)
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index"
)
def test_upgrade_downgrade_upgrade_and_models_match(db_url):
    engine = create_ledger_engine(db_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # twice is harmless
        assert migrate.current_revision(engine) == SCHEMA_HEAD
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        engine.dispose()


def test_embedded_sqlite_upgrades_itself_a_server_database_is_refused(db_url):
    if db_url.startswith("sqlite"):
        engine = open_engine(db_url)
        try:
            assert migrate.current_revision(engine) == SCHEMA_HEAD
        finally:
            engine.dispose()
    else:
        with pytest.raises(SchemaBehindError, match="run `ftledger db upgrade`"):
            open_engine(db_url)


def test_db_commands(cli, db_url):
    before = cli("--db", db_url, "db", "current")
    assert "revision (none)" in before.stdout and "behind" in before.stdout
    assert cli("--db", db_url, "db", "upgrade").exit_code == 0
    assert cli("--db", db_url, "db", "upgrade").exit_code == 0
    after = cli("--db", db_url, "db", "current")
    assert f"revision {SCHEMA_HEAD}" in after.stdout and "up to date" in after.stdout


def test_unreachable_database_is_one_line_without_password(cli):
    result = cli(
        "--db",
        "postgresql+psycopg://u:s3cret@127.0.0.1:1/none?connect_timeout=2",
        "import",
        "usage",
        "missing.csv",
    )
    assert result.exit_code == 1
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
