"""Posting to the ledger: observations in, difference entries out.

A usage key's entries always sum to its latest observation. Posting reads the current
sums of the keys it was given, and for each key whose counts changed inserts one entry
with the next revision number: the difference in tokens, and the difference between the
new observation's full cost and what the ledger already holds. The unique key
(usage key, revision) makes a concurrent writer's identical posting fail instead of
counting twice; callers run posting inside their transaction and retry on ConflictError.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import add, itemgetter, mod, sub
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from ledger.domain import JobObservation, UsageKey, UsageObservation
from ledger.errors import ConflictError
from ledger.money import per_token_pico
from ledger.period import utc_date
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.store.errors import db_errors
from ledger.store.tables import (
    USAGE_KEY_COLUMNS,
    TrainingFee,
    UsageBucketKind,
    UsageEntry,
    core,
)

INSERT_CHUNK = 20_000

_usage = core(UsageEntry)
_fees = core(TrainingFee)
_kinds = core(UsageBucketKind)
_INSERT_COLUMNS = (
    *USAGE_KEY_COLUMNS,
    "revision",
    "requests",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "cost_pico",
    "base_cost_pico",
    "unpriced",
    "base_unpriced",
    "price_version",
    "recorded_at",
)


@dataclass
class PostResult:
    observed: int = 0
    posted: int = 0
    unchanged: int = 0
    unpriced_models: set[str] = field(default_factory=set)
    superseded: int = 0  # held keys of another bucket width reversed (store.overlap)
    skipped: int = 0  # observations left out: another source's key holds that usage


# What the ledger holds for a key: (last revision, requests, input, cached, output,
# cost, base cost, unpriced, base unpriced) summed over its entries.
# Plain tuples: there may be millions.
_Held = tuple[Any, ...]


def _combine(before: _Held, entry: _Held) -> _Held:
    rev, *sums = before
    return (max(rev, entry[0]), *(_add(a, b) for a, b in zip(sums, entry[1:], strict=True)))


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def post_usage(
    conn: Connection,
    observations: Mapping[UsageKey, UsageObservation],
    book: PriceBook,
    *,
    now: int | None = None,
) -> PostResult:
    """Post the difference each observation makes; the same observation twice posts nothing."""
    posting = UsagePosting(conn, book, now=now)
    posting.add(observations)
    return posting.finish()


class UsagePosting:
    """Posting observations batch by batch inside the caller's transaction.

    One pricer and one `recorded_at` serve every batch. A key must not appear in two
    batches: each batch is compared with what the ledger held before it.
    `compare_in_db` (SQLite imports): when the batch's time span already holds many
    entries (a re-import), the batch is compared with the ledger inside the database,
    which returns only the keys that are new or changed, instead of reading every held
    entry of the span into Python.
    """

    def __init__(
        self,
        conn: Connection,
        book: PriceBook,
        *,
        now: int | None = None,
        compare_in_db: bool = False,
    ):
        self.conn = conn
        self.pricer = UsagePricer(book)
        self.version = book.version
        self.recorded_at = int(time.time()) if now is None else now
        self.compare_in_db = compare_in_db
        # Entries after this id are this posting's own (an import holds SQLite's write
        # lock from its first batch): their keys are in no later batch, so reading a
        # batch's span skips them (a first import's batches share a boundary hour).
        self.held_upto = _last_id(conn) if compare_in_db else None
        self.result = PostResult()

    def add(self, observations: Mapping[UsageKey, UsageObservation]) -> None:
        result = self.result
        result.observed += len(observations)
        if not observations:
            return
        items: Iterable[tuple[UsageKey, UsageObservation, _Held | None]]
        if self.compare_in_db and _span_is_busy(self.conn, observations, self.held_upto):
            changed = changed_held_sums(self.conn, observations)
            result.unchanged += len(observations) - len(changed)
            items = ((obs.key, obs, before) for obs, before in changed)
        else:
            held = held_sums(self.conn, observations, self.held_upto)
            # Built in C: no Python-level step per key.
            keys = observations.keys()
            items = zip(keys, observations.values(), map(held.get, keys), strict=True)
        price = self.pricer.price
        firsts: list[tuple[Any, ...]] = []  # new keys: key, counts, cost, base cost
        first = firsts.append
        rows: list[tuple[Any, ...]] = []  # later revisions: whole entries
        append = rows.append
        version, recorded_at = self.version, self.recorded_at
        # The batch flag as bound: 0/1 on SQLite, where sqlite3 binds a bool through its
        # adapter lookup, a million times (the column holds 0/1 either way).
        flags = (0, 1) if self.conn.dialect.name == "sqlite" else (False, True)
        for key, obs, before in items:
            _, requests, inp, cached, out = obs
            if before is None:
                # A new key (almost every row of a first import): its first entry.
                cost, base_cost = price(obs)
                source, start, end, model, project, api_key, user, batch, tier = key
                if cost is None:
                    result.unpriced_models.add(model)
                # fmt: off
                first((
                    source, start, end, model, project, api_key, user, flags[batch],
                    tier, requests, inp, cached, out, cost, base_cost,
                ))
                # fmt: on
                continue
            counts = (requests, inp, cached, out)
            # Equal counts post nothing, unless the key is held unpriced and a price now exists.
            if before[1:5] == counts and not (before[7] or before[8]):
                result.unchanged += 1
                continue
            cost, base_cost = price(obs)
            if before[1:5] == counts:
                newly_priced = (before[7] and cost is not None) or (
                    before[8] and base_cost is not None
                )
                if not newly_priced:
                    result.unchanged += 1  # still no price: nothing to correct
                    continue
            if cost is None:
                result.unpriced_models.add(key.model)
            append((*key, *difference(before, counts, cost, base_cost), version, recorded_at))
        insert_first_entries(self.conn, firsts, version, recorded_at)
        _insert_rows(self.conn, rows)
        result.posted += len(firsts) + len(rows)

    def finish(self) -> PostResult:
        return self.result


def difference(
    before: _Held, counts: tuple[int, int, int, int], cost: int | None, base_cost: int | None
) -> tuple[Any, ...]:
    """The next entry of a held key, from (revision ...) to (... unpriced): after it the
    key sums to `counts` and `cost`, and its unpriced flag sums to 1 or 0."""
    rev, req, inp, cached, out, held_cost, held_base, held_unpriced, held_base_unpriced = before
    return (
        rev + 1,
        counts[0] - req,
        counts[1] - inp,
        counts[2] - cached,
        counts[3] - out,
        None if cost is None else cost - (held_cost or 0),
        None if base_cost is None else base_cost - (held_base or 0),
        int(cost is None) - held_unpriced,
        int(base_cost is None) - held_base_unpriced,
    )


def reprice_difference(
    before: _Held, cost: int | None, base_cost: int | None
) -> tuple[Any, ...] | None:
    """The entry (revision ... base unpriced) that brings a held key to `cost` and
    `base_cost` without a token change, or None when it holds them already. A cost the
    book does not know (None) keeps what the key holds."""
    rev, _req, _inp, _cached, _out, held_cost, held_base, unpriced, base_unpriced = before
    cost_change = None if cost is None else cost - (held_cost or 0)
    base_change = None if base_cost is None else base_cost - (held_base or 0)
    flag_change = 0 if cost is None else -unpriced
    base_flag_change = 0 if base_cost is None else -base_unpriced
    if not (cost_change or base_change or flag_change or base_flag_change):
        return None
    return (rev + 1, 0, 0, 0, 0, cost_change, base_change, flag_change, base_flag_change)


def insert_entries(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert complete entry rows (key, revision ... price_version, recorded_at)."""
    _insert_rows(conn, rows)


