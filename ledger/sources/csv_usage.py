"""Reading usage from a CSV file whose columns are named as the Usage API's result fields.

The file is read as a stream of batches, so memory does not grow with it. Every bad line
is collected (with its line number and reason) so a user fixes the file in one pass; the
caller decides whether bad lines reject the whole file.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
from collections.abc import Callable, Collection, Generator, Iterator
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import TextIO

from ledger.domain import UsageKey, UsageObservation
from ledger.errors import InputError, Problem
from ledger.money import pico_display

REQUIRED = ("start_time", "end_time", "model", "input_tokens", "output_tokens")
OPTIONAL = (
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
    "num_model_requests",
    "input_cached_tokens",
)
_TRUE = {"true", "1", "yes", "t"}
# The ledger's column widths and BIGINT: PostgreSQL refuses more, SQLite would not.
MAX_LENGTH = {"model": 255, "project_id": 128, "api_key_id": 128, "user_id": 128}
MAX_LENGTH["service_tier"] = 32
MAX_INTEGER = 2**63 - 1
_FALSE = {"false", "0", "no", "f", ""}


Price = Callable[[UsageObservation], tuple[int | None, int | None]]


class _BadValue(ValueError):
    pass


class Unordered(Exception):
    """A row of a bucket the bounded key window already forgot: read again with spilling."""


# Keys remembered in memory before the earliest buckets are forgotten (or spilled).
SEEN_WINDOW = 100_000


class SeenKeys:
    """Every key accepted so far from one file, with its counts: exact, in bounded memory.

    Keys are kept in memory grouped by bucket start. Past `window` keys the earliest
    buckets are forgotten; a file in time order (as the Usage API and its exports are)
    never mentions them again. If a later row does, `check` raises Unordered when not
    `spill`; with `spill`, forgotten keys go to a private SQLite scratch file instead
    and are looked up there, so any order is exact, only slower.
    """

    def __init__(self, *, window: int = SEEN_WINDOW, spill: bool = False):
        self._window = window
        self._spill = spill
        self._groups: dict[int, dict[UsageKey, UsageObservation]] = {}
        self._size = 0
        self._forgot_upto: int | None = None  # the latest bucket start forgotten
        self._db: sqlite3.Connection | None = None

    def check(self, obs: UsageObservation) -> bool | None:
        """None for a new key (now remembered), True for an identical repeat, False for a
        repeat with other counts."""
        key = obs.key
        start = key.bucket_start
        group = self._groups.get(start)
        if group is not None:
            seen = group.get(key)
            if seen is not None:
                return seen.same_counts(obs)
        if self._forgot_upto is not None and start <= self._forgot_upto:
            if self._db is None:
                raise Unordered(f"bucket {start} appears again after it was forgotten")
            found = self._db.execute(
                "SELECT requests, input, cached, output FROM seen WHERE key = ?", (repr(key),)
            ).fetchone()
            if found is not None:
                return tuple(found) == obs[1:]
        if group is None:
            group = self._groups[start] = {}
        group[key] = obs
        self._size += 1
        if self._size > self._window:
            self._forget()
        return None

    def _forget(self) -> None:
        """Forget the earliest buckets until half the window is free."""
        for start in sorted(self._groups):
            if self._size <= self._window // 2:
                break
            group = self._groups.pop(start)
            self._size -= len(group)
            self._forgot_upto = max(start, self._forgot_upto or start)
            if self._spill:
                self._scratch().executemany(
                    "INSERT INTO seen VALUES (?, ?, ?, ?, ?)",
                    ((repr(k), *o[1:]) for k, o in group.items()),
                )

    def _scratch(self) -> sqlite3.Connection:
        if self._db is None:
            # "": a private temporary database on disk, deleted when closed.
            self._db = sqlite3.connect("", isolation_level=None)
            self._db.execute("PRAGMA cache_size = -16384")
            self._db.execute(
                "CREATE TABLE seen (key TEXT PRIMARY KEY, requests INTEGER, input INTEGER, "
                "cached INTEGER, output INTEGER) WITHOUT ROWID"
            )
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class UsageCsvStream:
    """A usage CSV read in batches of observations whose keys never repeat across batches.

    Bad lines are collected in `problems` (with their line) and `rejected` as they are
    met; problems that stop reading (no header, a missing column, malformed CSV, a byte
    that is not UTF-8) raise InputError from `batches`.
    """

    def __init__(
        self,
        path: Path,
        *,
        source: str = "import",
        progress: Callable[[int], None] | None = None,
        seen: SeenKeys | None = None,
        price: Price | None = None,
        count_limit: int = MAX_INTEGER,
    ):
        self.path = path
        self.source = source
        # Counts above `count_limit` may cost more than an entry holds: those rows are
        # priced with `price` while parsing, so an overflow is refused with its line.
        self.price = price
        self.count_limit = count_limit
        self.progress = progress
        self.seen = seen if seen is not None else SeenKeys()
        self.problems: list[Problem] = []
        self.rejected: list[tuple[int, list[str], str]] = []  # line, row, reason
        self.header: list[str] = []
        self.rows = 0

    def batches(self, size: int) -> Generator[list[UsageObservation], None, None]:
        try:
            # utf-8-sig: a byte order mark (Excel's "CSV UTF-8") is not part of the header.
            handle = self.path.open("r", encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise InputError([Problem(str(self.path), f"cannot read: {exc.strerror}")]) from None
        with handle:
            try:
                yield from self._read(handle, size)
                return
            except UnicodeDecodeError:
                pass
            finally:
                self.seen.close()
        raise InputError([_bad_byte(self.path)])

    def _read(self, handle: TextIO, size: int) -> Iterator[list[UsageObservation]]:
        path, progress = self.path, self.progress
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError([Problem(str(path), "is empty (expected a header row)")]) from None
        except csv.Error as exc:
            raise InputError([Problem(f"{path}:1", f"malformed CSV: {exc}")]) from None
        self.header = header
        width = len(header)
        columns = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise InputError([Problem(f"{path}:1", f"missing column {c!r}") for c in missing])
        parse = _row_parser(columns, self.source, self.price, self.count_limit)
        check = self.seen.check
        batch: list[UsageObservation] = []
        ended = reader.line_num  # the line the previous row ended on
        rows = 0
        try:
            for row in reader:
                line, ended = ended + 1, reader.line_num  # a quoted field may span lines
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                rows += 1
                try:
                    obs = parse(row)
                except _BadValue as exc:
                    # The parser appended one empty cell; a short row is padded, so the
                    # rejected file's line and error stay under their own columns.
                    cells = row[:width] if len(row) > width else row + [""] * (width - len(row))
                    self._reject(line, cells, str(exc))
                    continue
                repeat = check(obs)
                if repeat is None:
                    batch.append(obs)
                    if len(batch) >= size:
                        self.rows = rows
                        if progress is not None:
                            progress(handle.buffer.tell())
                        yield batch
                        batch = []
                elif not repeat:
                    reason = "the same bucket and dimensions appear earlier with other counts"
                    self._reject(line, row, reason)
        except csv.Error as exc:
            raise InputError([Problem(f"{path}:{ended + 1}", f"malformed CSV: {exc}")]) from None
        self.rows = rows
        if batch:
            yield batch

    def _reject(self, line: int, row: list[str], reason: str) -> None:
        self.problems.append(Problem(f"{self.path}:{line}", reason))
        self.rejected.append((line, row, reason))


def _bad_byte(path: Path) -> Problem:
    """The first line of the file that is not UTF-8, and where in it."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1})"
                return Problem(f"{path}:{number}", reason)
    return Problem(str(path), "not UTF-8 text")


