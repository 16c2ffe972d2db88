"""Importing a usage CSV into the ledger: all of it, once, or nothing.

The file is streamed: rows are parsed, validated, priced and written in batches inside
one transaction, so memory stays bounded whatever the file's size. A bad line is
reported with its line number and, unless the caller skips bad lines, the transaction
is rolled back: nothing is posted. A key repeated anywhere in the file is merged when
its counts are equal and reported when not, exactly as if the file were read whole
(sources.csv_usage.SeenKeys).

SQLite posts each batch with multi-row INSERTs, comparing a re-imported batch with the
ledger in the database (store.ledger.UsagePosting); PostgreSQL copies each priced batch
into a staging table and posts it with one INSERT ... SELECT
(store.pg_import.StagedUsagePosting), while a reader thread parses and prices the next
batch.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, cast

from sqlalchemy.engine import Connection, Engine

from ledger.domain import UsageKey, UsageObservation
from ledger.errors import InputError, Problem
from ledger.period import iso_utc
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer, safe_count
from ledger.sources.csv_usage import (
    SeenKeys,
    Unordered,
    UsageCsvStream,
    key_lines,
    write_rejected,
)
from ledger.store.errors import in_transaction
from ledger.store.ledger import PostResult, UsagePosting
from ledger.store.overlap import Overlap, batch_span, find_overlaps, widest_span
from ledger.store.tables import SOURCE_LENGTH

BATCH_ROWS = 25_000


@dataclass
class ImportResult:
    rows: int
    rejected: int
    rejected_file: Path | None
    posted: PostResult


class _Posting(Protocol):
    def add(self, observations: Mapping[UsageKey, UsageObservation]) -> None: ...
    def finish(self) -> PostResult: ...


def import_usage(
    engine: Engine,
    book: PriceBook,
    path: Path,
    *,
    source: str = "import",
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
    batch_rows: int = BATCH_ROWS,
    seen_window: int | None = None,
) -> ImportResult:
    """Read, validate and post every row in one transaction (a re-import posts nothing).

    A bad row rejects the file, listing every bad line, unless `skip_invalid`: then the
    good rows are imported and the bad ones are written to FILE.rejected.csv.
    `batch_rows` and `seen_window` bound memory (tests make them small).
    The rejected file is written before the transaction commits: if it cannot be
    written (a full disk), nothing is posted.
    """
    _check_source(source)
    price, limit = UsagePricer(book).price, safe_count(book)
    with cyclic_gc_paused():
        # A file not in time order is read again with the key window spilling to disk.
        window = {} if seen_window is None else {"window": seen_window}
        for spill in (False, True):

            def attempt(
                conn: Connection, spill: bool = spill
            ) -> tuple[UsageCsvStream, PostResult, Path | None]:
                seen = SeenKeys(spill=spill, **window)
                stream = UsageCsvStream(
                    path,
                    source=source,
                    progress=progress,
                    seen=seen,
                    price=price,
                    count_limit=limit,
                )
                posted = _import(conn, book, stream, skip_invalid, batch_rows)
                rejected_file = None
                if stream.rejected:
                    rejected_file = write_rejected(path, stream.header, stream.rejected)
                return stream, posted, rejected_file

            try:
                stream, posted, rejected_file = in_transaction(
                    engine, attempt, doing="importing usage"
                )
            except Unordered:
                continue
            return ImportResult(stream.rows, len(stream.rejected), rejected_file, posted)
    raise AssertionError("unreachable: the spilling pass never raises Unordered")


def _check_source(source: str) -> None:
    """The source name is part of every entry's key: it must fit its column."""
    problem = None
    if "\0" in source:
        problem = "contains a NUL byte"
    elif not source.strip():
        problem = "is empty"
    elif len(source) > SOURCE_LENGTH:
        problem = f"is longer than {SOURCE_LENGTH} characters"
    if problem:
        raise InputError([Problem("--source", problem)])


