"""Posting compared in the database (SQLite imports) posts exactly what comparing in
Python posts: the same entries, the same counts in the result.

The import compares a batch with the ledger in SQLite when its span is busy (a
re-import); the rest of the time held sums are read into Python. Both must agree on
every kind of key: unchanged, changed, new, held unpriced, held over several revisions,
of one source or of several, batch or not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from ledger.domain import UsageKey, UsageObservation
from ledger.pricebook import PriceBook
from ledger.store import ledger as store_ledger
from ledger.store import migrate
from ledger.store.engine import create_ledger_engine, open_engine
from ledger.store.ledger import PostResult, UsagePosting, post_usage
from ledger.store.tables import UsageEntry, core

START = 1_748_736_000  # 2025-06-01, every price in the book in force
PRICED = "ft:gpt-4o-mini-2024-07-18:acme:team:id1"
UNPRICED = "mystery-model"


def _engine(path: Path) -> Engine:
    url = f"sqlite:///{path}"
    raw = create_ledger_engine(url)
    migrate.upgrade(raw)
    raw.dispose()
    return open_engine(url)


def _obs(key: UsageKey, n: int) -> UsageObservation:
    return UsageObservation(key, n, 1000 * n, 100 * n, 10 * n)


def _keys() -> list[UsageKey]:
    keys = []
    for hour in range(4):
        start = START + hour * 3600
        for source in ("import", "other"):
            for model in (PRICED, UNPRICED):
                for batch in (False, True):
                    keys.append(
                        UsageKey(
                            source, start, start + 3600, model, "p", "k", "u", batch, "default"
                        )
                    )
    return keys


def _history(engine: Engine, book: PriceBook) -> None:
    """Every key but the last few held; some twice (two revisions)."""
    keys = _keys()
    with engine.begin() as conn:
        post_usage(conn, {k: _obs(k, 1) for k in keys[:-4]}, book, now=1)
        post_usage(conn, {k: _obs(k, 2) for k in keys[:6]}, book, now=2)


def _batch() -> dict[UsageKey, UsageObservation]:
    """Unchanged, back to an earlier reading, changed, and new keys."""
    out = {}
    for i, key in enumerate(_keys()):
        out[key] = _obs(key, (1, 2, 3)[i % 3])
    return out


def _entries(engine: Engine) -> list[tuple[object, ...]]:
    table = core(UsageEntry)
    columns = [c for c in table.c if c.name != "id"]
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(*columns)))


def _post(engine: Engine, book: PriceBook, in_db: bool) -> PostResult:
    with engine.begin() as conn:
        posting = UsagePosting(conn, book, now=3, compare_in_db=in_db)
        posting.add(_batch())
        return posting.finish()


def test_comparing_in_the_database_posts_what_python_posts(
    tmp_path: Path, book: PriceBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_ledger, "_span_is_busy", lambda *_: True)
    in_python, in_db = _engine(tmp_path / "python.db"), _engine(tmp_path / "db.db")
    try:
        for engine in (in_python, in_db):
            _history(engine, book)
        assert _entries(in_python) == _entries(in_db)
        expected = _post(in_python, book, in_db=False)
        got = _post(in_db, book, in_db=True)
        assert got == expected
        assert expected.posted and expected.unchanged and expected.unpriced_models
        assert _entries(in_python) == _entries(in_db)
        # Once more: now everything is held as observed.
        expected, got = _post(in_python, book, in_db=False), _post(in_db, book, in_db=True)
        assert got == expected
        assert _entries(in_python) == _entries(in_db)
    finally:
        in_python.dispose()
        in_db.dispose()


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 7, 9, 10])
@pytest.mark.parametrize("limit", [3, 9, 10, 999])
def test_multi_row_inserts_write_every_row_once_in_order(rows: int, limit: int) -> None:
    import sqlite3

    from ledger.store.ledger import insert_values

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c)")
    data = [(i, f"x{i}", None if i % 2 else i * 10) for i in range(rows)]

    def run(sql: str, params: object) -> None:
        if isinstance(params, list):
            db.executemany(sql, params)
        else:
            assert isinstance(params, tuple) and len(params) <= limit
            db.execute(sql, params)

    insert_values(run, "INSERT INTO t (a, b, c) VALUES ", 3, data, limit)
    assert db.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == data


def test_a_first_import_in_small_statements_posts_what_large_ones_post(
    tmp_path: Path, book: PriceBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch()
    small, large = _engine(tmp_path / "small.db"), _engine(tmp_path / "large.db")
    try:
        with large.begin() as conn:
            post_usage(conn, batch, book, now=1)
        monkeypatch.setattr(
            store_ledger, "VALUES_PARAMETERS", 3 * len(store_ledger._INSERT_COLUMNS)
        )
        with small.begin() as conn:
            post_usage(conn, batch, book, now=1)
        assert len(_entries(small)) == len(batch)
        assert _entries(small) == _entries(large)
    finally:
        small.dispose()
        large.dispose()