def held_sums(
    conn: Connection, observations: Collection[UsageKey], held_upto: int | None = None
) -> dict[UsageKey, _Held]:
    """Current sums for the given keys, from one range scan over their time span
    (of the entries up to id `held_upto` only, when given).

    Summing in Python beats GROUP BY here: almost every key has a single entry, and
    SQLite would otherwise sort the whole span by nine text columns.
    """
    starts = [k.bucket_start for k in observations]
    sources = sorted({k.source for k in observations})
    mark = _param_mark(conn)
    sql = (
        f"SELECT {', '.join(USAGE_KEY_COLUMNS)}, revision, requests, input_tokens, "
        f"cached_tokens, output_tokens, cost_pico, base_cost_pico, unpriced, base_unpriced "
        f"FROM {_usage.name} "
        f"WHERE source IN ({', '.join([mark] * len(sources))}) "
        f"AND bucket_start BETWEEN {mark} AND {mark}{_upto(held_upto)}"
    )
    width = len(USAGE_KEY_COLUMNS)
    held: dict[UsageKey, _Held] = {}
    # The DBAPI cursor directly: a million rows through Result objects would cost seconds.
    # A plain tuple hashes and compares like the UsageKey it stands for (and 0 like False).
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, (*sources, min(starts), max(starts)))
        while batch := cursor.fetchmany(50_000):
            for row in batch:
                key = row[:width]
                if key not in observations:
                    continue
                values = row[width:]
                before = held.get(key)
                held[key] = values if before is None else _combine(before, values)
    finally:
        cursor.close()
    return held


