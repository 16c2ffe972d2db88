"""UTC calendar months as unix-second ranges, start inclusive and end exclusive."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

SECONDS_PER_DAY = 86_400
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
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
        moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def of(cls, ts: int) -> Month:
        return cls.current(ts)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def start(self) -> int:
        return _unix(self.first_day)

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
        return [date.fromordinal(self.first_day.toordinal() + i) for i in range(count)]


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def day_of(day_number: int) -> date:
    """The UTC date of a day number (unix seconds // 86400)."""
    return date.fromordinal(date(1970, 1, 1).toordinal() + day_number)


def day_start(day: date) -> int:
    return _unix(day)


def iso_utc(ts: int) -> str:
    """A unix time as ISO-8601 UTC with a Z, as FOCUS and most tools expect."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