def _import(
    conn: Connection,
    book: PriceBook,
    stream: UsageCsvStream,
    skip_invalid: bool,
    batch_rows: int,
) -> PostResult:
    """Stream `stream` into the ledger on `conn` (the caller's transaction)."""
    posting: _Posting
    overlaps = OverlapCheck(conn)
    batches = stream.batches(batch_rows)
    if conn.dialect.name == "postgresql":
        from ledger.store.pg_import import StagedUsagePosting

        # The server works in its own process: meanwhile a thread reads the next batch
        # and prices its rows. (On SQLite the write is mostly Python binding; a thread
        # measured no faster.)
        posting = staged = StagedUsagePosting(conn, book)
        batches = read_ahead(_priced(batches, staged.stage))
    else:
        posting = UsagePosting(conn, book, compare_in_db=True)
    with closing(batches):  # on an error, stop the reader (and its thread) now
        for batch in batches:
            if overlaps.check(batch):
                continue  # refused: read on only to report every overlapping line
            if stream.problems and not skip_invalid:
                continue  # the file is refused: read on only to report every bad line
            posting.add(batch)
    if overlaps.found:
        problems = [] if skip_invalid else stream.problems
        raise InputError([*problems, *overlaps.problems(stream)])
    if stream.problems and not skip_invalid:
        raise InputError(stream.problems)  # leaving the transaction rolls everything back
    return posting.finish()


def span_text(key: UsageKey) -> str:
    return f"{iso_utc(key.bucket_start)}..{iso_utc(key.bucket_end)}"


# Overlapping rows named in the error; more are counted.
OVERLAPS_SHOWN = 20


class OverlapCheck:
    """Refuses rows whose usage the ledger (or the file) already holds under another key.

    Another source's bucket (`openai.usage` polled it), or this source's at another span
    (an hourly file, then a daily one), with the same dimensions and an intersecting
    time span, is the same usage: importing it would count it twice (store.overlap).
    """

    def __init__(self, conn: Connection):
        self.conn = conn
        self.widest = widest_span(conn)
        self.found: list[Overlap] = []
        self.count = 0

    def check(self, batch: Mapping[UsageKey, UsageObservation]) -> bool:
        """Record the batch's overlaps; True when it has any (it must not be posted)."""
        if not batch:
            return False
        found = find_overlaps(self.conn, batch, self.widest)
        # Later batches may overlap this one's buckets, once posted.
        self.widest = max(self.widest, batch_span(batch))
        self.count += len(found)
        self.found += found[: max(OVERLAPS_SHOWN - len(self.found), 0)]
        return bool(found) or bool(self.found)

    def problems(self, stream: UsageCsvStream) -> list[Problem]:
        keys = {o.observed for o in self.found} | {o.held for o in self.found if o.sums is None}
        lines = key_lines(stream.path, keys, stream.source)
        path = stream.path
        out = []
        for o in self.found:
            line = lines.get(o.observed)
            where = f"{path}:{line}" if line is not None else str(path)
            if o.sums is None:
                held = f"the bucket {span_text(o.held)} on line {lines.get(o.held)}"
            else:
                held = f"{span_text(o.held)}, held from source {o.held.source!r}"
            out.append(
                Problem(
                    where,
                    f"bucket {span_text(o.observed)} of {o.observed.model} is already in "
                    f"{held}: importing it would count that usage twice",
                )
            )
        if self.count > len(self.found):
            more = self.count - len(self.found)
            out.append(Problem(str(path), f"{more} more overlapping bucket(s) not listed"))
        hint = "nothing was imported; leave out the usage the ledger already holds"
        return [*out, Problem(str(path), hint)]


_Batch = dict[UsageKey, UsageObservation]


def _priced(
    batches: Generator[_Batch, None, None], stage: Callable[[_Batch], _Batch]
) -> Generator[_Batch, None, None]:
    """Each batch as `stage` returns it; closing this closes `batches`."""
    try:
        for batch in batches:
            yield stage(batch)
    finally:
        batches.close()


T = TypeVar("T")


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


_DONE = object()


def read_ahead(items: Iterator[T]) -> Generator[T, None, None]:
    """Produce the next batch in a thread while the caller writes this one.

    Reading and parsing are Python; writing is mostly the database driver, which releases
    the GIL (SQLite while it steps, psycopg while it talks to the server), so the two
    overlap. One batch waits at most: memory stays bounded. An exception in the reader
    is raised here; leaving early stops the reader and closes `items` in its thread.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=produce, name="ftledger-import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield cast(T, item)
    finally:
        stop.set()
        reader.join()


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
