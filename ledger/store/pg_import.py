"""Posting a large import on PostgreSQL: COPY each batch into staging, then INSERT ... SELECT.

The same rule as store.ledger.UsagePosting, set-based: every observation is priced in
Python (one pricer, exact integers) and copied into a temporary table; one statement
then looks up, for each staged key, the sums the ledger holds (through the unique key's
index) and inserts the entry that makes the key sum to its observation, for each key
that is new or changed (revision = held max + 1). While the server runs that statement
the importer's reader thread parses the next batch. A concurrent writer's identical
posting hits the unique key (usage key, revision) and becomes a ConflictError, as with
UsagePosting. Keys must not repeat across batches (the CSV stream guarantees it).
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
from ledger.store.ledger import PostResult
from ledger.store.tables import USAGE_KEY_COLUMNS, UsageEntry, core

_usage = core(UsageEntry).name
_STAGE = "ftledger_import_stage"
_KEY = USAGE_KEY_COLUMNS
_COUNTS = ("requests", "input_tokens", "cached_tokens", "output_tokens")
_STAGED = (*_KEY, *_COUNTS, "cost_pico", "base_cost_pico")


def _post_sql() -> str:
    sums = ", ".join(
        f"sum(u.{c}) AS {c}"
        for c in (*_COUNTS, "cost_pico", "base_cost_pico", "unpriced", "base_unpriced")
    )
    match = " AND ".join(f"u.{c} = s.{c}" for c in _KEY)
    same = " AND ".join(f"h.{c} = s.{c}" for c in _COUNTS)
    diffs = ", ".join(f"s.{c} - coalesce(h.{c}, 0)" for c in _COUNTS)
    # LATERAL: one lookup through the unique key's index per staged key.
    return f"""
        WITH posted AS (
            INSERT INTO {_usage} ({", ".join(_KEY)}, revision, {", ".join(_COUNTS)},
                cost_pico, base_cost_pico, unpriced, base_unpriced, price_version, recorded_at)
            SELECT {", ".join(f"s.{c}" for c in _KEY)}, coalesce(h.revision, 0) + 1, {diffs},
                s.cost_pico - coalesce(h.cost_pico, 0),
                s.base_cost_pico - coalesce(h.base_cost_pico, 0),
                (s.cost_pico IS NULL)::int - coalesce(h.unpriced, 0),
                (s.base_cost_pico IS NULL)::int - coalesce(h.base_unpriced, 0),
                %(version)s, %(recorded_at)s
            FROM {_STAGE} s CROSS JOIN LATERAL (
                SELECT max(u.revision) AS revision, {sums}
                FROM {_usage} u WHERE {match}
            ) h
            WHERE h.revision IS NULL OR NOT ({same})
               OR (h.unpriced <> 0 AND s.cost_pico IS NOT NULL)
               OR (h.base_unpriced <> 0 AND s.base_cost_pico IS NOT NULL)
            RETURNING model, cost_pico IS NULL AS unpriced
        )
        SELECT count(*), array_agg(DISTINCT model) FILTER (WHERE unpriced) FROM posted
    """


_POST = _post_sql()


class StagedUsagePosting:
    """add() stages and posts one batch; finish() returns what all batches posted."""

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
        # No JIT: compiling the statement costs more than running it on one batch, again
        # for every batch. For this transaction only, which holds nothing but the import.
        conn.exec_driver_sql("SET LOCAL jit = off")

    def add(self, observations: Mapping[UsageKey, UsageObservation]) -> None:
        if not observations:
            return
        price = self.pricer.price
        conn = self.conn
        conn.exec_driver_sql(f"TRUNCATE {_STAGE}")
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY {_STAGE} ({', '.join(_STAGED)}) FROM STDIN") as copy:
                write = copy.write_row
                for obs in observations.values():
                    write((*obs.key, *obs[1:], *price(obs)))
        finally:
            cursor.close()
        try:
            posted, unpriced = conn.exec_driver_sql(_POST, self.params).one()
        except IntegrityError:
            raise ConflictError(
                "another writer posted the same usage at the same time; nothing was written"
            ) from None
        result = self.result
        result.observed += len(observations)
        result.posted += int(posted)
        result.unchanged += len(observations) - int(posted)
        result.unpriced_models.update(unpriced or ())

    def finish(self) -> PostResult:
        return self.result
