"""Posting a large import on PostgreSQL: COPY into a staging table, then one INSERT ... SELECT.

The same rule as store.ledger.UsagePosting, set-based: every observation is priced in
Python (one pricer, exact integers) and copied into a temporary table; at the end one
statement joins the staged keys with the sums the ledger holds for them and inserts,
for each key that is new or changed, the entry that makes its sum equal the
observation (revision = held max + 1). A concurrent writer's identical posting hits
the unique key (usage key, revision) and becomes a ConflictError, as with
UsagePosting. Staged keys must not repeat (the CSV stream guarantees it).
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
_STAGED = ("n", *_KEY, *_COUNTS, "cost_pico", "base_cost_pico")


class StagedUsagePosting:
    """add() batches of observations, finish() posts them all in one statement."""

    def __init__(self, conn: Connection, book: PriceBook, *, now: int | None = None):
        self.conn = conn
        self.pricer = UsagePricer(book)
        self.version = book.version
        self.recorded_at = int(time.time()) if now is None else now
        self.observed = 0
        self.sources: set[str] = set()
        self.first: int | None = None
        self.last: int | None = None
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_STAGE} (n bigint, source text, bucket_start bigint, "
            "bucket_end bigint, model text, project_id text, api_key_id text, user_id text, "
            "batch boolean, service_tier text, requests bigint, input_tokens bigint, "
            "cached_tokens bigint, output_tokens bigint, cost_pico bigint, "
            "base_cost_pico bigint) ON COMMIT DROP"
        )

    def add(self, observations: Mapping[UsageKey, UsageObservation]) -> None:
        if not observations:
            return
        starts = [k.bucket_start for k in observations]
        low, high = min(starts), max(starts)
        self.first = low if self.first is None else min(self.first, low)
        self.last = high if self.last is None else max(self.last, high)
        self.sources.update(k.source for k in observations)
        price = self.pricer.price
        cursor = self.conn.connection.cursor()
        try:
            with cursor.copy(f"COPY {_STAGE} ({', '.join(_STAGED)}) FROM STDIN") as copy:
                write = copy.write_row
                for n, obs in enumerate(observations.values(), start=self.observed + 1):
                    write((n, *obs.key, *obs[1:], *price(obs)))
        finally:
            cursor.close()
        self.observed += len(observations)

    def finish(self) -> PostResult:
        result = PostResult(observed=self.observed)
        if not self.observed:
            return result
        conn = self.conn
        conn.exec_driver_sql(f"ANALYZE {_STAGE}")
        sums = ", ".join(
            f"sum(u.{c}) AS {c}"
            for c in (*_COUNTS, "cost_pico", "base_cost_pico", "unpriced", "base_unpriced")
        )
        match = " AND ".join(f"u.{c} = s.{c}" for c in _KEY)
        same = " AND ".join(f"h.{c} = s.{c}" for c in _COUNTS)
        diffs = ", ".join(f"s.{c} - coalesce(h.{c}, 0)" for c in _COUNTS)
        sql = f"""
            WITH held AS (
                SELECT s.n, max(u.revision) AS revision, {sums}
                FROM {_STAGE} s JOIN {_usage} u ON {match}
                WHERE u.source = ANY(%(sources)s) AND u.bucket_start BETWEEN %(first)s AND %(last)s
                GROUP BY s.n
            ), posted AS (
                INSERT INTO {_usage} ({", ".join(_KEY)}, revision, {", ".join(_COUNTS)},
                    cost_pico, base_cost_pico, unpriced, base_unpriced, price_version,
                    recorded_at)
                SELECT {", ".join(f"s.{c}" for c in _KEY)}, coalesce(h.revision, 0) + 1, {diffs},
                    s.cost_pico - coalesce(h.cost_pico, 0),
                    s.base_cost_pico - coalesce(h.base_cost_pico, 0),
                    (s.cost_pico IS NULL)::int - coalesce(h.unpriced, 0),
                    (s.base_cost_pico IS NULL)::int - coalesce(h.base_unpriced, 0),
                    %(version)s, %(recorded_at)s
                FROM {_STAGE} s LEFT JOIN held h ON h.n = s.n
                WHERE h.revision IS NULL OR NOT ({same})
                   OR (h.unpriced <> 0 AND s.cost_pico IS NOT NULL)
                   OR (h.base_unpriced <> 0 AND s.base_cost_pico IS NOT NULL)
                RETURNING model, cost_pico IS NULL AS unpriced
            )
            SELECT count(*), array_agg(DISTINCT model) FILTER (WHERE unpriced) FROM posted
        """
        params: dict[str, Any] = {
            "sources": sorted(self.sources),
            "first": self.first,
            "last": self.last,
            "version": self.version,
            "recorded_at": self.recorded_at,
        }
        # Hash joins: the ledger's statistics may predate the rows just staged (or a large
        # import just committed), and a nested loop over a million keys never ends.
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        try:
            posted, unpriced = conn.exec_driver_sql(sql, params).one()
        except IntegrityError:
            raise ConflictError(
                "another writer posted the same usage at the same time; nothing was written"
            ) from None
        conn.exec_driver_sql("RESET enable_nestloop")
        result.posted = int(posted)
        result.unchanged = self.observed - result.posted
        result.unpriced_models = set(unpriced or ())
        return result
