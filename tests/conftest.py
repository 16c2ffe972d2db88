"""Shared fixtures.

Every test runs in its own working directory with the database and config pointed at
tmp_path. Database tests take the `db_url` fixture, which runs them on SQLite and, when
LEDGER_TEST_POSTGRES_URL is set, on PostgreSQL too, each in a fresh schema.
"""

from __future__ import annotations

import io
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from ledger.pricebook import PriceBook, load_pricebook
from ledger.resources import bundled_config_dir

POSTGRES_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("LEDGER_REQUIRE_POSTGRES") == "1"
_postgres_runs = 0


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_POSTGRES and not POSTGRES_URL:
        pytest.exit("LEDGER_REQUIRE_POSTGRES=1 but LEDGER_TEST_POSTGRES_URL is not set", 3)
    if POSTGRES_URL:
        try:
            engine = create_engine(POSTGRES_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:
            pytest.exit(f"LEDGER_TEST_POSTGRES_URL is set but unreachable: {exc}", 3)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_POSTGRES and exitstatus == 0 and session.testscollected and _postgres_runs == 0:
        print("\nno PostgreSQL test ran although LEDGER_REQUIRE_POSTGRES=1", file=sys.stderr)
        session.exitstatus = 3


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private working directory; no user config, no real keys, no real database."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{work / 'ledger.db'}")
    monkeypatch.setenv("LEDGER_CONFIG_DIR", str(tmp_path / "config"))
    for var in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    return work


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The user config directory the CLI reads (empty: bundled defaults apply)."""
    path = tmp_path / "config"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def book() -> PriceBook:
    return load_pricebook(bundled_config_dir() / "prices.toml")


def _backends() -> list[object]:
    backends: list[object] = ["sqlite"]
    if POSTGRES_URL:
        backends.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return backends


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL schema."""
    global _postgres_runs
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test-ledger.db'}"
        return
    _postgres_runs += 1
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine on a migrated, empty ledger; the CLI in this test uses the same database."""
    from ledger.store import migrate
    from ledger.store.engine import create_ledger_engine, open_engine

    raw = create_ledger_engine(db_url)
    migrate.upgrade(raw)
    raw.dispose()
    monkeypatch.setenv("LEDGER_DATABASE_URL", db_url)
    eng = open_engine(db_url)
    try:
        yield eng
    finally:
        eng.dispose()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(params=["read here", "read by a child process"])
def either_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports in this test read their (small) file in this process, then in a child
    process, as large files are read (ledger.sources.csv_process)."""
    if request.param == "read by a child process":
        monkeypatch.setattr("ledger.sources.csv_process.CHILD_FROM_BYTES", 0)


@pytest.fixture
def cli() -> object:
    """Run `ftledger ARGS...` in-process through the real entry point."""
    from ledger.cli.app import main

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run
