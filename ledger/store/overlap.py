"""One usage, counted once: finding observations that overlap usage the ledger holds.

Two usage keys with the same dimensions (model, project, API key, user, batch, service
tier) whose buckets intersect in time describe the same usage, whatever their sources
or bucket widths: both must never count. Posting the same key again is not an overlap
(it posts the difference); an overlap is a key that differs in source or bucket span.

What happens to one is decided by the writer:

- the poll (`post_window`): a held key of the same source at another bucket width, lying
  inside the window just read, is superseded (a reversing entry makes it sum to zero;
  nothing is edited); an observation overlapping a key of another source (an import),
  or one the window does not cover whole, is skipped and counted: the usage stays with
  the key that holds it.
- an import refuses the file (ledger.importer), naming the line, bucket and source.

The check is one range query per batch on `bucket_start` (the unique key's index leads
with it), reaching back by the longest bucket the ledger holds, which returns only
the suspects: keys of another source or another span than the batch's own. A batch
whose keys all share one source, width and alignment (every poll window; any import in
time order with one width) excludes its own kind in SQL, and reads nothing at all when
the ledger holds no other kind (UsageBucketKind, noted wherever entries are inserted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from ledger.domain import UsageKey, UsageObservation
from ledger.pricebook import PriceBook
from ledger.store.ledger import (
    Kind,
    PostResult,
    UsagePosting,
    _combine,
    _Held,
    _insert_rows,
    _param_mark,
    kinds_of,
    only_kind,
)
from ledger.store.tables import USAGE_KEY_COLUMNS, UsageBucketKind, UsageEntry, core

_usage = core(UsageEntry).name
_kinds = core(UsageBucketKind).name
_SUMS = (
    "revision, requests, input_tokens, cached_tokens, output_tokens, cost_pico, "
    "base_cost_pico, unpriced, base_unpriced"
)


@dataclass(frozen=True)
class Overlap:
    """`observed` (being posted) and `held` (in the ledger, or earlier in the same batch
    when `sums` is None) are the same usage under two keys."""

    observed: UsageKey
    held: UsageKey
    sums: _Held | None


def widest_span(conn: Connection) -> int:
    """The longest bucket the ledger holds, in seconds (0 when empty): how far before a
    batch's first bucket a held bucket may start and still reach into it."""
    found = conn.exec_driver_sql(f"SELECT max(width) FROM {_kinds}").scalar_one()
    return int(found or 0)


def uniform_kind(keys: Collection[Sequence[Any]]) -> Kind | None:
    """The one kind (source, width, start modulo width) of every key, or None. A staged
    row will do for a key: its first fields are the key's."""
    return only_kind(kinds_of(keys))


def _other_kinds_held(conn: Connection, kind: Kind) -> bool:
    """Whether the ledger holds any kind of bucket besides `kind` (UsageBucketKind)."""
    mark = _param_mark(conn)
    sql = (
        f"SELECT 1 FROM {_kinds} "
        f"WHERE NOT (source = {mark} AND width = {mark} AND phase = {mark}) LIMIT 1"
    )
    return conn.exec_driver_sql(sql, kind).first() is not None