_FIELDS = (
    "start_time",
    "end_time",
    "model",
    "project_id",
    "api_key_id",
    "user_id",
    "batch",
    "service_tier",
    "num_model_requests",
    "input_tokens",
    "input_cached_tokens",
    "output_tokens",
)


def _row_parser(
    columns: dict[str, int], source: str, price: Price | None, count_limit: int
) -> Callable[[list[str]], UsageObservation]:
    """A parser for rows of this header: a fast path for clean rows, a careful one for errors.

    A missing optional column reads as the empty cell appended to every row. The fast
    path takes only ASCII digits (int() would also take "1_000", full-width and other
    Unicode digits), text without NUL, and counts up to `count_limit`.
    """
    width = len(columns)
    fields = itemgetter(*(columns.get(name, width) for name in _FIELDS))

    new = tuple.__new__  # UsageKey(...) without the Python-level __new__: a million calls

    def parse(row: list[str]) -> UsageObservation:
        if len(row) != width:  # more would be read as the missing optional columns
            raise _BadValue(f"has {len(row)} fields, the header has {width}")
        row.append("")
        start, end, model, project, key, user, batch, tier, req, inp, cached, out = fields(row)
        try:
            requests = int(req) if req else 0
            inputs = int(inp)
            cached_n = int(cached) if cached else 0
            outputs = int(out)
            begins = int(start)
            ends = int(end)
            is_batch = _BOOLS.get(batch)
            if is_batch is None:
                is_batch = _BOOLS[batch.strip().lower()]
        except (ValueError, KeyError):
            return _careful(fields(row), source, price, count_limit)
        model = model.strip()
        # Any negative value makes the bitwise OR negative; any value past 63 bits, too big.
        every = requests | inputs | cached_n | outputs | begins | ends
        digits = req + inp + cached + out + start + end
        text = model + project + key + user + tier
        if (
            every < 0
            or every > count_limit
            or not digits.isdigit()
            or not digits.isascii()
            or "\0" in text
            or cached_n > inputs
            or ends <= begins
            or not model
            or len(tier) > 32
            # Each within 128 characters when all of them are (as they almost always are).
            or (
                len(text) > 128
                and (len(model) > 128 or len(project) > 128 or len(key) > 128 or len(user) > 128)
            )
        ):
            return _careful(fields(row), source, price, count_limit)
        usage_key = (
            source,
            begins,
            ends,
            model,
            project.strip(),
            key.strip(),
            user.strip(),
            is_batch,
            tier.strip(),
        )
        return new(
            UsageObservation, (new(UsageKey, usage_key), requests, inputs, cached_n, outputs)
        )

    return parse


