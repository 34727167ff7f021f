"""The NEM12 record model: one `NamedTuple` per record type (100, 200, 300, 400, 500, 900), and the field rules.

Field meanings follow the AEMO "Meter Data File Format Specification NEM12 & NEM13" (MDFF v2.6). The reader
in `nem12` builds these tuples for every record except the bulk of a 300 record, whose interval values it
converts a batch at a time; `nem12.iter_records` yields all of them, 300s included, for inspection and tests.

Normalizations applied here, because real files need them:
- units are matched case-insensitively and written in their Appendix B spelling (`KWH` -> `kWh`,
  `VARH` -> `VArh`);
- a purely numeric RegisterID is zero-padded to three digits (`1` -> `001`), undoing what Excel does to it;
- QualityMethod `E52` splits into quality `E` and method `52`; `A` and `V` carry no method.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import NamedTuple

INTERVALS_PER_LENGTH = {5: 288, 15: 96, 30: 48}
QUALITY_FLAGS = frozenset("AEFSVN")
# Flags a single interval may end up with; `V` only says "see the 400 records".
INTERVAL_QUALITY_FLAGS = ("A", "E", "F", "S", "N")
ACTUAL_QUALITY = "A"
ESTIMATED_OR_SUBSTITUTED_QUALITY = ("E", "F", "S")

UNITS = ("MWh kWh Wh MVArh kVArh VArh MVAr kVAr VAr MW kW W MVAh kVAh VAh MVA kVA VA kV V kA A pf").split()
_UNIT_BY_LOWER = {unit.lower(): unit for unit in UNITS}
ENERGY_UNITS = tuple(unit for unit in UNITS if unit.endswith("h"))

_QUALITY_METHOD = re.compile(r"([AEFSVN])(\d{2})?")
_NMI = re.compile(r"[A-Za-z0-9]{1,11}")


class HeaderRecord(NamedTuple):
    """100: `RecordIndicator,VersionHeader,DateTime,FromParticipant,ToParticipant`."""

    line: int
    version: str
    created_at: datetime | None
    from_participant: str
    to_participant: str


class NmiDataDetails(NamedTuple):
    """200: one channel (NMI + suffix) and the shape of the 300 records that follow it."""

    line: int
    nmi: str
    nmi_configuration: str
    register_id: str | None
    nmi_suffix: str
    mdm_data_stream_identifier: str
    meter_serial_number: str
    uom: str | None
    interval_length_minutes: int
    next_scheduled_read_date: date | None

    @property
    def intervals_per_day(self) -> int:
        return INTERVALS_PER_LENGTH[self.interval_length_minutes]


class IntervalData(NamedTuple):
    """300: one day of interval values of the current 200 channel, with the day's quality and reason."""

    line: int
    interval_date: date
    values: tuple[float, ...]
    quality: str
    method: int | None
    reason_code: int | None
    reason_description: str
    update_datetime: datetime | None
    msats_load_datetime: datetime | None


class IntervalEvent(NamedTuple):
    """400: quality, method and reason for intervals `start_interval..end_interval` (1-based, inclusive)."""

    line: int
    start_interval: int
    end_interval: int
    quality: str
    method: int | None
    reason_code: int | None
    reason_description: str


class B2BDetails(NamedTuple):
    """500: the B2B transaction behind the reads (kept in the model, not stored in a table)."""

    line: int
    trans_code: str
    ret_service_order: str
    read_datetime: datetime | None
    index_read: str


class EndOfData(NamedTuple):
    """900: end of the file."""

    line: int


NemRecord = HeaderRecord | NmiDataDetails | IntervalData | IntervalEvent | B2BDetails | EndOfData


class FieldError(ValueError):
    """A field breaks the format; `nem12` adds file, line and record and raises `Nem12Error`."""


def normalize_uom(text: str) -> str | None:
    """The Appendix B spelling of a unit, matched case-insensitively; None for an empty field."""
    text = text.strip()
    if not text:
        return None
    unit = _UNIT_BY_LOWER.get(text.lower())
    if unit is None:
        raise FieldError(f"unknown unit of measure {text!r} (expected one of {', '.join(UNITS)})")
    return unit


def normalize_register_id(text: str) -> str | None:
    """`1` -> `001` (Excel drops the zeros); other RegisterIDs unchanged; None for an empty field."""
    text = text.strip()
    if not text:
        return None
    return text.zfill(3) if text.isdigit() else text


def parse_nmi(text: str) -> str:
    """An NMI: 1-11 ASCII letters and digits (10 in practice, 11 with the checksum digit)."""
    nmi = text.strip()
    if not _NMI.fullmatch(nmi):
        raise FieldError("NMI is empty or not alphanumeric (1-11 letters and digits)")
    return nmi


def parse_quality_method(text: str) -> tuple[str, int | None]:
    """`A` -> (`A`, None); `E52` -> (`E`, 52). Raises for anything else."""
    match = _QUALITY_METHOD.fullmatch(text.strip())
    if match is None:
        raise FieldError(
            f"bad QualityMethod {text.strip()!r} (expected A, V, or E/F/S/N with a 2-digit method)"
        )
    method = match.group(2)
    return match.group(1), int(method) if method else None


def parse_reason_code(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 3:
        raise FieldError(f"bad ReasonCode {text!r} (expected a number 0-999)")
    return int(text)


def parse_interval_length(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) not in INTERVALS_PER_LENGTH:
        raise FieldError(f"bad IntervalLength {text!r} (expected 5, 15 or 30 minutes)")
    return int(text)


def parse_date8(text: str, field: str) -> date:
    """`CCYYMMDD` -> date; raises with the field name on anything else (Excel leaves some empty)."""
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        raise FieldError(f"bad {field} {text!r} (expected CCYYMMDD)")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise FieldError(f"bad {field} {text!r} (no such date)") from None


def parse_optional_date8(text: str, field: str) -> date | None:
    return parse_date8(text, field) if text.strip() else None


def parse_optional_datetime(text: str, field: str) -> datetime | None:
    """`CCYYMMDDhhmm` or `CCYYMMDDhhmmss` (naive NEM time) or empty."""
    text = text.strip()
    if not text:
        return None
    if len(text) not in (12, 14) or not text.isdigit():
        raise FieldError(f"bad {field} {text!r} (expected CCYYMMDDhhmm[ss])")
    try:
        return datetime(
            int(text[:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14]) if len(text) == 14 else 0,
        )
    except ValueError:
        raise FieldError(f"bad {field} {text!r} (no such date or time)") from None
