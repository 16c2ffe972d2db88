"""Importing a usage CSV into the ledger: all of it, once, or nothing."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from ledger.errors import InputError
from ledger.pricebook import PriceBook
from ledger.sources.csv_usage import read_usage_csv, write_rejected
from ledger.store.errors import in_transaction
from ledger.store.ledger import PostResult, post_usage


@dataclass
class ImportResult:
    rows: int
    rejected: int
    rejected_file: Path | None
    posted: PostResult


def import_usage(
    engine: Engine,
    book: PriceBook,
    path: Path,
    *,
    source: str = "import",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Read, validate, then post every row in one transaction (a re-import posts nothing).

    A bad row rejects the file, listing every bad line, unless `skip_invalid`: then the
    good rows are imported and the bad ones are written to FILE.rejected.csv.
    """
    with cyclic_gc_paused():
        return _import(engine, book, path, source, skip_invalid, progress)


def _import(
    engine: Engine,
    book: PriceBook,
    path: Path,
    source: str,
    skip_invalid: bool,
    progress: Callable[[int], None] | None,
) -> ImportResult:
    parsed = read_usage_csv(path, source=source, progress=progress)
    rejected_file = None
    if parsed.problems:
        if not skip_invalid:
            raise InputError(parsed.problems)
        rejected_file = write_rejected(path, parsed.header, parsed.rejected)
    posted = in_transaction(
        engine,
        lambda conn: post_usage(conn, parsed.observations, book),
        doing="importing usage",
    )
    return ImportResult(parsed.rows, len(parsed.rejected), rejected_file, posted)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector while millions of tuples are built.

    They hold no cycles, yet each full collection rescans all of them: on a
    million-row file that doubled the import time (bench/import_usage.py).
    Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
