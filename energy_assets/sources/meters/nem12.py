"""Streaming NEM12 reader: a file, zip or stream in, Arrow record batches of interval readings out.

One output row per interval (not per day), with the columns of `tables.METER_READINGS`:
`nmi, nmi_suffix, register_id, uom, interval_start, interval_end, value, quality, method, reason, source_file`.
Interval *i* (1-based) of a 300 record dated D with IntervalLength L ends at `D 00:00 + i*L` in NEM time
(UTC+10, no daylight saving) and is stored as a UTC timestamp; interval 1 of a 30-minute day ends at 00:30.
A 400 record overrides quality, method and reason for its range of intervals of the preceding 300.

Memory stays bounded whatever the file size: the file is read in 1 MiB blocks (a block of nothing but empty
lines is counted, not split), a line longer than `ENERGY_ASSETS_MAX_LINE_BYTES` is refused, and a batch is
emitted once it holds about `batch_rows` intervals (never separating a 300 record from its 400s). Per 300 record
only its raw bytes are kept; at the end of a batch the records go to Arrow as one array, are split into
fields and cast to float64 in C++, and times are computed with numpy, so no Python object is made per
value. Distinct dates and quality flags (a handful per batch) go through the exact field parsers. When any
column-wise check fails, the batch's records are re-read one by one with `parse_interval_data`, which names
the line and field at fault: the fast and the exact path share one set of rules.

A malformed file raises `Nem12Error` (file, line, record, reason) and `Nem13NotSupportedError` for NEM13.
Batches already yielded must then be discarded by the caller: a file is published whole or not at all.
What is accepted, because real files do it: CRLF or LF, no newline after 900, a UTF-8 byte-order mark,
blank lines and Excel's trailing commas, `.144`, any unit case, 5/15/30-minute channels mixed in one file,
a 500 after every 300, the same channel in several 200 blocks in any date order, empty RegisterID or
NMISuffix, 200 records without NextScheduledReadDate, alphanumeric NMIs, a zip holding one file.
What is refused: a symbolic link, fifo or folder (unread), a file or zip over the limits of
`energy_assets.archive_limits` (a zip bomb is refused from the zip directory, before inflating it), a file
without interval data (no 300 record), no 100 header, a second 100, a 300 whose value count does not match
its 200, bad dates, non-numeric or non-finite values, a `V` day whose 400 records leave intervals uncovered,
a missing or repeated 900 or records after it, lines that do not start with a record indicator (hard-wrapped
or glued records), a truncated or multi-file zip, NEM13. An error quotes a line of the file only once the 100 header
was recognised: the first line of something that is not NEM12 is never echoed.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.archive_limits import FileLimitError, FileLimits
from energy_assets.files import NotARegularFileError, open_regular_file
from energy_assets.sources.meters.errors import Nem12Error, Nem13NotSupportedError
from energy_assets.sources.meters.nem12_records import (
    B2BDetails,
    EndOfData,
    FieldError,
    HeaderRecord,
    IntervalData,
    IntervalEvent,
    NemRecord,
    NmiDataDetails,
    normalize_register_id,
    normalize_uom,
    parse_date8,
    parse_interval_length,
    parse_nmi,
    parse_optional_date8,
    parse_optional_datetime,
    parse_quality_method,
    parse_reason_code,
)
from energy_assets.sources.meters.tables import METER_READINGS

Source = str | os.PathLike[str] | IO[bytes] | IO[str]

DEFAULT_BATCH_ROWS = 262_144
NEM_UTC_OFFSET_US = 10 * 3600 * 1_000_000
_DAY_US = 86_400 * 1_000_000
_MINUTE_US = 60 * 1_000_000
_EPOCH = date(1970, 1, 1)
_ZIP_MAGIC = b"PK\x03\x04"
_BOM = b"\xef\xbb\xbf"
_BLOCK_BYTES = 1 << 20
_TIMESTAMP = METER_READINGS.column("interval_end").arrow_type
_INTERVAL_VALUE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_QUALITY_LIKE = re.compile(r"[AEFSVN](\d{2})?")
_NEM13_RECORDS = frozenset({"250", "550"})
_NEM13_MESSAGE = "NEM13 file (accumulation meter data, 250/550 records): not supported, this source reads NEM12 interval data"


# ------------------------------------------------------------------------------------------- opening
def source_name(source: Source) -> str:
    """The file name reported in errors and stored in `source_file`."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return Path(str(getattr(source, "name", "<stream>"))).name