def _upto(held_upto: int | None) -> str:
    return "" if held_upto is None else f" AND id <= {int(held_upto)}"


def _last_id(conn: Connection) -> int:
    return int(conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {_usage.name}").scalar_one())


def _span_is_busy(
    conn: Connection, keys: Collection[UsageKey], held_upto: int | None = None
) -> bool:
    """Does the keys' time span already hold entries (up to id `held_upto`) for half as
    many keys or more?

    A re-import does (every key is held); a first import of a file in time order holds
    at most the hour it shares with the previous batch, cheaper to read into Python.
    """
    starts = [k.bucket_start for k in keys]
    limit = len(keys) // 2 + 1
    mark = _param_mark(conn)
    sql = (
        f"SELECT count(*) FROM (SELECT 1 FROM {_usage.name} "
        f"WHERE bucket_start BETWEEN {mark} AND {mark}{_upto(held_upto)} LIMIT {limit}) AS span"
    )
    found = conn.exec_driver_sql(sql, (min(starts), max(starts))).scalar_one()
    return int(found) >= limit


_BATCH_TABLE = "ftledger_import_batch"
_COUNT_COLUMNS = ("requests", "input_tokens", "cached_tokens", "output_tokens")


def changed_held_sums(
    conn: Connection, observations: Mapping[UsageKey, UsageObservation]
) -> list[tuple[UsageObservation, _Held | None]]:
    """The observations whose held sums differ from their observation (SQLite).

    Each comes with its sums, or None when the ledger holds nothing for it. A key
    left out is unchanged: its held counts equal the observation's and it has a price.
    The batch goes into a temporary table and SQLite compares it with the ledger through
    the unique key's index, one source at a time (an import has one): the source is
    bound once, not stored per row.
    """
    sources = {key[0] for key in observations}
    if len(sources) > 1:
        changed: list[tuple[UsageObservation, _Held | None]] = []
        for source in sorted(sources):
            part = {k: o for k, o in observations.items() if k[0] == source}
            changed += changed_held_sums(conn, part)
        return changed
    (source,) = sources
    key_columns = USAGE_KEY_COLUMNS[1:]
    width = len(key_columns)
    columns = (*key_columns, *_COUNT_COLUMNS)
    sums = ", ".join(f"sum(u.{c})" for c in (*_COUNT_COLUMNS, "cost_pico", "base_cost_pico"))
    differs = " OR ".join(f"sum(u.{c}) <> b.{c}" for c in _COUNT_COLUMNS)
    unequal = " OR ".join(f"u.{c} <> b.{c}" for c in _COUNT_COLUMNS)
    match = " AND ".join(f"u.{c} = b.{c}" for c in key_columns)
    # batch as 0/1, as the column holds it: sqlite3 binds a bool through its adapter lookup.
    batch = [
        (start, end, model, project, api_key, user, 1 if flag else 0, tier, *obs[1:])
        for (_, start, end, model, project, api_key, user, flag, tier), obs in observations.items()
    ]
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH_TABLE} ({', '.join(columns)})")
        cursor.execute(f"DELETE FROM temp.{_BATCH_TABLE}")

        def run(sql: str, params: Any) -> None:
            (cursor.executemany if isinstance(params, list) else cursor.execute)(sql, params)

        head = f"INSERT INTO temp.{_BATCH_TABLE} VALUES "
        insert_values(run, head, len(columns), batch, _variable_limit(conn))
        del batch
        joined = f"FROM temp.{_BATCH_TABLE} b LEFT JOIN {_usage.name} u ON u.source = ? AND {match}"
        # Summing every key is most of the work, and almost every key has one entry
        # (revision 1) equal to its observation: only the others, the suspects, are
        # summed. A key whose sums differ is a suspect: it has no entry, or another
        # revision, or its one entry differs in a count or is unpriced.
        suspects = (
            f"SELECT b.rowid {joined} WHERE u.id IS NULL OR u.revision <> 1 OR {unequal} "
            f"OR u.unpriced <> 0 OR u.base_unpriced <> 0"
        )
        cursor.execute(
            f"SELECT {', '.join('b.' + c for c in key_columns)}, max(u.revision), {sums}, "
            f"sum(u.unpriced), sum(u.base_unpriced) {joined} "
            f"WHERE b.rowid IN ({suspects}) "
            f"GROUP BY b.rowid "
            f"HAVING count(u.id) = 0 OR {differs} OR sum(u.unpriced) <> 0 "
            f"OR sum(u.base_unpriced) <> 0",
            (source, source),
        )
        changed = []
        for row in cursor.fetchall():
            held = row[width:]
            # A plain tuple finds its UsageKey (and 1 finds True), as in held_sums.
            obs = observations[(source, *row[:width])]  # type: ignore[index]
            changed.append((obs, None if held[0] is None else held))
        cursor.execute(f"DELETE FROM temp.{_BATCH_TABLE}")
    finally:
        cursor.close()
    return changed


