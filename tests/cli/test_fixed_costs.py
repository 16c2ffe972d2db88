"""Fixed costs: what a command imports before its first query.

The read model names the ledger's tables as bare Core clauses so a report does not
import the ORM; commands that never call OpenAI never import its SDK.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import BigInteger, Boolean, Integer

from ledger.store import read
from ledger.store.base import Base
from ledger.store.tables import USAGE_KEY_COLUMNS


def test_the_read_models_bare_tables_name_real_columns_of_matching_kind():
    assert tuple(read.USAGE_KEY_COLUMNS) == USAGE_KEY_COLUMNS
    for clause in read.TABLE_CLAUSES:
        model = Base.metadata.tables[clause.name]
        for col in clause.columns:
            real = model.columns[col.name]
            if isinstance(real.type, Boolean):
                assert isinstance(col.type, Boolean), col
            elif isinstance(real.type, BigInteger | Integer):
                assert isinstance(col.type, BigInteger), col
            else:  # text: read as the driver returns it
                assert not isinstance(col.type, BigInteger | Boolean), col


NO_OPENAI = [
    ("report", "monthly", "--month", "2025-06"),
    ("report", "monthly", "--by", "day", "--month", "2025-06", "--format", "json"),
    ("export", "focus", "--month", "2025-06"),
    ("budgets", "status"),
    ("forecast", "--month", "2025-06"),
    ("status",),
    ("reconcile", "--month", "2025-06"),
]


@pytest.mark.parametrize("args", NO_OPENAI, ids=" ".join)
def test_commands_that_never_call_openai_never_import_it(args, tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    code = (
        "import sys\n"
        "from ledger.cli.app import main\n"
        f"try:\n    main(['--db', {db!r}, *{list(args)!r}])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('openai', 'httpx', 'tiktoken', 'apscheduler')"
        " if m in sys.modules])\n"
    )
    # The ledger is created (and migrated) first: migrating imports Alembic, a one-off.
    subprocess.run(
        [sys.executable, "-m", "ledger", "--db", db, "db", "upgrade"],
        check=True,
        capture_output=True,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in out.stdout, (out.stdout[-500:], out.stderr[-500:])


def test_a_report_on_a_current_ledger_imports_neither_the_orm_nor_alembic(tmp_path):
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    subprocess.run(
        [sys.executable, "-m", "ledger", "--db", db, "db", "upgrade"],
        check=True,
        capture_output=True,
    )
    code = (
        "import sys\n"
        "from ledger.cli.app import main\n"
        f"try:\n    main(['--db', {db!r}, 'report', 'monthly', '--month', '2025-06'])\n"
        "except SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('sqlalchemy.orm', 'alembic', 'openai', 'rich')"
        " if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in out.stdout, (out.stdout[-500:], out.stderr[-500:])


def test_postgres_read_transactions_price_time_range_reads_as_near_sequential(engine):
    """On PostgreSQL the read model's transactions lower random_page_cost, so a month of
    a large ledger is read through the time index rather than a whole-table scan;
    writing transactions keep the server's setting."""
    from ledger.store.engine import READ_RANDOM_PAGE_COST, read_connection

    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    with read_connection(engine) as conn:
        assert conn.exec_driver_sql("SHOW random_page_cost").scalar() == READ_RANDOM_PAGE_COST
    with engine.connect() as conn:
        default = conn.exec_driver_sql("SHOW random_page_cost").scalar()
    assert default != READ_RANDOM_PAGE_COST