class _Lines:
    """Binary lines of a NEM12 text, a zip holding one, or a text stream, within `limits`; container errors
    (and a link or fifo given as the path, a file over the limits) become Nem12Error."""

    def __init__(self, source: Source, name: str, stack: ExitStack, limits: FileLimits) -> None:
        self.name = name
        self.line_no = 0
        self.limits = limits
        try:
            self._stream = self._open(source, stack)
        except FileLimitError as exc:
            raise self._limit_error(exc) from exc
        except NotARegularFileError as exc:
            raise self._error(str(exc)) from None

    def _open(self, source: Source, stack: ExitStack) -> Iterable[bytes]:
        if isinstance(source, (str, os.PathLike)):
            binary: IO[bytes] = stack.enter_context(open_regular_file(source))
            self.limits.check_file_size(self.name, os.fstat(binary.fileno()).st_size)
        elif isinstance(source, io.TextIOBase):
            return (line.encode("utf-8") for line in source)  # lines with their newline: split again
        else:
            binary = source  # type: ignore[assignment]
        if binary.seekable():
            start = binary.tell()
            magic = binary.read(4)
            binary.seek(start)
            if magic == _ZIP_MAGIC:
                return self._open_zip(binary, stack)
        return self.limits.counted(binary, self.name, close_stream=False)

    def _open_zip(self, binary: IO[bytes], stack: ExitStack) -> Iterable[bytes]:
        try:
            self.limits.check_zip_entries(binary, self.name)
            archive = stack.enter_context(zipfile.ZipFile(binary))
            # macOS adds `__MACOSX/._name` resource forks next to the real file; they are not data.
            members = [
                info
                for info in archive.infolist()
                if not info.is_dir()
                and not info.filename.startswith("__MACOSX/")
                and not Path(info.filename).name.startswith("._")
            ]
            if len(members) != 1:
                raise self._error(f"zip archive holds {len(members)} files; expected exactly one NEM12 file")
            return stack.enter_context(self.limits.open_member(archive, self.name, members[0]))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise self._error(f"truncated or corrupt zip archive ({type(exc).__name__})") from None

    def _error(self, reason: str) -> Nem12Error:
        return Nem12Error(self.name, self.line_no, "", reason)

    def _limit_error(self, exc: FileLimitError) -> Nem12Error:
        reason = f"zip member {exc.member!r}: {exc.detail}" if exc.member else exc.detail
        return Nem12Error(self.name, exc.line or 0, "", reason)

    def __iter__(self) -> Iterator[bytes]:
        """Lines without their CR/LF, read in 1 MiB blocks (much cheaper than one read per line)."""
        read = getattr(self._stream, "read", None)
        blocks = iter(lambda: read(_BLOCK_BYTES), b"") if read is not None else iter(self._stream)
        longest = self.limits.max_line_bytes
        carry = b""
        first = True
        while True:
            try:
                block = next(blocks)
            except StopIteration:
                break
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise self._error(f"truncated or corrupt zip archive ({type(exc).__name__})") from None
            except FileLimitError as exc:
                raise self._limit_error(exc) from exc
            if first:
                block = block.removeprefix(_BOM)
                first = False
            if not carry and block[:1] in (b"\n", b"\r") and self._skip_empty_lines(block):
                carry = block[block.rfind(b"\n") + 1 :]
                continue
            lines = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = lines.pop()
            if len(carry) > longest or (lines and max(map(len, lines)) > longest):
                too_long = next((i for i, raw in enumerate(lines) if len(raw) > longest), len(lines))
                raise self._limit_error(self.limits.line_too_long(self.name, self.line_no + too_long + 1))
            for raw in lines:
                self.line_no += 1
                yield raw[:-1] if raw[-1:] == b"\r" else raw
        if carry:
            self.line_no += 1
            yield carry[:-1] if carry[-1:] == b"\r" else carry

    def _skip_empty_lines(self, block: bytes) -> bool:
        """Count the lines of a block holding nothing but empty LF or CRLF lines (True), without splitting it."""
        if block.strip(b"\r\n"):
            return False
        body = block[: block.rfind(b"\n") + 1]
        if body.count(b"\r") != body.count(b"\r\n"):
            return False  # a bare CR is not an empty line for the parser
        self.line_no += body.count(b"\n")
        return True


