"""Local-day arithmetic for Energy-Charts data: windows, interval counts, chunks of days.

Energy-Charts answers a day query (`start=2025-03-30&end=2025-03-30`) with the local day of the country or
bidding zone, and stamps each value with the UNIX second of its interval *start*. A German local day therefore
has 96 quarter hours, 92 on the spring DST day and 100 on the autumn DST day (24/23/25 hours). Everything
that needs "the local day" (partition windows, expected interval counts, splitting a multi-day response into
partitions) asks this module, so the rules live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MARKET_TIMEZONE_NAME = "Europe/Berlin"
MARKET_TIMEZONE = ZoneInfo(MARKET_TIMEZONE_NAME)

# Countries and bidding zones whose local day is not Europe/Berlin's. Everything else Energy-Charts serves
# (de, at, fr, DE-LU, NL, DK1, ...) runs on Central European Time.
_NON_CET_TIMEZONES: dict[str, str] = {
    "uk": "Europe/London",
    "ie": "Europe/Dublin",
    "nie": "Europe/London",
    "pt": "Europe/Lisbon",
    "pt-zone": "Europe/Lisbon",
    "fi": "Europe/Helsinki",
    "ee": "Europe/Tallinn",
    "lt": "Europe/Vilnius",
    "lv": "Europe/Riga",
    "gr": "Europe/Athens",
    "bg": "Europe/Sofia",
    "ro": "Europe/Bucharest",
    "cy": "Asia/Nicosia",
    "ua": "Europe/Kyiv",
    "md": "Europe/Chisinau",
    "tr": "Europe/Istanbul",
    "by": "Europe/Minsk",
    "ru": "Europe/Moscow",
    "ge": "Asia/Tbilisi",
    "am": "Asia/Yerevan",
    "az": "Asia/Baku",
}


def timezone_for(area: str) -> ZoneInfo:
    """The timezone of the local day Energy-Charts uses for a country code or bidding zone.

    >>> timezone_for("de").key, timezone_for("DE-LU").key, timezone_for("pt").key
    ('Europe/Berlin', 'Europe/Berlin', 'Europe/Lisbon')
    """
    name = _NON_CET_TIMEZONES.get(area.strip().lower())
    return ZoneInfo(name) if name else MARKET_TIMEZONE


@dataclass(frozen=True)
class LocalDayWindow:
    """The half-open UTC interval `[start_utc, end_utc)` covered by one or more consecutive local days."""

    first_day: date
    last_day: date
    start_utc: datetime
    end_utc: datetime
    timezone_name: str

    @property
    def minutes(self) -> int:
        """Length of the window in minutes (1440 for a normal day, 1380 / 1500 on DST days)."""
        return int((self.end_utc - self.start_utc).total_seconds() // 60)

    @property
    def start_unix(self) -> int:
        return int(self.start_utc.timestamp())

    @property
    def end_unix(self) -> int:
        return int(self.end_utc.timestamp())

    @property
    def label(self) -> str:
        """How errors and metadata name the window: `2025-03-30` or `2025-09-30..2025-10-01`."""
        return partition_label(self.first_day, self.last_day)

    def contains_unix(self, unix_seconds: int) -> bool:
        return self.start_unix <= unix_seconds < self.end_unix

    def describe(self) -> str:
        tz = ZoneInfo(self.timezone_name)
        start = self.start_utc.astimezone(tz).isoformat(timespec="minutes")
        end = self.end_utc.astimezone(tz).isoformat(timespec="minutes")
        return f"[{start}, {end}) {self.timezone_name}"


def partition_label(first_day: date, last_day: date) -> str:
    """`2025-03-30` for one day, `2025-09-30..2025-10-01` for a range."""
    if first_day == last_day:
        return first_day.isoformat()
    return f"{first_day.isoformat()}..{last_day.isoformat()}"


def local_midnight_utc(day: date, tz: ZoneInfo = MARKET_TIMEZONE) -> datetime:
    """The UTC instant of local midnight at the start of `day` (midnight always exists in European zones)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)


def local_days_window(first_day: date, last_day: date, tz: ZoneInfo = MARKET_TIMEZONE) -> LocalDayWindow:
    """The UTC window covering the local days `first_day` to `last_day`, both inclusive."""
    if last_day < first_day:
        raise ValueError(f"last_day {last_day} is before first_day {first_day}")
    return LocalDayWindow(
        first_day=first_day,
        last_day=last_day,
        start_utc=local_midnight_utc(first_day, tz),
        end_utc=local_midnight_utc(last_day + timedelta(days=1), tz),
        timezone_name=tz.key,
    )


def local_day_window(day: date, tz: ZoneInfo = MARKET_TIMEZONE) -> LocalDayWindow:
    """The UTC window of one local day."""
    return local_days_window(day, day, tz)


def local_day_minutes(day: date, tz: ZoneInfo = MARKET_TIMEZONE) -> int:
    """Minutes in the local day: 1440, or 1380 / 1500 on the spring / autumn DST day."""
    return local_day_window(day, tz).minutes


def expected_intervals(day: date, interval_minutes: int, tz: ZoneInfo = MARKET_TIMEZONE) -> int:
    """How many intervals of `interval_minutes` the local day holds.

    >>> [expected_intervals(date(2025, 3, 30), 15), expected_intervals(date(2025, 10, 26), 15)]
    [92, 100]
    >>> [expected_intervals(date(2025, 3, 30), 60), expected_intervals(date(2025, 10, 26), 60)]
    [23, 25]
    """
    if interval_minutes <= 0:
        raise ValueError(f"interval_minutes must be positive, got {interval_minutes}")
    minutes = local_day_minutes(day, tz)
    if minutes % interval_minutes:
        raise ValueError(
            f"{day} has {minutes} minutes, not a whole number of {interval_minutes}-minute intervals"
        )
    return minutes // interval_minutes


def local_day_of(instant: datetime, tz: ZoneInfo = MARKET_TIMEZONE) -> date:
    """The local calendar day an aware instant falls on."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant!r} is naive; pass an aware datetime (UTC)")
    return instant.astimezone(tz).date()


def days_between(first_day: date, last_day: date) -> list[date]:
    """Every day from `first_day` to `last_day`, both inclusive."""
    return [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]


def contiguous_chunks(days: Iterable[date], max_days: int) -> list[tuple[date, date]]:
    """Group days into runs of consecutive days, each at most `max_days` long: one API request per run.

    >>> contiguous_chunks([date(2025, 9, 30), date(2025, 10, 1), date(2025, 10, 26)], max_days=31)
    [(datetime.date(2025, 9, 30), datetime.date(2025, 10, 1)), (datetime.date(2025, 10, 26), datetime.date(2025, 10, 26))]
    """
    if max_days < 1:
        raise ValueError(f"max_days must be at least 1, got {max_days}")
    chunks: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if chunks:
            first, last = chunks[-1]
            if day == last + timedelta(days=1) and (day - first).days < max_days:
                chunks[-1] = (first, day)
                continue
        chunks.append((day, day))
    return chunks
