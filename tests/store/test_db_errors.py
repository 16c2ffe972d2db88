"""A missing, unreachable or misconfigured database ends every command in one line.

The one DB-error seam (ledger.store.errors) maps SQLAlchemy and driver errors onto the
LedgerError tree; the CLI prints them as `ftledger: error: ...` and exits 1. Never a
traceback, never the password of the URL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from ledger.errors import ConflictError, SchemaBehindError, StoreError
from ledger.store.errors import db_errors, in_transaction, retry_on_conflict
from ledger.store.tables import Watermark

UNREACHABLE = "postgresql+psycopg://ledger:s3cret@127.0.0.1:1/ledger?connect_timeout=2"
POSTGRES_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", "")

# One or more commands of every family that opens the database.
COMMANDS = [
    ("db", "upgrade"),
    ("db", "current"),
    ("report", "monthly", "--month", "2025-06"),
    ("report", "estimates"),
    ("export", "focus", "--month", "2025-06"),
    ("reconcile", "--month", "2025-06"),
    ("status",),
    ("poll", "--no-alerts"),
    ("budgets", "status"),
    ("budgets", "check"),
    ("forecast",),
    ("reprice",),
]


def one_line_error(result, *needles: str) -> str:
    """The single stderr line of a failed command, checked for the usual promises."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("ftledger: error: "), line
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    for needle in needles:
        assert needle in line, line
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unreachable_server_is_one_line_for_every_command(cli, command):
    line = one_line_error(cli("--db", UNREACHABLE, *command), "cannot connect to")
    assert "ledger:***@127.0.0.1:1/ledger" in line  # which database, without its password


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_sqlite_file_in_a_missing_folder_is_one_line_for_every_command(cli, tmp_path, command):
    missing = tmp_path / "no" / "such" / "folder"
    url = f"sqlite:///{missing / 'ledger.db'}"
    one_line_error(cli("--db", url, *command), f"the folder {missing}", "does not exist")
    assert not missing.exists()


