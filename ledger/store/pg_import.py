"""Posting a large import on PostgreSQL: COPY each batch into staging, then INSERT ... SELECT.

The same rule as store.ledger.UsagePosting, set-based: each batch's observations are
copied (binary COPY) into a temporary table, and one statement sorts the staged keys
by what the ledger holds, in one hash join with the revision-1 entries of the batch's
time span:

- a key the ledger does not hold gets its first entry (revision 1);
- a key held as one entry equal to its observation, priced, is unchanged;
- any other key (changed, unpriced, or with later revisions) is looked up through the
  unique key's index, summed, and gets the entry that makes it sum to its observation
  (revision = held max + 1).

Only the entries posted are priced, in the statement, by the rates Python's pricer
(ledger.pricing.UsagePricer) gives each (model, day, batch, tier) of the batch, kept
in a second temporary table: a re-import prices nothing. The arithmetic is
TokenRates.cost on BIGINT (exact; a count that could overflow is refused while the
file is read).

A re-import thus costs one join instead of one index lookup and aggregate per key
(about a third of the server's time at 1M rows, bench/import_usage.py). A concurrent
writer's identical posting hits the unique key (usage key, revision) and becomes a
ConflictError, as with UsagePosting. Keys must not repeat across batches (the CSV
stream guarantees it).

The same statement can stand guard for the overlap check (store.overlap): given the
batch's one kind (source, width, alignment), it posts nothing if the ledger holds a
key of any other kind in the batch's time span, and says so; the caller then checks
those suspects in Python. One round trip per batch instead of two.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ledger.errors import ConflictError
from ledger.pricebook import PriceBook, TokenRates
from ledger.pricing import UsagePricer
from ledger.store.ledger import CONFLICT, Kind, PostResult, kinds_of, note_kinds, only_kind
from ledger.store.tables import USAGE_KEY_COLUMNS, UsageBucketKind, UsageEntry, core

_usage = core(UsageEntry).name
_kinds = core(UsageBucketKind).name
_STAGE = "ftledger_import_stage"
_RATES = "ftledger_import_rates"
_KEY = USAGE_KEY_COLUMNS
_COUNTS = ("requests", "input_tokens", "cached_tokens", "output_tokens")
_STAGED = (*_KEY, *_COUNTS)
_RATE_COLUMNS = (
    "day",
    "model",
    "batch",
    "service_tier",
    *(f"{who}{rate}" for who in ("", "base_") for rate in ("input", "cached_input", "output")),
)


def _on_key(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{c} = {b}.{c}" for c in _KEY)


# Keys of another kind than the batch's (source, width, start modulo width) in its span,
# reaching back by the longest bucket held: what store.overlap.find_overlaps reads.
# Not read at all when the ledger holds no other kind (evaluated once, first).
_OTHER_KIND = "NOT (source = %(source)s AND width = %(width)s AND phase = %(phase)s)"
_SUSPECT = f"""
    suspect AS MATERIALIZED (
        SELECT 1 FROM {_usage}
        WHERE EXISTS (SELECT 1 FROM {_kinds} WHERE {_OTHER_KIND})
          AND bucket_start >= %(low)s - (SELECT max(width) FROM {_kinds})
          AND bucket_start < %(end)s AND bucket_end > %(low)s
          AND NOT (source = %(source)s AND bucket_end - bucket_start = %(width)s
                   AND bucket_start %% %(width)s = %(phase)s)
        LIMIT 1
    ),"""


# The day of a bucket's start, floored as Python's // floors (before 1970 too).
_DAY = "(s.bucket_start - (s.bucket_start %% 86400 + 86400) %% 86400) / 86400"


def _cost(rates: str) -> str:
    """TokenRates.cost of a staged row at `rates` (NULL where unpriced)."""
    return (
        f"((s.input_tokens - s.cached_tokens) * {rates}input"
        f" + s.cached_tokens * {rates}cached_input + s.output_tokens * {rates}output)"
    )


def _post_sql(guarded: bool) -> str:
    key = ", ".join(_KEY)
    counts = ", ".join(_COUNTS)
    columns = (
        f"{key}, revision, {counts}, cost_pico, base_cost_pico, unpriced, base_unpriced, "
        "price_version, recorded_at"
    )
    same = " AND ".join(f"h.{c} = s.{c}" for c in _COUNTS)
    sums = ", ".join(
        f"sum(u.{c}) AS {c}"
        for c in (*_COUNTS, "cost_pico", "base_cost_pico", "unpriced", "base_unpriced")
    )
    diffs = ", ".join(f"s.{c} - coalesce(h.{c}, 0)" for c in _COUNTS)
    in_span = "bucket_start BETWEEN %(low)s AND %(high)s"
    clear = "NOT EXISTS (SELECT 1 FROM suspect)" if guarded else "true"
    return f"""
        WITH {_SUSPECT if guarded else ""} later AS MATERIALIZED (
            SELECT DISTINCT {key} FROM {_usage} WHERE {in_span} AND revision > 1
        ), staged AS MATERIALIZED (
            SELECT s.*, h.revision IS NULL AS unheld,
                coalesce({same} AND h.unpriced = 0 AND h.base_unpriced = 0, false) AS same,
                EXISTS (SELECT 1 FROM later l WHERE {_on_key("l", "s")}) AS revised
            FROM {_STAGE} s LEFT JOIN {_usage} h
              ON {_on_key("h", "s")} AND h.revision = 1 AND h.{in_span}
            WHERE {clear}
        ), priced AS MATERIALIZED (
            SELECT s.*, {_cost("r.")} AS cost_pico, {_cost("r.base_")} AS base_cost_pico,
                r.day IS NULL AS unrated
            FROM staged s LEFT JOIN {_RATES} r
              ON r.day = {_DAY} AND r.model = s.model AND r.batch = s.batch
             AND r.service_tier = s.service_tier
            WHERE s.unheld OR s.revised OR NOT s.same
        ), fresh AS (
            INSERT INTO {_usage} ({columns})
            SELECT {key}, 1, {counts}, cost_pico, base_cost_pico,
                (cost_pico IS NULL)::int, (base_cost_pico IS NULL)::int,
                %(version)s, %(recorded_at)s
            FROM priced WHERE unheld AND NOT revised
            RETURNING model, cost_pico IS NULL AS unpriced
        ), changed AS (
            INSERT INTO {_usage} ({columns})
            SELECT {", ".join(f"s.{c}" for c in _KEY)}, coalesce(h.revision, 0) + 1, {diffs},
                s.cost_pico - coalesce(h.cost_pico, 0),
                s.base_cost_pico - coalesce(h.base_cost_pico, 0),
                (s.cost_pico IS NULL)::int - coalesce(h.unpriced, 0),
                (s.base_cost_pico IS NULL)::int - coalesce(h.base_unpriced, 0),
                %(version)s, %(recorded_at)s
            FROM priced s CROSS JOIN LATERAL (
                SELECT max(u.revision) AS revision, {sums}
                FROM {_usage} u WHERE {_on_key("u", "s")}
            ) h
            WHERE (s.revised OR NOT s.unheld)
              AND (h.revision IS NULL OR NOT ({same})
                   OR (h.unpriced <> 0 AND s.cost_pico IS NOT NULL)
                   OR (h.base_unpriced <> 0 AND s.base_cost_pico IS NOT NULL))
            RETURNING model, cost_pico IS NULL AS unpriced
        ), posted AS (
            SELECT * FROM fresh UNION ALL SELECT * FROM changed
        )
        SELECT count(*), array_agg(DISTINCT model) FILTER (WHERE unpriced),
            {"(SELECT count(*) FROM suspect)" if guarded else "0"},
            (SELECT count(*) FROM priced WHERE unrated)
        FROM posted
    """


_POST = _post_sql(guarded=False)
_POST_UNLESS_SUSPECT = _post_sql(guarded=True)
# Binary COPY: psycopg sends the integers as they are, instead of formatting each as
# text in the importing process (about a quarter of the text format's CPU time).
_COPY = f"COPY {_STAGE} ({', '.join(_STAGED)}) FROM STDIN (FORMAT BINARY)"
_STAGED_TYPES = ["text", *["int8"] * 2, *["text"] * 4, "bool", "text", *["int8"] * 4]
_COPY_RATES = f"COPY {_RATES} ({', '.join(_RATE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_RATE_TYPES = ["int8", "text", "bool", "text", *["int8"] * 6]


_Day = tuple[str, int, bool, str]  # model, day (unix time // 86400), batch, tier


class StagedUsagePosting:
    """stage() copies one batch's rows into staging; post() posts them; finish() returns
    what all batches posted.

    A staged row is `(*UsageKey, requests, input, cached, output)`
    (sources.csv_process reads them).
    """

    def __init__(self, conn: Connection, book: PriceBook, *, now: int | None = None):
        self.conn = conn
        self.pricer = UsagePricer(book)
        self.params: dict[str, Any] = {
            "version": book.version,
            "recorded_at": int(time.time()) if now is None else now,
        }
        self.result = PostResult()
        self.noted: set[Kind] = set()  # bucket kinds noted in this transaction
        self.rated: set[_Day] = set()  # rates in the rates table
        self.kind: Kind | None = None  # the staged batch's one kind, if it has one
        self.staged = 0
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_STAGE} (source text, bucket_start bigint, "
            "bucket_end bigint, model text, project_id text, api_key_id text, user_id text, "
            "batch boolean, service_tier text, requests bigint, input_tokens bigint, "
            "cached_tokens bigint, output_tokens bigint) ON COMMIT DROP"
        )
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_RATES} (day bigint, model text, batch boolean, "
            "service_tier text, input bigint, cached_input bigint, output bigint, "
            "base_input bigint, base_cached_input bigint, base_output bigint, "
            "PRIMARY KEY (day, model, batch, service_tier)) ON COMMIT DROP"
        )
        # For this transaction only, which holds nothing but the import. No JIT: compiling
        # the statement costs more than running it on one batch, again for every batch.
        # No nested loop for the join: the staging table has no statistics, and a nested
        # loop would look up every staged key through the index, one by one.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")

    def stage(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Replace the staged batch with `rows` (keys unique, none staged before)."""
        conn = self.conn
        conn.exec_driver_sql(f"TRUNCATE {_STAGE}")
        self._copy(_COPY, _STAGED_TYPES, rows)
        self.staged = len(rows)
        # Per-row work in C (map, itemgetter): this runs beside the reading process.
        kinds = kinds_of(rows)
        self.kind = only_kind(kinds)
        if kinds - self.noted:
            note_kinds(conn, kinds - self.noted)
            self.noted |= kinds
        starts = list(map(itemgetter(1), rows))
        low, high = min(starts), max(starts)
        self.params.update(low=low, high=high, end=max(map(itemgetter(2), rows)))
        days = _days(rows, low // 86400, high // 86400) - self.rated
        if days:
            self._copy(_COPY_RATES, _RATE_TYPES, [self._rates(*day) for day in days])
            self.rated |= days

    def _rates(self, model: str, day: int, batch: bool, tier: str) -> tuple[Any, ...]:
        """A row of the rates table: the pricer's rates, NULL where there is no price."""
        own, base = self.pricer.rates(model, day * 86400, batch, tier)
        return (day, model, batch, tier, *_fields(own), *_fields(base))

    def _copy(self, sql: str, types: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
        cursor = self.conn.connection.cursor()
        try:
            with cursor.copy(sql) as copy:
                copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)
        finally:
            cursor.close()

    def post(self, *, guarded: bool = False) -> bool:
        """Post the staged batch, or if `guarded` post nothing and return False unless
        the batch has one kind and the ledger holds no key of another kind in its time
        span (the caller's overlap check decides: store.overlap)."""
        params = self.params
        sql = _POST
        if guarded:
            if self.kind is None:
                return False
            sql = _POST_UNLESS_SUSPECT
            source, width, phase = self.kind
            params = {**params, "source": source, "width": width, "phase": phase}
        try:
            posted, unpriced, suspects, unrated = self.conn.exec_driver_sql(sql, params).one()
        except IntegrityError:
            raise ConflictError(CONFLICT) from None
        if unrated:  # every (model, day, batch, tier) staged was given its rates
            raise AssertionError(f"{unrated} staged keys found no rates")
        if suspects:
            return False
        result = self.result
        result.observed += self.staged
        result.posted += int(posted)
        result.unchanged += self.staged - int(posted)
        result.unpriced_models.update(unpriced or ())
        return True

    def finish(self) -> PostResult:
        return self.result


def _days(rows: Sequence[tuple[Any, ...]], first: int, last: int) -> set[_Day]:
    """Every (model, day, batch, tier) of `rows`, whose starts lie from day `first` to
    `last`: each model, batch and tier seen on each of those days when that is fewer
    than the rows (a few more rates than needed do no harm), else exactly."""
    dims = set(map(itemgetter(3, 7, 8), rows))
    if len(dims) * (last - first + 1) > len(rows):
        return {(row[3], row[1] // 86400, row[7], row[8]) for row in rows}
    return {
        (model, day, batch, tier) for model, batch, tier in dims for day in range(first, last + 1)
    }


def _fields(rates: TokenRates | None) -> tuple[int | None, ...]:
    if rates is None:
        return (None, None, None)
    return (rates.input, rates.cached_input, rates.output)
