"""Alembic owns the schema: one head, up and down cleanly, and the models agree with it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from ledger.errors import SchemaBehindError
from ledger.store import migrate
from ledger.store.base import Base
from ledger.store.engine import SCHEMA_HEAD, create_ledger_engine, open_engine
from ledger.store.overlap import widest_span


def test_single_head_matches_the_code():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert heads == [SCHEMA_HEAD]


# SQLite cannot reflect an index on an expression (usage_entries' span index, 0008-0009)
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
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


def test_0010_notes_each_kind_of_bucket_held_and_0009_its_lengths(db_url):
    """Kinds are (source, width, start modulo width), floored as Python floors; the way
    back keeps the lengths."""
    engine = create_ledger_engine(db_url)
    insert = sa.text(
        "INSERT INTO usage_entries (source, bucket_start, bucket_end, model, project_id, "
        "api_key_id, user_id, batch, service_tier, revision, requests, input_tokens, "
        "cached_tokens, output_tokens, cost_pico, base_cost_pico, price_version, recorded_at) "
        "VALUES (:source, :start, :end, 'm', '', '', '', false, '', 1, 1, 10, 0, 5, 7, 3, "
        "'v', 0)"
    )
    entries = [
        {"source": "import", "start": 3600, "end": 7200},
        {"source": "import", "start": 7200, "end": 10_800},
        {"source": "import", "start": -1800, "end": 1800},  # before 1970, half past
        {"source": "openai.usage", "start": 0, "end": 86_400},
    ]
    try:
        migrate.upgrade(engine, "0009")
        with engine.begin() as conn:
            conn.execute(insert, entries)
        migrate.upgrade(engine)
        with engine.begin() as conn:
            kinds = conn.execute(sa.text("SELECT source, width, phase FROM usage_bucket_kinds"))
            assert sorted(kinds) == [
                ("import", 3600, 0),
                ("import", 3600, 1800),
                ("openai.usage", 86_400, 0),
            ]
            assert widest_span(conn) == 86_400
        migrate.downgrade(engine, "0009")
        with engine.begin() as conn:
            widths = conn.execute(sa.text("SELECT width FROM usage_bucket_widths"))
            assert sorted(widths) == [(3600,), (86_400,)]
    finally:
        engine.dispose()


def test_0009_keeps_every_entry_notes_their_bucket_lengths_and_keeps_keys_unique(db_url):
    """The unique key rebuilt time-first holds the same entries and still refuses a
    second copy of one; the overlap check's reach is the longest bucket held."""
    engine = create_ledger_engine(db_url)
    columns = (
        "source, bucket_start, bucket_end, model, project_id, api_key_id, user_id, batch, "
        "service_tier, revision, requests, input_tokens, cached_tokens, output_tokens, "
        "cost_pico, base_cost_pico, price_version, recorded_at"
    )
    insert = sa.text(
        f"INSERT INTO usage_entries ({columns}) VALUES ('import', :start, :end, 'm', '', '', "
        "'', false, '', 1, 1, 10, 0, 5, 7, 3, 'v', 0)"
    )
    try:
        migrate.upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.execute(insert, [{"start": 0, "end": 3600}, {"start": 86_400, "end": 172_800}])
        migrate.upgrade(engine)
        with engine.begin() as conn:
            assert widest_span(conn) == 86_400
            rows = conn.execute(sa.text("SELECT bucket_start, cost_pico FROM usage_entries"))
            assert sorted(rows) == [(0, 7), (86_400, 7)]
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"start": 0, "end": 3600})
        migrate.downgrade(engine, "0008")
        with engine.begin() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM usage_entries")).scalar_one()
            assert count == 2
    finally:
        engine.dispose()