_BOOLS = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}


def _careful(
    cells: tuple[str, ...], source: str, price: Price | None, count_limit: int
) -> UsageObservation:
    """Parse one row cell by cell, raising _BadValue with the first problem found."""
    start_s, end_s, model, project, key, user, batch, tier, req_s, in_s, cached_s, out_s = (
        c.strip() for c in cells
    )
    start = _time(start_s, "start_time")
    end = _time(end_s, "end_time")
    if end <= start:
        raise _BadValue(f"end_time {end} is not after start_time {start}")
    if not model:
        raise _BadValue("model is empty")
    for name, value in zip(MAX_LENGTH, (model, project, key, user, tier), strict=True):
        if "\0" in value:
            raise _BadValue(f"{name} contains a NUL byte")
        if len(value) > MAX_LENGTH[name]:
            raise _BadValue(f"{name} is longer than {MAX_LENGTH[name]} characters")
    inp = _count(in_s, "input_tokens")
    cached = _count(cached_s, "input_cached_tokens")
    out = _count(out_s, "output_tokens")
    requests = _count(req_s, "num_model_requests")
    if cached > inp:
        raise _BadValue(f"input_cached_tokens {cached} exceeds input_tokens {inp}")
    usage_key = UsageKey(source, start, end, model, project, key, user, _bool(batch), tier)
    obs = UsageObservation(usage_key, requests, inp, cached, out)
    if price is not None and max(inp, out) > count_limit:
        _check_cost(obs, price)
    return obs


def _check_cost(obs: UsageObservation, price: Price) -> None:
    """Refuse a row whose cost (or base-model cost) does not fit one ledger entry."""
    costs = [c for c in price(obs) if c is not None]
    if costs and max(costs) > MAX_INTEGER:
        column = "input_tokens" if obs.input_tokens >= obs.output_tokens else "output_tokens"
        count = max(obs.input_tokens, obs.output_tokens)
        raise _BadValue(
            f"{column} {count} costs ${pico_display(max(costs), 2)}, more than one "
            f"ledger entry holds ($9.2M)"
        )


def _count(text: str, name: str) -> int:
    if text == "":
        return 0
    # Refuses signs, decimals, exponents, spaces, "1_000", "²" and full-width digits.
    if not (text.isdigit() and text.isascii()):
        raise _BadValue(f"{name} {text[:40]!r} is not a non-negative integer")
    if int(text) > MAX_INTEGER:
        raise _BadValue(f"{name} {text[:40]!r} is too large")
    return int(text)


def _time(text: str, name: str) -> int:
    if not text.isascii():
        raise _BadValue(f"{name} {text[:40]!r} is neither unix seconds nor an ISO-8601 time")
    if text.isdigit():
        if int(text) > MAX_INTEGER:
            raise _BadValue(f"{name} {text[:40]!r} is too large")
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _BadValue(
            f"{name} {text[:40]!r} is neither unix seconds nor an ISO-8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # documented: times without an offset are UTC
    return int(moment.timestamp())


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _BadValue(f"batch {text[:20]!r} is not true or false")


def write_rejected(
    path: Path, header: list[str], rejected: list[tuple[int, list[str], str]]
) -> Path:
    """Write rejected rows beside the input, with their line number and reason."""
    target = path.with_name(path.stem + ".rejected.csv")
    try:
        with target.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*header, "line", "error"])
            for line, row, reason in rejected:
                writer.writerow([*row, line, reason])
    except OSError as exc:  # a full disk, a read-only folder: the import is not committed
        raise InputError([Problem(str(target), f"cannot write: {exc.strerror}")]) from None
    return target


def key_lines(path: Path, keys: Collection[UsageKey], source: str) -> dict[UsageKey, int]:
    """The line of the first row of each key in `keys` (read again: an error path only)."""
    found: dict[UsageKey, int] = {}
    if not keys:
        return found
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        columns = {name.strip(): i for i, name in enumerate(header)}
        parse = _row_parser(columns, source, None, sys.maxsize)  # rows already checked
        ended = reader.line_num
        for row in reader:
            line, ended = ended + 1, reader.line_num
            try:
                key = parse(row).key
            except _BadValue:
                continue
            if key in keys and key not in found:
                found[key] = line
                if len(found) == len(keys):
                    break
    return found
