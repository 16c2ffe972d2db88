"""Importing a usage CSV into the ledger: all of it, once, or nothing.

The file is streamed: rows are parsed, validated, priced and written in batches inside
one transaction, so memory stays bounded whatever the file's size. A bad line is
reported with its line number and, unless the caller skips bad lines, the transaction
is rolled back: nothing is posted. A key repeated anywhere in the file is merged when
its counts are equal and reported when not, exactly as if the file were read whole
(sources.csv_usage.SeenKeys).

A large file is read by a second process (sources.csv_process) while this one posts
the batch before. SQLite posts each batch with multi-row INSERTs, comparing a
re-imported batch with the ledger in the database (store.ledger.UsagePosting);
PostgreSQL copies each batch into a staging table and posts it with one INSERT ...
SELECT that prices what it posts (store.pg_import.StagedUsagePosting).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from ledger.domain import UsageKey, UsageObservation
from ledger.errors import InputError, Problem
from ledger.period import iso_utc
from ledger.pricebook import PriceBook
from ledger.sources.csv_process import StagedCsvStream, StagedRow
from ledger.sources.csv_usage import Unordered, key_lines, write_rejected
from ledger.store.errors import in_transaction
from ledger.store.ledger import PostResult, UsagePosting
from ledger.store.overlap import Overlap, find_overlaps
from ledger.store.tables import SOURCE_LENGTH

BATCH_ROWS = 25_000


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
    batch_rows: int = BATCH_ROWS,
    seen_window: int | None = None,
) -> ImportResult:
    """Read, validate and post every row in one transaction (a re-import posts nothing).

    A bad row rejects the file, listing every bad line, unless `skip_invalid`: then the
    good rows are imported and the bad ones are written to FILE.rejected.csv.
    `batch_rows` and `seen_window` bound memory (tests make them small); a large file
    is read by a second process (sources.csv_process).
    The rejected file is written before the transaction commits: if it cannot be
    written (a full disk), nothing is posted.
    """
    _check_source(source)
    post = _import_staged if engine.dialect.name == "postgresql" else _import
    with cyclic_gc_paused():
        # A file not in time order is read again with the key window spilling to disk.
        for spill in (False, True):

            def attempt(
                conn: Connection, spill: bool = spill
            ) -> tuple[StagedCsvStream, PostResult, Path | None]:
                stream = StagedCsvStream(
                    path,
                    book,
                    source=source,
                    spill=spill,
                    seen_window=seen_window,
                    progress=progress,
                )
                posted = post(conn, book, stream, skip_invalid, batch_rows)
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
    stream: StagedCsvStream,
    skip_invalid: bool,
    batch_rows: int,
) -> PostResult:
    """Stream `stream` into the ledger on `conn` (the caller's transaction): SQLite."""
    posting = UsagePosting(conn, book, compare_in_db=True)
    overlaps = OverlapCheck(conn)
    batches = stream.batches(batch_rows)
    with closing(batches):  # on an error, stop reading now
        for rows in batches:
            batch = _observations(rows)
            if overlaps.check(batch):
                continue  # refused: read on only to report every overlapping line
            if stream.problems and not skip_invalid:
                continue  # the file is refused: read on only to report every bad line
            posting.add(batch)
    return _checked(posting.finish(), overlaps, stream, skip_invalid)


def _import_staged(
    conn: Connection,
    book: PriceBook,
    stream: StagedCsvStream,
    skip_invalid: bool,
    batch_rows: int,
) -> PostResult:
    """PostgreSQL: the same rules, each batch staged and posted by one statement.

    That statement also stands guard for the overlap check: a batch of one kind is
    posted unless the ledger holds another kind's keys in its time span. Only those
    batches, and batches of mixed kinds, are checked key by key (OverlapCheck).
    """
    from ledger.store.pg_import import StagedUsagePosting

    posting = StagedUsagePosting(conn, book)
    overlaps = OverlapCheck(conn)
    batches = stream.batches(batch_rows)
    with closing(batches):  # on an error, stop the reading process now
        for rows in batches:
            if not (overlaps.found or (stream.problems and not skip_invalid)):
                posting.stage(rows)
                if posting.post(guarded=True):
                    continue
            if overlaps.check(_observations(rows)):
                continue  # refused: read on only to report every overlapping line
            if stream.problems and not skip_invalid:
                continue  # the file is refused: read on only to report every bad line
            posting.post()  # the batch was staged above
    return _checked(posting.finish(), overlaps, stream, skip_invalid)


def _checked(
    posted: PostResult,
    overlaps: OverlapCheck,
    stream: StagedCsvStream,
    skip_invalid: bool,
) -> PostResult:
    """`posted`, unless the file is refused (leaving the transaction rolls it back)."""
    if overlaps.found:
        problems = [] if skip_invalid else stream.problems
        raise InputError([*problems, *overlaps.problems(stream.path, stream.source)])
    if stream.problems and not skip_invalid:
        raise InputError(stream.problems)
    return posted


def _observations(rows: list[StagedRow]) -> dict[UsageKey, UsageObservation]:
    """Staging rows (key fields, then counts) as observations by key.

    Built in C, with no Python-level step per row: `tuple.__new__(UsageKey, fields)`
    is UsageKey(*fields) without its Python-level constructor.
    """
    new = tuple.__new__
    keys = list(map(new, repeat(UsageKey), map(itemgetter(slice(0, 9)), rows)))
    counts = (map(itemgetter(i), rows) for i in range(9, 13))
    observations = map(new, repeat(UsageObservation), zip(keys, *counts, strict=True))
    return dict(zip(keys, observations, strict=True))


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
        self.found: list[Overlap] = []
        self.count = 0

    def check(self, keys: Collection[UsageKey]) -> bool:
        """Record the batch's overlaps; True when it has any (it must not be posted)."""
        if not keys:
            return False
        found = find_overlaps(self.conn, keys)
        self.count += len(found)
        self.found += found[: max(OVERLAPS_SHOWN - len(self.found), 0)]
        return bool(found) or bool(self.found)

    def problems(self, path: Path, source: str) -> list[Problem]:
        keys = {o.observed for o in self.found} | {o.held for o in self.found if o.sums is None}
        lines = key_lines(path, keys, source)
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
