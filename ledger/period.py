"""UTC time: calendar months, budget periods, days, and the parsing of user-given times.

The one home of time arithmetic. Everything is UTC: a day is [00:00, 24:00) UTC, a
month is a UTC calendar month, a week is an ISO week starting on Monday. Ranges are
start inclusive, end exclusive; instants are unix seconds.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

SECONDS_PER_DAY = 86_400
PERIOD_KINDS = ("monthly", "weekly", "daily")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """A month written YYYY-MM; anything else is a ValueError naming the value."""
        match = _MONTH.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{text!r} is not a month (YYYY-MM, e.g. 2026-10)")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def current(cls, now: int | None = None) -> Month:
        """The UTC month containing `now` (default: this moment)."""
        moment = utc_date(int(time.time()) if now is None else now)
        return cls(moment.year, moment.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def start(self) -> int:
        return day_start(self.first_day)

    @property
    def end(self) -> int:
        """The first second of the next month (exclusive)."""
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def days(self) -> list[date]:
        """Every UTC calendar day of the month."""
        count = (self.end - self.start) // SECONDS_PER_DAY
        return [self.first_day + timedelta(days=i) for i in range(count)]

    def period(self) -> Period:
        return period_containing("monthly", self.first_day)


@dataclass(frozen=True)
class Period:
    """A budget's UTC calendar period: [start, end) in days, with its label."""

    kind: str  # monthly | weekly | daily
    start: date
    end: date  # exclusive

    @property
    def label(self) -> str:
        if self.kind == "monthly":
            return f"{self.start.year:04d}-{self.start.month:02d}"
        if self.kind == "weekly":
            year, week, _ = self.start.isocalendar()
            return f"{year:04d}-W{week:02d}"
        return self.start.isoformat()

    @property
    def start_ts(self) -> int:
        return day_start(self.start)

    @property
    def end_ts(self) -> int:
        return day_start(self.end)

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def period_containing(kind: str, on: date) -> Period:
    """The monthly, weekly (ISO, Monday start) or daily UTC period that contains `on`."""
    if kind == "monthly":
        start = on.replace(day=1)
        end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        return Period(kind, start, end)
    if kind == "weekly":
        start = on - timedelta(days=on.weekday())
        return Period(kind, start, start + timedelta(days=7))
    if kind == "daily":
        return Period(kind, on, on + timedelta(days=1))
    raise ValueError(f"unknown period {kind!r}")


def parse_month(text: str) -> Period:
    """A YYYY-MM month label as a monthly period; ValueError when it is not one."""
    return Month.parse(text).period()


# --- days and instants ---------------------------------------------------------------


def day_start(day: date) -> int:
    """The unix second at which a UTC day begins."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def day_of(day_number: int) -> date:
    """The UTC date of a day number (unix seconds // 86400)."""
    return date(1970, 1, 1) + timedelta(days=day_number)


def utc_date(ts: int) -> date:
    """The UTC date holding unix second `ts`."""
    return datetime.fromtimestamp(ts, UTC).date()


def floor_to(ts: int, width: int) -> int:
    """`ts` rounded down to a multiple of `width` seconds (UTC-aligned buckets)."""
    return ts - ts % width


def iso_utc(ts: int) -> str:
    """A unix time as ISO-8601 UTC with a Z, as FOCUS and most tools expect."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now(now: datetime | int | None = None) -> datetime:
    """`now` as an aware UTC datetime (default: the clock); naive datetimes are refused."""
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, int):
        return datetime.fromtimestamp(now, UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime: ftledger works in UTC, pass an aware datetime")
    return now.astimezone(UTC)


# --- what people type ----------------------------------------------------------------


def parse_day(text: str) -> date:
    """A UTC day written YYYY-MM-DD; ValueError naming the value otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_instant(text: str) -> int:
    """Unix seconds, or an ISO-8601 time (UTC when it names no offset), as unix seconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (ISO 8601 or unix seconds)") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())