def test_the_real_entry_point_prints_one_line_and_no_traceback(tmp_path):
    """`python -m ledger` in a fresh process, `serve` included (it must not start)."""
    env = {**os.environ, "LEDGER_DATABASE_URL": UNREACHABLE}
    for command in (["db", "upgrade"], ["serve", "--every-seconds", "1", "--no-alerts"]):
        done = subprocess.run(
            [sys.executable, "-m", "ledger", *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, done.stderr
        assert len(lines) == 1 and lines[0].startswith("ftledger: error: "), done.stderr
        assert "cannot connect to" in lines[0] and "s3cret" not in done.stderr


def _usage_csv(path: Path) -> Path:
    path.write_text(
        "start_time,end_time,model,project_id,batch,num_model_requests,"
        "input_tokens,input_cached_tokens,output_tokens\n"
        "1749686400,1749690000,gpt-4o-mini-2024-07-18,proj,false,1,10,0,5\n",
        encoding="utf-8",
    )
    return path


def test_a_read_only_sqlite_file_fails_writes_in_one_line(cli, tmp_path):
    db = tmp_path / "ledger.db"
    assert cli("--db", f"sqlite:///{db}", "db", "upgrade").exit_code == 0
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    assert cli("--db", read_only, "report", "monthly", "--month", "2025-06").exit_code == 0
    result = cli("--db", read_only, "import", "usage", str(_usage_csv(tmp_path / "u.csv")))
    one_line_error(result, "is read-only")


def _set_revision(db: Path, revision: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_schema_newer_than_this_version_is_refused_not_migrated(cli, tmp_path):
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    assert cli("--db", url, "db", "upgrade").exit_code == 0
    _set_revision(db, "9999")
    for command in (("report", "monthly"), ("db", "upgrade"), ("status",)):
        one_line_error(cli("--db", url, *command), "revision 9999", "upgrade ftledger")
    current = cli("--db", url, "db", "current")
    assert current.exit_code == 0 and "newer than this ftledger" in current.stdout


@pytest.mark.parametrize(
    "command",
    [
        ("report", "monthly", "--month", "2025-06"),
        ("export", "focus", "--month", "2025-06"),
        ("reconcile", "--month", "2025-06"),
        ("forecast",),
        ("budgets", "check"),
        ("status",),
    ],
    ids=" ".join,
)
def test_a_ledger_missing_a_table_is_one_line_when_read(cli, tmp_path, command):
    """A schema that claims to be current but is not: the reads themselves fail."""
    db = tmp_path / "ledger.db"
    assert cli("--db", f"sqlite:///{db}", "db", "upgrade").exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE usage_entries")
        conn.execute("DROP TABLE watermarks")
        conn.execute("DROP TABLE alert_deliveries")
    one_line_error(cli("--db", f"sqlite:///{db}", *command), "run `ftledger db upgrade`")


def test_an_unknown_target_revision_is_one_line(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    one_line_error(cli("--db", url, "db", "upgrade", "nonesuch"), "nonesuch")


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs LEDGER_TEST_POSTGRES_URL")
def test_a_missing_postgres_database_is_one_line(cli):
    url = make_url(POSTGRES_URL).set(database="ftledger_no_such_database")
    shown = url.render_as_string(hide_password=False)
    for command in (("db", "upgrade"), ("db", "current"), ("report", "monthly")):
        one_line_error(cli("--db", shown, *command), '"ftledger_no_such_database" does not exist')


# --- the seam itself -----------------------------------------------------------------


def _error(engine, statement, *params, conflict=None) -> StoreError:
    """What db_errors makes of executing `statement` (which must fail)."""
    try:
        with db_errors("working", engine.url, conflict=conflict), engine.begin() as conn:
            conn.execute(statement, *params)
    except StoreError as exc:
        return exc
    raise AssertionError("the statement did not fail")


def test_a_unique_violation_is_a_conflict_and_other_errors_a_store_error(engine):
    row = {"source": "s", "consecutive_failures": 0}
    with engine.begin() as conn:
        conn.execute(insert(Watermark), row)
    lost = _error(engine, insert(Watermark), row)
    assert type(lost) is ConflictError
    assert str(lost).startswith("working failed: a concurrent writer won")
    assert str(_error(engine, insert(Watermark), row, conflict="taken")) == "taken"
    behind = _error(engine, text("SELECT * FROM no_such_table"))
    assert type(behind) is SchemaBehindError and "run `ftledger db upgrade`" in str(behind)
    other = _error(engine, text("SELECT no_such_column FROM watermarks"))
    assert type(other) is StoreError and str(other).startswith("working failed: ")
    assert "\n" not in str(other) and "SELECT" not in str(other)


def test_retry_on_conflict_reruns_lost_races_and_gives_up_after_the_last_attempt():
    calls = []

    def wins_third_time() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConflictError("lost")
        return "done"

    assert retry_on_conflict(wins_third_time, attempts=3, pause=0) == "done"
    assert len(calls) == 3

    def always_loses() -> None:
        calls.append(1)
        raise ConflictError("lost again")

    calls.clear()
    with pytest.raises(ConflictError, match="lost again"):
        retry_on_conflict(always_loses, attempts=4, pause=0)
    assert len(calls) == 4


def test_in_transaction_rolls_back_a_lost_race_and_retries_it(engine):
    attempts = []

    def work(conn) -> int:
        conn.execute(insert(Watermark), {"source": f"s{len(attempts)}", "consecutive_failures": 0})
        attempts.append(1)
        if len(attempts) == 1:
            raise ConflictError("lost")
        return len(attempts)

    assert in_transaction(engine, work, doing="testing") == 2
    with engine.connect() as conn:
        sources = conn.execute(text("SELECT source FROM watermarks")).scalars().all()
    assert sources == ["s1"]  # the first attempt's write was rolled back