def unchanged_left_out(
    conn: Connection, observations: Mapping[UsageKey, UsageObservation], start: int, end: int
) -> dict[UsageKey, UsageObservation]:
    """The observations of [start, end) the ledger does not already hold as they are.

    A steady poll re-reads its lookback window, and almost nothing in it changed. One
    range read of the window's entries (key, counts, unpriced flags), summed per key only
    where a key has several entries, is compared with the observations in bulk; one
    whose counts equal its key's sums and that is priced would post nothing, and is left
    out before any per-observation work (validation, pricing). Memory: the window's
    entries, as many as the observations read. Posting the rest re-reads their sums
    inside the write transaction, so this read needs no lock.
    """
    if not observations:
        return {}
    sources = sorted({k.source for k in observations})
    mark = _param_mark(conn)
    sql = (
        f"SELECT {', '.join(USAGE_KEY_COLUMNS)}, {', '.join(_COUNT_COLUMNS)}, unpriced, "
        f"base_unpriced FROM {_usage.name} "
        f"WHERE source IN ({', '.join([mark] * len(sources))}) "
        f"AND bucket_start >= {mark} AND bucket_start < {mark}"
    )
    width = len(USAGE_KEY_COLUMNS)
    # Executed through SQLAlchemy (its errors are translated), fetched from the DBAPI
    # cursor: plain tuples, no Row objects.
    with db_errors("reading the ledger", conn.engine.url):
        result = conn.exec_driver_sql(sql, (*sources, start, end))
        rows = result.cursor.fetchall() if result.cursor is not None else []
        result.close()
    # A plain tuple finds its UsageKey (and 0 finds False), as in held_sums.
    held: dict[Any, tuple[Any, ...]] = {r[:width]: r[width:] for r in rows}
    if len(held) < len(rows):  # keys with several entries (revisions): sum those
        repeated = {k for k, n in Counter(r[:width] for r in rows).items() if n > 1}
        sums: dict[Any, tuple[Any, ...]] = {}
        for r in rows:
            key = r[:width]
            if key in repeated:
                before = sums.get(key)
                values = r[width:]
                sums[key] = values if before is None else tuple(map(add, before, values))
        held.update(sums)
    return {
        key: obs
        for key, obs in observations.items()
        if held.get(key) != (obs[1], obs[2], obs[3], obs[4], 0, 0)
    }


