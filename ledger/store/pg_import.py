"""Posting a large import on PostgreSQL: COPY each batch into staging, then INSERT ... SELECT.

The same rule as store.ledger.UsagePosting, set-based: every observation is priced in
Python (one pricer, exact integers) and copied (binary COPY) into a temporary table.
One statement then sorts the staged keys by what the ledger holds, in one hash join
with the revision-1 entries of the batch's time span:

- a key the ledger does not hold gets its first entry (revision 1);
- a key held as one entry equal to its observation, priced, is unchanged;
- any other key (changed, unpriced, or with later revisions) is looked up through the
  unique key's index, summed, and gets the entry that makes it sum to its observation
  (revision = held max + 1).

A re-import thus costs one join instead of one index lookup and aggregate per key
(about a third of the server's time at 1M rows, bench/import_usage.py). A concurrent
writer's identical posting hits the unique key (usage key, revision) and becomes a
ConflictError, as with UsagePosting. Keys must not repeat across batches (the CSV
stream guarantees it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ledger.domain import UsageKey, UsageObservation
from ledger.errors import ConflictError
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer
from ledger.store.ledger import CONFLICT, PostResult, note_widths
from ledger.store.tables import USAGE_KEY_COLUMNS, UsageEntry, core

_usage = core(UsageEntry).name
_STAGE = "ftledger_import_stage"
_KEY = USAGE_KEY_COLUMNS
_COUNTS = ("requests", "input_tokens", "cached_tokens", "output_tokens")
_STAGED = (*_KEY, *_COUNTS, "cost_pico", "base_cost_pico")


def _on_key(a: str, b: str) -> str:
    return " AND ".join(f"{a}.{c} = {b}.{c}" for c in _KEY)


def _post_sql() -> str:
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
    return f"""
        WITH later AS MATERIALIZED (
            SELECT DISTINCT {key} FROM {_usage} WHERE {in_span} AND revision > 1
        ), staged AS MATERIALIZED (
            SELECT s.*, h.revision IS NULL AS unheld,
                coalesce({same} AND h.unpriced = 0 AND h.base_unpriced = 0, false) AS same,
                EXISTS (SELECT 1 FROM later l WHERE {_on_key("l", "s")}) AS revised
            FROM {_STAGE} s LEFT JOIN {_usage} h
              ON {_on_key("h", "s")} AND h.revision = 1 AND h.{in_span}
        ), fresh AS (
            INSERT INTO {_usage} ({columns})
            SELECT {key}, 1, {counts}, cost_pico, base_cost_pico,
                (cost_pico IS NULL)::int, (base_cost_pico IS NULL)::int,
                %(version)s, %(recorded_at)s
            FROM staged WHERE unheld AND NOT revised
            RETURNING model, cost_pico IS NULL AS unpriced
        ), changed AS (
            INSERT INTO {_usage} ({columns})
            SELECT {", ".join(f"s.{c}" for c in _KEY)}, coalesce(h.revision, 0) + 1, {diffs},
                s.cost_pico - coalesce(h.cost_pico, 0),
                s.base_cost_pico - coalesce(h.base_cost_pico, 0),
                (s.cost_pico IS NULL)::int - coalesce(h.unpriced, 0),
                (s.base_cost_pico IS NULL)::int - coalesce(h.base_unpriced, 0),
                %(version)s, %(recorded_at)s
            FROM staged s CROSS JOIN LATERAL (
                SELECT max(u.revision) AS revision, {sums}
                FROM {_usage} u WHERE {_on_key("u", "s")}
            ) h
            WHERE (s.revised OR NOT (s.unheld OR s.same))
              AND (h.revision IS NULL OR NOT ({same})
                   OR (h.unpriced <> 0 AND s.cost_pico IS NOT NULL)
                   OR (h.base_unpriced <> 0 AND s.base_cost_pico IS NOT NULL))
            RETURNING model, cost_pico IS NULL AS unpriced
        ), posted AS (
            SELECT * FROM fresh UNION ALL SELECT * FROM changed
        )
        SELECT count(*), array_agg(DISTINCT model) FILTER (WHERE unpriced) FROM posted
    """


_POST = _post_sql()
# Binary COPY: psycopg sends the integers as they are, instead of formatting each as
# text in the importing process (about a quarter of the text format's CPU time).
_COPY = f"COPY {_STAGE} ({', '.join(_STAGED)}) FROM STDIN (FORMAT BINARY)"
_STAGED_TYPES = ["text", *["int8"] * 2, *["text"] * 4, "bool", "text", *["int8"] * 6]


class StagedBatch(dict[UsageKey, UsageObservation]):
    """A batch with its staging rows (key, counts, cost, base cost) already priced."""

    rows: list[tuple[Any, ...]]


class StagedUsagePosting:
    """add() stages and posts one batch; finish() returns what all batches posted.

    stage() prices a batch's rows ahead, in the thread that reads the file, so that the
    posting thread mostly waits for the server (an import measured ~1 s less per 1M).
    """

    def __init__(self, conn: Connection, book: PriceBook, *, now: int | None = None):
        self.conn = conn
        self.pricer = UsagePricer(book)
        self.params: dict[str, Any] = {
            "version": book.version,
            "recorded_at": int(time.time()) if now is None else now,
        }
        self.result = PostResult()
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_STAGE} (source text, bucket_start bigint, "
            "bucket_end bigint, model text, project_id text, api_key_id text, user_id text, "
            "batch boolean, service_tier text, requests bigint, input_tokens bigint, "
            "cached_tokens bigint, output_tokens bigint, cost_pico bigint, "
            "base_cost_pico bigint) ON COMMIT DROP"
        )
        # For this transaction only, which holds nothing but the import. No JIT: compiling
        # the statement costs more than running it on one batch, again for every batch.
        # No nested loop for the join: the staging table has no statistics, and a nested
        # loop would look up every staged key through the index, one by one.
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")

    def stage(self, observations: Mapping[UsageKey, UsageObservation]) -> StagedBatch:
        """The batch with its staging rows priced (one thread at a time: the pricer's
        cache is not shared across threads)."""
        batch = StagedBatch(observations)
        price = self.pricer.price
        batch.rows = [(*obs.key, *obs[1:], *price(obs)) for obs in observations.values()]
        return batch

    def add(self, observations: Mapping[UsageKey, UsageObservation]) -> None:
        if not observations:
            return
        if not isinstance(observations, StagedBatch):
            observations = self.stage(observations)
        conn = self.conn
        conn.exec_driver_sql(f"TRUNCATE {_STAGE}")
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(_COPY) as copy:
                copy.set_types(_STAGED_TYPES)
                write = copy.write_row
                for row in observations.rows:
                    write(row)
        finally:
            cursor.close()
        starts = [k.bucket_start for k in observations]
        span = {"low": min(starts), "high": max(starts)}
        note_widths(conn, {k.bucket_end - k.bucket_start for k in observations})
        try:
            posted, unpriced = conn.exec_driver_sql(_POST, {**self.params, **span}).one()
        except IntegrityError:
            raise ConflictError(CONFLICT) from None
        result = self.result
        result.observed += len(observations)
        result.posted += int(posted)
        result.unchanged += len(observations) - int(posted)
        result.unpriced_models.update(unpriced or ())

    def finish(self) -> PostResult:
        return self.result