def find_overlaps(conn: Connection, observations: Collection[UsageKey]) -> list[Overlap]:
    """Every (observation, held key) pair that is the same usage under two keys.

    Held buckets are read back by the longest one held (widest_span: this transaction's
    postings included). Keys the ledger holds summing to nothing (superseded) do not
    count. Overlaps inside `observations` itself are found too.
    """
    if not observations:
        return []
    uniform = uniform_kind(observations)
    if uniform is not None and not _other_kinds_held(conn, uniform):
        return []  # keys of its own kind can only equal a batch key, never overlap one
    lo = min(k.bucket_start for k in observations)
    hi = max(k.bucket_end for k in observations)
    mark = _param_mark(conn)
    modulo = "%" if mark == "?" else "%%"  # a literal % beside pyformat parameters
    sql = (
        f"SELECT {', '.join(USAGE_KEY_COLUMNS)}, {_SUMS} FROM {_usage} "
        f"WHERE bucket_start >= {mark} AND bucket_start < {mark} AND bucket_end > {mark}"
    )
    params: tuple[Any, ...] = (lo - widest_span(conn), hi, lo)
    if uniform is not None:
        # Keys of this source, width and alignment can only equal a batch key, never
        # overlap one: leave them to the posting, which compares them.
        sql += (
            f" AND NOT (source = {mark} AND bucket_end - bucket_start = {mark}"
            f" AND bucket_start {modulo} {mark} = {mark})"
        )
        source, width, phase = uniform
        params += (source, width, width, phase)
    held: dict[UsageKey, _Held] = {}
    for row in conn.exec_driver_sql(sql, params):
        key = UsageKey._make((*row[:7], bool(row[7]), row[8]))
        values = tuple(row[9:])
        before = held.get(key)
        held[key] = values if before is None else _combine(before, values)
    found: list[Overlap] = []
    by_dims: dict[tuple[Any, ...], list[tuple[UsageKey, _Held]]] = defaultdict(list)
    for key, sums in held.items():
        if not _empty(sums):
            by_dims[key[3:]].append((key, sums))
    if uniform is None:
        found += _within(observations)
    if not by_dims:
        return found
    for obs in observations:
        candidates = by_dims.get(obs[3:])
        if not candidates:
            continue
        for key, sums in candidates:
            if (
                key != obs
                and key.bucket_start < obs.bucket_end
                and obs.bucket_start < key.bucket_end
            ):
                found.append(Overlap(obs, key, sums))
    return found


def _empty(sums: _Held) -> bool:
    """A key whose entries sum to nothing: never posted usage, or superseded."""
    return not any(sums[1:])


def _within(keys: Collection[UsageKey]) -> list[Overlap]:
    """Overlaps between the keys of one batch (only possible when it mixes spans)."""
    by_dims: dict[tuple[Any, ...], list[UsageKey]] = defaultdict(list)
    for k in keys:
        by_dims[k[3:]].append(k)
    found = []
    for group in by_dims.values():
        if len(group) < 2:
            continue
        group.sort(key=lambda k: (k.bucket_start, k.bucket_end))
        reach = group[0]  # the earlier key reaching furthest
        for k in group[1:]:
            if k.bucket_start < reach.bucket_end:
                found.append(Overlap(k, reach, None))
            if k.bucket_end > reach.bucket_end:
                reach = k
    return found


def _reversal(sums: _Held) -> tuple[Any, ...]:
    """The entry after which a key sums to nothing, unknown costs and flags included."""
    rev, req, inp, cached, out, cost, base, unpriced, base_unpriced = sums
    neg = (None if v is None else -v for v in (cost, base))
    return (rev + 1, -req, -inp, -cached, -out, *neg, -unpriced, -base_unpriced)


def post_window(
    conn: Connection,
    observations: Mapping[UsageKey, UsageObservation],
    book: PriceBook,
    *,
    window: tuple[int, int],
    now: int,
) -> PostResult:
    """Post one poll window read whole at one bucket width, settling overlaps first.

    A held key of the same source at another width that the window covers (it starts
    inside it, and ends inside it or after `now`, where no usage exists yet) is
    superseded by a reversing entry. An observation overlapping anything else (another
    source's key, a key the window covers only in part) is skipped: counted in
    `skipped`, the usage left with the key that holds it.
    """
    start, end = window
    found = find_overlaps(conn, observations)
    skip = {
        o.observed
        for o in found
        if o.held.source != o.observed.source
        or o.held.bucket_start < start
        or (o.held.bucket_end > end and end <= now)
    }
    stale: dict[UsageKey, _Held] = {}
    for o in found:
        if o.observed not in skip and o.sums is not None:
            stale[o.held] = o.sums
    posting = UsagePosting(conn, book, now=now)
    posting.add({k: v for k, v in observations.items() if k not in skip} if skip else observations)
    rows = [
        (*key, *_reversal(sums), posting.version, posting.recorded_at)
        for key, sums in stale.items()
    ]
    _insert_rows(conn, rows)
    result = posting.finish()
    result.observed += len(skip)
    result.superseded += len(rows)
    result.skipped += len(skip)
    return result