CONFLICT = "another writer posted the same usage at the same time; nothing was written"


def _insert_rows(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Bulk insert through the driver; a unique violation is a conflict."""
    if not rows:
        return
    note_kinds(conn, kinds_of(rows))
    head = f"INSERT INTO {_usage.name} ({', '.join(_INSERT_COLUMNS)}) VALUES "
    with db_errors("writing the ledger", conn.engine.url, conflict=CONFLICT):
        if conn.dialect.name == "sqlite":
            insert_values(
                conn.exec_driver_sql, head, len(_INSERT_COLUMNS), rows, _variable_limit(conn)
            )
            return
        sql = head + _row_marks(_param_mark(conn), len(_INSERT_COLUMNS))
        for chunk in _chunks(rows, INSERT_CHUNK):
            conn.exec_driver_sql(sql, chunk)


# The first entry's columns from a row (key, counts, cost, base cost) of a VALUES list:
# revision 1, the unpriced flags from the costs, then the posting's version and time.
_FIRST_ENTRY = (
    *(f"column{i}" for i in range(1, 10)),
    "1",
    *(f"column{i}" for i in range(10, 16)),
    "column14 IS NULL",
    "column15 IS NULL",
    "?",
    "?",
)


def insert_first_entries(
    conn: Connection, rows: Sequence[tuple[Any, ...]], version: str, recorded_at: int
) -> None:
    """Insert the first entries (revision 1) of new keys, from (key ..., requests, input,
    cached, output, cost, base cost) rows.

    On SQLite the statement writes the columns every first entry shares or derives
    (revision, unpriced flags, price version, time) instead of binding them per row:
    a million entries bind a quarter fewer values.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        # fmt: off
        _insert_rows(conn, [
            (*row[:9], 1, *row[9:], int(row[13] is None), int(row[14] is None), version,
             recorded_at)
            for row in rows
        ])
        # fmt: on
        return
    note_kinds(conn, kinds_of(rows))
    head = (
        f"INSERT INTO {_usage.name} ({', '.join(_INSERT_COLUMNS)}) "
        f"SELECT {', '.join(_FIRST_ENTRY)} FROM (VALUES "
    )
    with db_errors("writing the ledger", conn.engine.url, conflict=CONFLICT):
        limit = _variable_limit(conn) - 2
        insert_values(conn.exec_driver_sql, head, 15, rows, limit, (version, recorded_at), ")")


Kind = tuple[str, int, int]  # source, bucket width, bucket start modulo width


def kinds_of(rows: Collection[Sequence[Any]]) -> set[Kind]:
    """The kinds of bucket among keys, or rows whose first fields are a key's.

    Built in C (map, zip), with no Python-level step per row: a large import notes the
    kinds of every batch.
    """
    starts = list(map(itemgetter(1), rows))
    widths = list(map(sub, map(itemgetter(2), rows), starts))
    return set(zip(map(itemgetter(0), rows), widths, map(mod, starts, widths), strict=True))


def only_kind(kinds: set[Kind]) -> Kind | None:
    """The one kind in `kinds`, or None when they are several (or none)."""
    return next(iter(kinds)) if len(kinds) == 1 else None


def note_kinds(conn: Connection, kinds: set[Kind]) -> None:
    """Record the kinds of entries about to be inserted (UsageBucketKind)."""
    known = {
        tuple(row)
        for row in conn.exec_driver_sql(f"SELECT source, width, phase FROM {_kinds.name}")
    }
    mark = _param_mark(conn)
    sql = (
        f"INSERT INTO {_kinds.name} (source, width, phase) VALUES ({mark}, {mark}, {mark}) "
        "ON CONFLICT DO NOTHING"
    )
    for kind in sorted(kinds - known):
        conn.exec_driver_sql(sql, kind)


# Parameters bound per multi-row INSERT on SQLite (its limit permitting).
VALUES_PARAMETERS = 16_384


def insert_values(
    execute: Callable[[str, Any], object],
    head: str,
    width: int,
    rows: Sequence[tuple[Any, ...]],
    limit: int,
    lead: tuple[Any, ...] = (),
    tail: str = "",
) -> None:
    """`head` ("INSERT INTO t (...) VALUES ") with `rows` of `width` values, SQLite;
    `lead`: values bound before the rows' (for marks in `head`), `tail` ends the SQL.

    Many rows per statement: one statement per row (executemany) spends as much on
    stepping each statement as on the row. Rows beyond the last full statement go
    through executemany, so only two statements are ever prepared.
    """
    per = max(1, min(VALUES_PARAMETERS, limit) // width)
    marks = _row_marks("?", width)
    full = len(rows) - len(rows) % per
    if full:
        sql = head + ", ".join([marks] * per) + tail
        for i in range(0, full, per):
            execute(sql, (*lead, *chain.from_iterable(rows[i : i + per])))
    if full < len(rows):
        execute(head + marks + tail, [(*lead, *row) for row in rows[full:]])


def _row_marks(mark: str, width: int) -> str:
    return f"({', '.join([mark] * width)})"


def _variable_limit(conn: Connection) -> int:
    """How many parameters one SQLite statement may bind (999 before SQLite 3.32)."""
    getlimit = getattr(conn.connection.dbapi_connection, "getlimit", None)
    return 999 if getlimit is None else int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def _param_mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _chunks(rows: Sequence[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    for i in range(0, len(rows), size):
        yield list(rows[i : i + size])


def index_observations(
    observations: Iterable[UsageObservation],
) -> tuple[dict[UsageKey, UsageObservation], list[UsageKey]]:
    """Observations by key; a key read twice is merged when equal, reported when not."""
    indexed: dict[UsageKey, UsageObservation] = {}
    conflicts: list[UsageKey] = []
    for obs in observations:
        seen = indexed.get(obs.key)
        if seen is None:
            indexed[obs.key] = obs
        elif not seen.same_counts(obs):
            conflicts.append(obs.key)
    return indexed, conflicts


# --- training fees ------------------------------------------------------------------


@dataclass(frozen=True)
class FeeOutcome:
    posted: bool
    cost_pico: int | None
    note: str | None  # why a fee has no cost (per-hour billing, no price)
    revised_from: int | None = None  # the trained_tokens held before a revision posted


@dataclass(frozen=True)
class HeldFee:
    """What the ledger holds for a job's fee: its entries summed, revision 1's identity."""

    job_id: str
    revision: int  # the last one
    trained_tokens: int
    cost_pico: int | None  # None: no entry has a cost (the fee is unpriced)
    model: str
    base_model: str
    method: str
    project: str
    finished_at: int


def fee_price(
    book: PriceBook, base_model: str, finished_at: int, trained_tokens: int
) -> tuple[int | None, str | None, str | None]:
    """(cost in pico-USD, training price text, why there is no cost) of a job's fee at
    the training price in force when it finished."""
    row = book.price_at(f"ft:{base_model}", utc_date(finished_at))
    if row is None:
        return None, None, f"no fine-tuning price for {base_model} on {utc_date(finished_at)}"
    if row.training is None:
        return None, None, "billed per training hour; the API does not report hours"
    return trained_tokens * per_token_pico(row.training), str(row.training), None


def post_training_fee(
    conn: Connection, job: JobObservation, book: PriceBook, *, now: int | None = None
) -> FeeOutcome:
    """Post a finished job's fee: the first entry, or the correction that makes the
    job's entries sum to its current `trained_tokens` at the current book's price.

    Priced at the training price in force when the job finished and attributed to the
    fine-tuned model. The same reading again posts nothing. A fee held unpriced gets its
    cost once the book has a price; a revised `trained_tokens` posts the difference
    (priced at the current book, like a re-read usage bucket); a priced fee whose
    tokens did not change keeps its price (`ftledger reprice --all` moves it). Jobs
    billed per hour (reinforcement) are recorded without a cost: the API does not
    report the hours, and ftledger does not invent them.
    """
    if not job.terminal or job.trained_tokens is None or job.finished_at is None:
        return FeeOutcome(False, None, None)
    cost, price, note = fee_price(book, job.model, job.finished_at, job.trained_tokens)
    recorded_at = int(time.time()) if now is None else now
    held = held_fees(conn, [job.id]).get(job.id)
    if held is None:
        values = {
            "job_id": job.id,
            "revision": 1,
            "model": job.fine_tuned_model or f"ft:{job.model}",
            "base_model": book.resolve(job.model).base_model,
            "method": job.method,
            "trained_tokens": job.trained_tokens,
            "training_price": price,
            "cost_pico": cost,
            "finished_at": job.finished_at,
            "project": job.project,
            "price_version": book.version,
            "recorded_at": recorded_at,
        }
        posted = insert_ignore(conn, _fees, [values], ["job_id", "revision"]) > 0
        return FeeOutcome(posted, cost, note)
    changed = job.trained_tokens != held.trained_tokens
    if not changed and (cost is None or held.cost_pico is not None):
        return FeeOutcome(False, cost, note)
    post_fee_correction(conn, held, job.trained_tokens, cost, price, book.version, recorded_at)
    return FeeOutcome(True, cost, note, held.trained_tokens if changed else None)


def post_fee_correction(
    conn: Connection,
    held: HeldFee,
    trained_tokens: int,
    cost: int | None,
    price: str | None,
    version: str,
    recorded_at: int,
) -> None:
    """The next entry of a held fee: after it the job sums to `trained_tokens` and, when
    `cost` is known, to `cost` (without a price the held cost is kept)."""
    values = {
        "job_id": held.job_id,
        "revision": held.revision + 1,
        "model": held.model,
        "base_model": held.base_model,
        "method": held.method,
        "trained_tokens": trained_tokens - held.trained_tokens,
        "training_price": price,
        "cost_pico": None if cost is None else cost - (held.cost_pico or 0),
        "finished_at": held.finished_at,
        "project": held.project,
        "price_version": version,
        "recorded_at": recorded_at,
    }
    if not insert_ignore(conn, _fees, [values], ["job_id", "revision"]):
        raise ConflictError("another writer corrected the same training fee at the same time")


def held_fees(
    conn: Connection,
    job_ids: Collection[str] | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
) -> dict[str, HeldFee]:
    """The fees held for `job_ids` (or every job that finished in [start, end))."""
    c = _fees.c
    query = select(
        c.job_id,
        func.max(c.revision),
        func.sum(c.trained_tokens),
        func.sum(c.cost_pico),
        func.count(c.cost_pico),
        func.min(c.model),
        func.min(c.base_model),
        func.min(c.method),
        func.min(c.project),
        func.min(c.finished_at),
    ).group_by(c.job_id)
    if start is not None:
        query = query.where(c.finished_at >= start)
    if end is not None:
        query = query.where(c.finished_at < end)
    ids = None if job_ids is None else sorted(set(job_ids))
    chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
    held: dict[str, HeldFee] = {}
    for chunk in chunks:
        selected = query if chunk is None else query.where(c.job_id.in_(chunk))
        for job_id, rev, tokens, cost, priced, *identity in conn.execute(selected):
            model, base_model, method, project, finished_at = identity
            held[job_id] = HeldFee(
                job_id,
                int(rev),
                int(tokens),
                int(cost) if priced else None,
                model,
                base_model,
                method,
                project,
                int(finished_at),
            )
    return held


def insert_ignore(
    conn: Connection, table: Table, rows: list[dict[str, Any]], conflict_columns: list[str]
) -> int:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL; returns rows inserted."""
    if not rows:
        return 0
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=conflict_columns)
        .returning(table.c[conflict_columns[0]])
    )
    # Counted through RETURNING: a driver's executemany rowcount is not reliable here.
    return len(conn.execute(stmt, rows).all())