# ---------------------------------------------------------------------------- per-record parsing
def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError("record is not UTF-8 text") from None


def _field(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _no_extra_fields(fields: list[str], used: int, after: str) -> None:
    if any(field.strip() for field in fields[used:]):
        raise FieldError(f"unexpected non-empty fields after {after} (a record glued on, or a wrapped line?)")


def parse_header(fields: list[str], line: int) -> HeaderRecord:
    """100 `RecordIndicator,VersionHeader,DateTime,FromParticipant,ToParticipant`; NEM13 is refused."""
    version = _field(fields, 1).strip().upper()
    if version == "NEM13":
        raise FieldError(_NEM13_MESSAGE)
    if version != "NEM12":
        raise FieldError("bad VersionHeader in the 100 record (expected NEM12)")
    _no_extra_fields(fields, 5, "ToParticipant")
    return HeaderRecord(
        line,
        version,
        parse_optional_datetime(_field(fields, 2), "DateTime"),
        _field(fields, 3).strip(),
        _field(fields, 4).strip(),
    )


def parse_nmi_data_details(fields: list[str], line: int) -> NmiDataDetails:
    """200 `RecordIndicator,NMI,NMIConfiguration,RegisterID,NMISuffix,MDMDataStreamIdentifier,
    MeterSerialNumber,UOM,IntervalLength[,NextScheduledReadDate]`."""
    if len(fields) < 9:
        raise FieldError(
            f"200 record has {len(fields)} fields, needs at least 9 (truncated or hard-wrapped?)"
        )
    _no_extra_fields(fields, 10, "NextScheduledReadDate")
    return NmiDataDetails(
        line=line,
        nmi=parse_nmi(fields[1]),
        nmi_configuration=fields[2].strip(),
        register_id=normalize_register_id(fields[3]),
        nmi_suffix=fields[4].strip().upper(),
        mdm_data_stream_identifier=fields[5].strip(),
        meter_serial_number=fields[6].strip(),
        uom=normalize_uom(fields[7]),
        interval_length_minutes=parse_interval_length(fields[8]),
        next_scheduled_read_date=parse_optional_date8(_field(fields, 9), "NextScheduledReadDate"),
    )


def _quality_position(fields: list[str], details: NmiDataDetails) -> int:
    """Index of QualityMethod; raises when the value count does not match the 200's IntervalLength."""
    expected = details.intervals_per_day
    position = 2 + expected
    if position < len(fields) and _QUALITY_LIKE.fullmatch(fields[position].strip()):
        return position
    found = next((i for i in range(2, len(fields)) if _QUALITY_LIKE.fullmatch(fields[i].strip())), None)
    if found is None:
        raise FieldError(
            "300 record has no QualityMethod after its interval values (truncated or hard-wrapped record?)"
        )
    raise FieldError(
        f"300 record has {found - 2} interval values; IntervalLength {details.interval_length_minutes} of the"
        f" 200 record on line {details.line} needs {expected}"
    )


def parse_interval_value(text: str, interval: int) -> float:
    """One interval value: a plain decimal (`.144`, `12`, `3.5`); empty, text, NaN and infinity are refused."""
    if not _INTERVAL_VALUE.fullmatch(text):
        shown = "empty" if not text else f"not a number: {text.strip()[:20]!r}"
        raise FieldError(f"interval value {interval} is {shown}")
    value = float(text)
    if value == float("inf"):
        raise FieldError(f"interval value {interval} is out of range: {text[:20]!r}")
    return value


def parse_interval_data(fields: list[str], line: int, details: NmiDataDetails) -> IntervalData:
    """300 `RecordIndicator,IntervalDate,IntervalValue1..N,QualityMethod,ReasonCode,ReasonDescription,
    UpdateDateTime[,MSATSLoadDateTime]`, N = 1440 / IntervalLength of the current 200."""
    position = _quality_position(fields, details)
    interval_date = parse_date8(fields[1], "IntervalDate")
    values = tuple(parse_interval_value(text, i) for i, text in enumerate(fields[2:position], start=1))
    quality, method = parse_quality_method(fields[position])
    reason_code = parse_reason_code(_field(fields, position + 1))
    update = parse_optional_datetime(_field(fields, position + 3), "UpdateDateTime")
    msats = parse_optional_datetime(_field(fields, position + 4), "MSATSLoadDateTime")
    _no_extra_fields(fields, position + 5, "MSATSLoadDateTime")
    return IntervalData(
        line, interval_date, values, quality, method, reason_code, _field(fields, position + 2), update, msats
    )


def parse_interval_event(fields: list[str], line: int, details: NmiDataDetails) -> IntervalEvent:
    """400 `RecordIndicator,StartInterval,EndInterval,QualityMethod,ReasonCode,ReasonDescription`."""
    if len(fields) < 4:
        raise FieldError(
            f"400 record has {len(fields)} fields, needs at least 4 (truncated or hard-wrapped?)"
        )
    limit = details.intervals_per_day
    start_text, end_text = fields[1].strip(), fields[2].strip()
    if not (start_text.isdigit() and end_text.isdigit()):
        raise FieldError(f"bad StartInterval/EndInterval {start_text!r}/{end_text!r} (expected numbers)")
    start, end = int(start_text), int(end_text)
    if not 1 <= start <= end <= limit:
        raise FieldError(f"400 interval range {start}..{end} is not within 1..{limit} with start <= end")
    quality, method = parse_quality_method(fields[3])
    if quality == "V":
        raise FieldError("400 record has quality V (V is only allowed on a 300 record)")
    _no_extra_fields(fields, 6, "ReasonDescription")
    return IntervalEvent(
        line, start, end, quality, method, parse_reason_code(_field(fields, 4)), _field(fields, 5)
    )


def parse_b2b_details(fields: list[str], line: int) -> B2BDetails:
    """500 `RecordIndicator,TransCode,RetServiceOrder,ReadDateTime,IndexRead`."""
    _no_extra_fields(fields, 5, "IndexRead")
    return B2BDetails(
        line,
        _field(fields, 1).strip(),
        _field(fields, 2).strip(),
        parse_optional_datetime(_field(fields, 3), "ReadDateTime"),
        _field(fields, 4).strip(),
    )


# ------------------------------------------------------------------------------------------ reader
class Nem12Reader:
    """Reads one NEM12 file; `batches()` yields Arrow record batches, `records()` yields typed records.

    After a complete iteration `header`, `line_count`, `value_count` and `channels` describe the file.
    With `protect_nmi=True` every error it raises has NMIs replaced by `[NMI]`.
    """

    def __init__(
        self,
        source: Source,
        *,
        source_file: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        protect_nmi: bool = False,
        limits: FileLimits | None = None,
    ) -> None:
        self.source = source
        self.source_file = source_file or source_name(source)
        self.batch_rows = batch_rows
        self.protect_nmi = protect_nmi
        self.limits = FileLimits.from_env() if limits is None else limits
        self.header: HeaderRecord | None = None
        self.line_count = 0
        self.value_count = 0
        self.channels: set[tuple[str, str]] = set()
        self._nmis: set[str] = set()

    # -- errors
    def _error(
        self, line: int, raw: bytes | str, reason: str, cls: type[Nem12Error] = Nem12Error
    ) -> Nem12Error:
        record = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        if raw and record.split(",", 1)[0].strip() in _NEM13_RECORDS or reason == _NEM13_MESSAGE:
            cls = Nem13NotSupportedError
        if self.header is None:
            record = ""  # not recognised as NEM12: none of its content is echoed
        if record.startswith("200,"):
            self._nmis.add(record.split(",")[1].strip())
        error = cls(self.source_file, line, record, reason)
        return error.redacted(self._nmis) if self.protect_nmi else error

    def _check_variable_day(self, variable_day: tuple[int, bytes, bytearray]) -> None:
        line_no, raw, covered = variable_day
        if 0 in covered:
            raise self._error(line_no, raw, _uncovered_message(covered.index(0) + 1))

    # -- typed records (slow path, every record)
    def records(self) -> Iterator[NemRecord]:
        """Every record as a typed tuple, 300s included; raises `Nem12Error` like `batches()`."""
        yield from self._run(on_300=None)

    # -- batches (fast path)
    def batches(self) -> Iterator[pa.RecordBatch]:
        """Interval readings in batches of about `batch_rows` rows with the `METER_READINGS` schema."""
        for item in self._run(on_300=_BatchBuilder(self)):
            if isinstance(item, pa.RecordBatch):
                yield item

    def _run(self, on_300: _BatchBuilder | None) -> Iterator[Any]:
        with ExitStack() as stack:
            try:
                lines = _Lines(self.source, self.source_file, stack, self.limits)
            except OSError as exc:
                raise Nem12Error(self.source_file, 0, "", f"cannot read file ({exc.strerror})") from None
            yield from self._parse_lines(lines, on_300)

    def _parse_lines(self, lines: _Lines, batch: _BatchBuilder | None) -> Iterator[Any]:
        try:
            yield from self._parse_lines_in_order(lines, batch)
        except Nem12Error:
            # 300 records are checked when their batch is converted, i.e. after later lines were read: convert
            # what is pending first, so an earlier bad 300 record is the error reported.
            if batch is not None and batch.pending:
                batch.flush()
            raise

    def _parse_lines_in_order(self, lines: _Lines, batch: _BatchBuilder | None) -> Iterator[Any]:
        details: NmiDataDetails | None = None
        variable_day: tuple[int, bytes, bytearray] | None = None  # records mode: a V 300 awaiting its 400s
        last_300_seen = False
        any_300 = False
        end_line = 0
        last_line, last_raw = 0, b""
        for raw in lines:
            line_no = lines.line_no
            if batch is not None and details is not None and not end_line:
                # Fast paths for the bulk of a file: records of the current channel checked without building
                # tuples; anything unusual falls through to the exact parser below, which names the fault.
                indicator_bytes = raw[:4]
                if indicator_bytes == b"300,":
                    if batch.pending >= self.batch_rows:
                        yield batch.flush()
                    batch.add_300(raw, line_no)
                    last_300_seen = any_300 = True
                    last_line, last_raw = line_no, raw
                    continue
                if indicator_bytes == b"500," and _plain_b2b(raw):
                    last_line, last_raw = line_no, raw
                    continue
                if indicator_bytes == b"400," and last_300_seen and batch.add_400_fast(raw):
                    last_line, last_raw = line_no, raw
                    continue
            if not raw.strip(b", \t"):
                continue
            last_line, last_raw = line_no, raw
            try:
                fields = _decode(raw).split(",")
                indicator = fields[0].strip()
                if variable_day is not None and indicator != "400":
                    self._check_variable_day(variable_day)
                    variable_day = None
                if end_line:
                    raise FieldError(
                        f"record after the 900 end-of-data record on line {end_line} (concatenated files?)"
                    )
                if self.header is None:
                    if indicator != "100":
                        if indicator in _NEM13_RECORDS:
                            raise FieldError(_NEM13_MESSAGE)
                        raise FieldError("file does not start with a 100 header record (not a NEM12 file?)")
                    self.header = parse_header(fields, line_no)
                    yield self.header
                elif indicator == "100":
                    raise FieldError("second 100 header record (concatenated files?)")
                elif indicator == "200":
                    self._nmis.add(fields[1].strip())
                    details = parse_nmi_data_details(fields, line_no)
                    self.channels.add((details.nmi, details.nmi_suffix))
                    last_300_seen = False
                    if batch is not None:
                        if batch.pending >= self.batch_rows:
                            yield batch.flush()
                        batch.set_channel(details)
                    yield details
                elif indicator == "300":
                    if details is None:
                        raise FieldError("300 record before any 200 record")
                    record = parse_interval_data(fields, line_no, details)
                    self.value_count += len(record.values)
                    if record.quality == "V":
                        variable_day = (line_no, raw, bytearray(len(record.values)))
                    last_300_seen = any_300 = True
                    if batch is not None:  # an oddly written 300 (" 300,..."): same conversion as the rest
                        batch.add_300(raw, line_no)
                    yield record
                elif indicator == "400":
                    if details is None or not last_300_seen:
                        raise FieldError("400 record without a preceding 300 record")
                    event = parse_interval_event(fields, line_no, details)
                    if batch is not None:
                        batch.add_400(event)
                    if variable_day is not None:
                        variable_day[2][event.start_interval - 1 : event.end_interval] = b"\x01" * (
                            event.end_interval - event.start_interval + 1
                        )
                    yield event
                elif indicator == "500":
                    if details is None:
                        raise FieldError("500 record before any 200 record")
                    yield parse_b2b_details(fields, line_no)
                elif indicator == "900":
                    _no_extra_fields(fields, 1, "900")
                    end_line = line_no
                    yield EndOfData(line_no)
                elif indicator in _NEM13_RECORDS:
                    raise FieldError(_NEM13_MESSAGE)
                else:
                    raise FieldError(
                        "line does not start with a NEM12 record indicator (100, 200, 300, 400, 500, 900):"
                        " a hard-wrapped or damaged record?"
                    )
            except FieldError as exc:
                raise self._error(line_no, raw, str(exc)) from None
        self.line_count = lines.line_no
        if batch is not None and batch.pending:
            yield batch.flush()
        if variable_day is not None:
            self._check_variable_day(variable_day)
        if self.header is None:
            raise self._error(0, b"", "file is empty")
        if not end_line:
            raise self._error(
                last_line, last_raw, "file ends without a 900 end-of-data record (truncated file?)"
            )
        if not any_300:
            raise self._error(
                end_line,
                b"",
                "file holds no interval data (no 300 record between its 100 and 900): nothing to load",
            )


def _is_datetime_field(field: bytes) -> bool:
    return not field or (len(field) in (12, 14) and field.isdigit())


def _plain_b2b(raw: bytes) -> bool:
    """A 500 record that needs no closer look: at most 5 fields (or empty ones after) and a plain ReadDateTime."""
    fields = raw.split(b",")
    if len(fields) > 5 and any(field.strip() for field in fields[5:]):
        return False
    return len(fields) < 4 or _is_datetime_field(fields[3])


def _uncovered_message(interval: int) -> str:
    return f"300 record has quality V but its 400 records leave interval {interval} without a quality"


class _BatchBuilder:
    """Collects the 300 records of one batch and converts them together.

    Per line only the raw bytes, line number and channel are kept; at `flush` the lines go to Arrow as one
    array, are split into fields in C++, and values, dates, flags and trailing fields are checked and
    converted column-wise (distinct dates and flags, a handful per batch, through small Python caches).
    Any check that fails sends the batch through the exact per-record parser to name the first bad line.
    """

    def __init__(self, reader: Nem12Reader) -> None:
        self.reader = reader
        self.pending = 0
        self._day_us: dict[str, int] = {}
        self._raw_qualities: dict[tuple[bytes, bytes], int] = {}
        self._text_qualities: dict[str, int] = {}
        self._quality_index: dict[tuple[str, int | None, int | None], int] = {}
        self._quality_values: list[tuple[str, int | None, int | None]] = []
        self._channel: NmiDataDetails | None = None
        self._reset()

    def _reset(self) -> None:
        self.pending = 0
        self._channels: list[NmiDataDetails] = [] if self._channel is None else [self._channel]
        self._raw: list[bytes] = []
        self._line_numbers: list[int] = []
        self._line_channel: list[int] = []
        self._events: list[tuple[int, int, int, int]] = []
        self._channel_index = len(self._channels) - 1
        self._channel_intervals = self._channel.intervals_per_day if self._channel else 0

    def set_channel(self, details: NmiDataDetails) -> None:
        self._channel = details
        self._channels.append(details)
        self._channel_index = len(self._channels) - 1
        self._channel_intervals = details.intervals_per_day

    def add_300(self, raw: bytes, line_no: int) -> None:
        self._raw.append(raw)
        self._line_numbers.append(line_no)
        self._line_channel.append(self._channel_index)
        self.pending += self._channel_intervals

    # -- 400 records
    def _quality_id(self, value: tuple[str, int | None, int | None]) -> int:
        quality_id = self._quality_index.get(value)
        if quality_id is None:
            quality_id = len(self._quality_values)
            self._quality_values.append(value)
            self._quality_index[value] = quality_id
        return quality_id

    def add_400_fast(self, raw: bytes) -> bool:
        """Take a plain 400 record of the last 300 without building a tuple; False if it needs a closer look."""
        fields = raw.split(b",")
        if len(fields) < 4 or (len(fields) > 6 and any(field.strip() for field in fields[6:])):
            return False
        start_text, end_text = fields[1], fields[2]
        if not (start_text.isdigit() and end_text.isdigit()):
            return False
        start, end = int(start_text), int(end_text)
        if not 1 <= start <= end <= self._channel_intervals:
            return False
        key = (fields[3], fields[4] if len(fields) > 4 else b"")
        quality_id = self._raw_qualities.get(key)
        if quality_id is None:
            try:
                quality, method = parse_quality_method(_decode(key[0]))
                reason = parse_reason_code(_decode(key[1]))
            except FieldError:
                return False
            if quality == "V":
                return False
            quality_id = self._quality_id((quality, method, reason))
            self._raw_qualities[key] = quality_id
        self._events.append((len(self._raw) - 1, start, end, quality_id))
        return True

    def add_400(self, event: IntervalEvent) -> None:
        quality_id = self._quality_id((event.quality, event.method, event.reason_code))
        self._events.append((len(self._raw) - 1, event.start_interval, event.end_interval, quality_id))

    # -- conversion
    def _first_bad_line(self) -> Nem12Error:
        """The exact parser's error for the first 300 record of the batch that breaks a rule."""
        for index, raw in enumerate(self._raw):
            line_no = self._line_numbers[index]
            try:
                parse_interval_data(
                    _decode(raw).split(","), line_no, self._channels[self._line_channel[index]]
                )
            except FieldError as exc:
                return self.reader._error(line_no, raw, str(exc))
        return self.reader._error(self._line_numbers[0], self._raw[0], "300 record could not be read")

    def flush(self) -> pa.RecordBatch:
        """The collected records as one batch; raises `Nem12Error` naming the first bad record."""
        try:
            batch = self._convert()
        except _BatchRejected:
            raise self._first_bad_line() from None
        self.reader.value_count += batch.num_rows
        self._reset()
        return batch

    def _convert(self) -> pa.RecordBatch:
        line_channel = np.asarray(self._line_channel, np.int64)
        counts = np.asarray([c.intervals_per_day for c in self._channels], np.int64)[line_channel]
        lengths_us = (
            np.asarray([c.interval_length_minutes for c in self._channels], np.int64)[line_channel]
            * _MINUTE_US
        )
        try:
            split = pc.split_pattern(pa.array(self._raw, pa.binary()).cast(pa.string()), ",")
        except pa.ArrowInvalid:  # not UTF-8
            raise _BatchRejected from None
        field_counts = pc.list_value_length(split).to_numpy()
        starts = split.offsets.to_numpy()[:-1].astype(np.int64)
        # One empty string appended, so absent optional fields can be taken as "".
        fields = pa.concat_arrays([split.flatten(), pa.array([""], pa.string())])
        empty = len(fields) - 1
        quality_at = starts + 2 + counts
        if not (field_counts > 2 + counts).all():
            raise _BatchRejected

        def optional(offset: int) -> pa.Array:
            present = field_counts > 2 + counts + offset
            return fields.take(pa.array(np.where(present, quality_at + offset, empty)))

        for offset in (3, 4):  # UpdateDateTime, MSATSLoadDateTime
            if not pc.all(pc.match_substring_regex(optional(offset), r"^(\d{12}|\d{14})?$")).as_py():
                raise _BatchRejected
        extra_counts = np.maximum(field_counts - (2 + counts + 5), 0)
        if extra_counts.any():
            extra = _ranges(quality_at + 5, extra_counts)
            trimmed = pc.utf8_trim_whitespace(fields.take(pa.array(extra)))
            if pc.max(pc.utf8_length(trimmed)).as_py():
                raise _BatchRejected

        day_us = self._map_distinct(fields.take(pa.array(starts + 1)), self._day)
        flag_keys = pc.binary_join_element_wise(
            fields.take(pa.array(quality_at)), optional(1), pa.scalar("\x1f", pa.string())
        )
        line_quality = self._map_distinct(flag_keys, self._text_quality)

        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        line_of_value = np.repeat(np.arange(len(counts)), counts)
        interval_number = np.arange(1, total + 1, dtype=np.int64) - offsets[line_of_value]
        try:
            values = fields.take(pa.array(starts[line_of_value] + 1 + interval_number)).cast(pa.float64())
        except pa.ArrowInvalid:
            raise _BatchRejected from None
        if not np.isfinite(values.to_numpy(zero_copy_only=False)).all():
            raise _BatchRejected

        length_us = lengths_us[line_of_value]
        end_us = day_us[line_of_value] + interval_number * length_us
        quality_ids = line_quality[line_of_value]
        for line_index, start, end, quality_id in self._events:
            base = offsets[line_index]
            quality_ids[base + start - 1 : base + end] = quality_id
        self._check_variable_days(quality_ids, line_of_value, offsets)

        channel_ids = pa.array(line_channel[line_of_value])
        quality_ids_arrow = pa.array(quality_ids)
        qualities = self._quality_values
        channels = self._channels
        columns = [
            pa.array([c.nmi for c in channels], pa.string()).take(channel_ids),
            pa.array([c.nmi_suffix for c in channels], pa.string()).take(channel_ids),
            pa.array([c.register_id for c in channels], pa.string()).take(channel_ids),
            pa.array([c.uom for c in channels], pa.string()).take(channel_ids),
            pa.array(end_us - length_us, _TIMESTAMP),
            pa.array(end_us, _TIMESTAMP),
            values,
            pa.array([q[0] for q in qualities], pa.string()).take(quality_ids_arrow),
            pa.array([q[1] for q in qualities], pa.int16()).take(quality_ids_arrow),
            pa.array([q[2] for q in qualities], pa.int16()).take(quality_ids_arrow),
            pa.repeat(pa.scalar(self.reader.source_file, pa.string()), total),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=METER_READINGS.arrow_schema)

    @staticmethod
    def _map_distinct(texts: pa.Array, convert: Callable[[str], int]) -> np.ndarray:
        """`convert` applied once per distinct string, spread back to every line."""
        encoded = pc.dictionary_encode(texts)
        mapped = np.asarray([convert(text) for text in encoded.dictionary.to_pylist()], np.int64)
        return mapped[encoded.indices.to_numpy()]

    def _day(self, text: str) -> int:
        day_us = self._day_us.get(text)
        if day_us is None:
            try:
                day = parse_date8(text, "IntervalDate")
            except FieldError:
                raise _BatchRejected from None
            day_us = (day - _EPOCH).days * _DAY_US - NEM_UTC_OFFSET_US
            self._day_us[text] = day_us
        return day_us

    def _text_quality(self, key: str) -> int:
        quality_id = self._text_qualities.get(key)
        if quality_id is None:
            quality_text, _, reason_text = key.partition("\x1f")
            try:
                quality, method = parse_quality_method(quality_text)
                reason = parse_reason_code(reason_text)
            except FieldError:
                raise _BatchRejected from None
            quality_id = self._quality_id((quality, method, reason))
            self._text_qualities[key] = quality_id
        return quality_id

    def _check_variable_days(
        self, quality_ids: np.ndarray, line_of_value: np.ndarray, offsets: np.ndarray
    ) -> None:
        variable = [i for i, q in enumerate(self._quality_values) if q[0] == "V"]
        if not variable:
            return
        uncovered = np.isin(quality_ids, variable)
        if uncovered.any():
            first = int(np.argmax(uncovered))
            index = int(line_of_value[first])
            raise self.reader._error(
                self._line_numbers[index],
                self._raw[index],
                _uncovered_message(first - int(offsets[index]) + 1),
            )


class _BatchRejected(Exception):
    """A column-wise check failed; the exact parser finds and names the record."""


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated `range(start, start + length)` for each pair, without a Python loop."""
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    return starts[owner] + np.arange(int(offsets[-1]), dtype=np.int64) - offsets[owner]


# ------------------------------------------------------------------------------------ conveniences
def read_nem12_batches(
    source: Source,
    *,
    source_file: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    protect_nmi: bool = False,
    limits: FileLimits | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the readings of one NEM12 file (path, binary or text stream, zip) as record batches."""
    return Nem12Reader(
        source, source_file=source_file, batch_rows=batch_rows, protect_nmi=protect_nmi, limits=limits
    ).batches()


def read_nem12_table(
    source: Source,
    *,
    source_file: str | None = None,
    protect_nmi: bool = False,
    limits: FileLimits | None = None,
) -> pa.Table:
    """All readings of one NEM12 file as one table (`limits` default to the environment's settings)."""
    batches = list(
        read_nem12_batches(source, source_file=source_file, protect_nmi=protect_nmi, limits=limits)
    )
    return pa.Table.from_batches(batches, schema=METER_READINGS.arrow_schema)


def iter_records(source: Source, *, source_file: str | None = None) -> Iterator[NemRecord]:
    """Every record of a NEM12 file as a typed tuple (`records`), in file order."""
    return Nem12Reader(source, source_file=source_file).records()
