"""Wide BDG2 meter CSV -> long Parquet (`buildings.meter_readings`), streamed with bounded memory.

A meter file is wide: `timestamp` then one column per building id, 17,544 hourly rows, empty cells for missing
readings. The conversion keeps exactly the non-empty cells as rows `building_id, site_id, meter, timestamp,
reading, unit`:

1. the header is read and checked (first column `timestamp`, building ids `<Site>_<usage>_<Name>`, no repeats);
2. the rest is read in chunks cut at line ends, which `PARSE_THREADS` threads parse and reshape into blocks of
   long rows (`meter_blocks`: numpy tokenizes, Arrow parses the numbers and timestamps, `nonzero` + `take`
   keep the non-empty cells, in file order: hour by hour, buildings in header order) while the main thread
   writes the block before: parsing is the largest cost, and this keeps both cores busy;
3. each block is appended to the Parquet file as one row group, with dictionary-encoded building, site, meter
   and unit: memory stays at a few chunks whatever the file size;
4. timestamps must lie on whole hours and strictly increase from line to line;
5. the Parquet file is written next to the destination and renamed into place only when the whole member
   converted, so a bad member publishes nothing.

The file is a working copy for the publish path, which audits it and re-encodes it into the lake (zstd,
synced there): it is written uncompressed with plain timestamps and readings, not fsynced. On the real
dimensions that halves the time spent writing it (dictionary-hashing 19 million timestamps and zstd cost
more than the bytes they save on a local disk).

DuckDB's `read_csv` + `UNPIVOT` was measured against this (see benchmarks/bdg2.py and the README): it needs the
member extracted to disk first and was slower on two cores, so this path is the one kept.

Any parse problem (ragged row, non-numeric reading, unparseable timestamp) is located by re-reading the member
with Python's `csv` module, so the error names the member, the line and the column.

Every read stays within `energy_assets.archive_limits` (`FileLimits`: the archive's, or the environment's for
a plain file): a line longer than `ENERGY_ASSETS_MAX_LINE_BYTES` raises `FileLimitError` naming member and line,
in the fast path and while locating a problem alike, and is never read whole.
"""

from __future__ import annotations

import contextlib
import csv
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from energy_assets.archive_limits import FileLimits
from energy_assets.files import atomic_file, check_regular_file, open_regular_file
from energy_assets.sources.buildings.archive import Bdg2Archive, MeterKind, meter_member
from energy_assets.sources.buildings.errors import Bdg2CsvError, CorruptArchiveError
from energy_assets.sources.buildings.meter_blocks import (
    TIMESTAMP_COLUMN,
    TIMESTAMP_FORMAT,
    BlockParser,
    LineTooLongError,
    LongBlock,
    long_blocks,
    per_thread,
)
from energy_assets.sources.buildings.tables import METER_READINGS, METER_UNITS

HOUR_S = 3600
BUILDING_ID = re.compile(r"^([A-Za-z0-9]+)_([^_]+)_(.+)$")
PARQUET_COMPRESSION = "none"  # a local working copy; the lake's copy is zstd (see the module docstring)

# The Parquet files hold plain strings (readers see `string`); writing Arrow dictionaries skips re-hashing them.
_FILE_SCHEMA = pa.schema(
    [
        pa.field("building_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("site_id", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("meter", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        METER_READINGS.column("timestamp").field(),
        METER_READINGS.column("reading").field(),
        pa.field("unit", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
)
assert [field.name for field in _FILE_SCHEMA] == METER_READINGS.column_names


@dataclass(frozen=True)
class ConversionStats:
    """What one meter member held and what was written."""

    member: str
    meter: str
    rows: int  # hourly rows (timestamps) in the member
    values: int  # non-empty cells = long rows written
    buildings: int  # building columns
    empty_cells: int
    empty_buildings: tuple[str, ...]  # building columns without a single reading
    first_timestamp: datetime | None
    last_timestamp: datetime | None
    csv_bytes: int  # uncompressed size of the member
    parquet_bytes: int
    seconds: float

    @property
    def cells(self) -> int:
        return self.rows * self.buildings


@dataclass(frozen=True)
class MeterHeader:
    """The checked header of a meter file: building ids and the site of each."""

    building_ids: tuple[str, ...]
    site_ids: tuple[str, ...]


def site_of(building_id: str) -> str | None:
    """`Panther_parking_Lorriane` -> `Panther` (None if the id does not have the BDG2 shape)."""
    match = BUILDING_ID.match(building_id)
    return match.group(1) if match else None


def parse_header(line: bytes, member: str) -> MeterHeader:
    """Check the header line of a meter file and split it into building ids and sites.

    Until the first column reads `timestamp`, nothing of the line is quoted: it may not be a meter file at all.
    """
    try:
        text = line.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        raise Bdg2CsvError(member, "the header is not UTF-8 text (not a BDG2 meter file?)", line=1) from None
    try:
        names = next(csv.reader([text]))
    except (csv.Error, StopIteration):
        names = []
    if not names or names[0] != TIMESTAMP_COLUMN:
        raise Bdg2CsvError(member, "the first column must be `timestamp` (not a BDG2 meter file?)", line=1)
    buildings = names[1:]
    if not buildings:
        raise Bdg2CsvError(member, "no building columns after `timestamp`", line=1)
    seen: set[str] = set()
    sites = []
    for name in buildings:
        if name in seen:
            raise Bdg2CsvError(member, "building id appears twice in the header", line=1, column=name)
        seen.add(name)
        site = site_of(name)
        if site is None:
            raise Bdg2CsvError(
                member,
                "not a BDG2 building id (`<Site>_<usage>_<Name>`, e.g. Panther_parking_Lorriane)",
                line=1,
                column=name,
            )
        sites.append(site)
    return MeterHeader(tuple(buildings), tuple(sites))


def convert_meter(
    archive: Bdg2Archive,
    meter: str,
    destination: str | Path,
    *,
    kind: MeterKind | str = MeterKind.CLEANED,
    utc_offset_minutes: Mapping[str, int] | None = None,
) -> ConversionStats:
    """Convert the archive's `meter` file (`cleaned` or `raw`) into a long Parquet file at `destination`.

    `utc_offset_minutes` maps site id -> offset of the dataset clock from UTC (see
    `timestamps.clock_offsets`); None means the naive timestamps are UTC.
    """
    member = meter_member(meter, kind)
    archive.info(member)
    return convert_meter_csv(
        lambda: archive.open(member),
        destination,
        meter=meter,
        member=archive.describe(member),
        csv_bytes=archive.member_size(member),
        utc_offset_minutes=utc_offset_minutes,
        limits=archive.limits,
    )


def convert_meter_file(
    path: str | Path,
    destination: str | Path,
    *,
    meter: str,
    utc_offset_minutes: Mapping[str, int] | None = None,
) -> ConversionStats:
    """Convert a plain (extracted) meter CSV file; see `convert_meter`. A link or fifo is refused unread."""
    path = Path(path)
    limits = FileLimits.from_env()

    def open_stream() -> IO[bytes]:
        return limits.counted(open_regular_file(path), str(path))

    csv_bytes = check_regular_file(path).st_size
    limits.check_file_size(str(path), csv_bytes)
    return convert_meter_csv(
        open_stream,
        destination,
        meter=meter,
        member=str(path),
        csv_bytes=csv_bytes,
        utc_offset_minutes=utc_offset_minutes,
        limits=limits,
    )


def convert_meter_csv(
    open_stream: Callable[[], IO[bytes]],
    destination: str | Path,
    *,
    meter: str,
    member: str,
    csv_bytes: int,
    utc_offset_minutes: Mapping[str, int] | None = None,
    limits: FileLimits | None = None,
) -> ConversionStats:
    """The conversion itself, over any binary stream (`open_stream` is called once per pass)."""
    limits = FileLimits.from_env() if limits is None else limits
    if meter not in METER_UNITS:
        raise ValueError(f"unknown BDG2 meter {meter!r}; the meters are: {', '.join(METER_UNITS)}")
    started = time.perf_counter()
    # A working copy the publish path re-encodes into the lake: written atomically, not fsynced.
    with atomic_file(destination, durable=False) as output, _translate_archive_errors(member):
        with open_stream() as stream:
            header = parse_header(read_header_line(stream, member, limits), member)
        offsets_us = _offsets_us(header, utc_offset_minutes, member)
        try:
            with open_stream() as stream:
                counts = _stream_convert(stream, output, header, meter, offsets_us, member, limits)
        except pa.ArrowInvalid as exc:
            with open_stream() as stream:
                located = locate_csv_problem(stream, member, limits=limits)
            raise (located or Bdg2CsvError(member, f"cannot be parsed: {exc}")) from None
    rows, values, per_building, first, last = counts
    return ConversionStats(
        member=member,
        meter=meter,
        rows=rows,
        values=values,
        buildings=len(header.building_ids),
        empty_cells=rows * len(header.building_ids) - values,
        empty_buildings=tuple(
            name for name, n in zip(header.building_ids, per_building, strict=True) if n == 0
        ),
        first_timestamp=first,
        last_timestamp=last,
        csv_bytes=csv_bytes,
        parquet_bytes=Path(destination).stat().st_size,
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def _translate_archive_errors(member: str) -> Iterator[None]:
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CorruptArchiveError(
            f"{member} is corrupt ({exc}); delete the archive from the download cache and download it again"
        ) from exc


def read_header_line(stream: IO[bytes], member: str, limits: FileLimits) -> bytes:
    """The first line of the stream; one longer than the line limit raises `FileLimitError`, unread."""
    line = stream.readline(limits.max_line_bytes + 1)
    if len(line.rstrip(b"\r\n")) > limits.max_line_bytes:
        raise limits.line_too_long(member, 1)
    return line


def _offsets_us(header: MeterHeader, offsets: Mapping[str, int] | None, member: str) -> np.ndarray | None:
    """Per building column, microseconds to subtract from the naive timestamp; None when all are 0 (UTC)."""
    if not offsets or not any(offsets.values()):
        return None
    result = np.empty(len(header.site_ids), dtype=np.int64)
    for index, (building, site) in enumerate(zip(header.building_ids, header.site_ids, strict=True)):
        if site not in offsets:
            raise Bdg2CsvError(
                member,
                f"site {site!r} has no time zone in the metadata, so BDG2_TIMESTAMP_CONVENTION=site_standard_time"
                " cannot place its readings",
                line=1,
                column=building,
            )
        result[index] = offsets[site] * 60_000_000
    return result


def _stream_convert(
    stream: IO[bytes],
    output: BinaryIO,
    header: MeterHeader,
    meter: str,
    offsets_us: np.ndarray | None,
    member: str,
    limits: FileLimits,
) -> tuple[int, int, np.ndarray, datetime | None, datetime | None]:
    site_names = sorted(set(header.site_ids))
    site_index = np.array([site_names.index(site) for site in header.site_ids], dtype=np.int32)
    dictionaries = {
        "building_id": pa.array(header.building_ids, pa.string()),
        "site_id": pa.array(site_names, pa.string()),
        "meter": pa.array([meter], pa.string()),
        "unit": pa.array([METER_UNITS[meter]], pa.string()),
    }
    parser = per_thread(
        lambda: BlockParser(header.building_ids, site_index, offsets_us, _FILE_SCHEMA, dictionaries)
    )
    per_building = np.zeros(len(header.building_ids), dtype=np.int64)
    rows = values = 0
    previous_s: int | None = None
    first_s: int | None = None
    writer = pq.ParquetWriter(
        output,
        _FILE_SCHEMA,
        compression=PARQUET_COMPRESSION,
        store_schema=False,
        use_dictionary=["building_id", "site_id", "meter", "unit"],
        column_encoding={"timestamp": "PLAIN", "reading": "PLAIN"},
        # Row groups are blocks of hours, so only timestamp min/max prune; string statistics cost 10 % of the run.
        write_statistics=["timestamp"],
    )
    try:
        read_header_line(stream, member, limits)  # checked by `parse_header`
        blocks = long_blocks(
            stream, lambda chunk: parser().parse(chunk), max_line_bytes=limits.max_line_bytes
        )
        for block in blocks:
            # In file order: each hour on the grid and later than the line before (raises otherwise).
            _check_seconds(block, rows, previous_s, member)
            if block.seconds.size:
                first_s = int(block.seconds[0]) if first_s is None else first_s
                previous_s = int(block.seconds[-1])
            assert block.table is not None and block.per_building is not None  # else `_check_seconds` raised
            writer.write_table(block.table, row_group_size=max(block.table.num_rows, 1))
            per_building += block.per_building
            rows += block.seconds.size
            values += block.table.num_rows
    except LineTooLongError:
        raise limits.line_too_long(member, rows + 2) from None  # the header, then the rows read before it
    finally:
        writer.close()
    return rows, values, per_building, _utc(first_s), _utc(previous_s)


def _utc(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _check_seconds(block: LongBlock, rows_before: int, previous_s: int | None, member: str) -> None:
    """Every line has a timestamp on a whole hour, later than the line before."""
    if block.empty_timestamp_line is not None:
        line = rows_before + block.empty_timestamp_line + 2
        raise Bdg2CsvError(member, "empty timestamp", line=line, column=TIMESTAMP_COLUMN)
    seconds = block.seconds
    off_grid = np.flatnonzero(seconds % HOUR_S)
    if off_grid.size:
        row = int(off_grid[0])
        raise Bdg2CsvError(
            member,
            f"timestamp {_show(seconds[row])} is not on the hourly grid (minutes and seconds must be 0)",
            line=rows_before + row + 2,
            column=TIMESTAMP_COLUMN,
        )
    previous = np.empty_like(seconds)
    previous[1:] = seconds[:-1]
    previous[:1] = previous_s if previous_s is not None else np.iinfo(np.int64).min
    not_later = np.flatnonzero(seconds <= previous)
    if not_later.size:
        row = int(not_later[0])
        problem = (
            "repeats the line before" if seconds[row] == previous[row] else "is earlier than the line before"
        )
        raise Bdg2CsvError(
            member,
            f"timestamp {_show(seconds[row])} {problem}; hours must strictly increase",
            line=rows_before + row + 2,
            column=TIMESTAMP_COLUMN,
        )


def _show(seconds: np.integer) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime(TIMESTAMP_FORMAT)


def locate_csv_problem(
    stream: IO[bytes],
    member: str,
    *,
    text_columns: frozenset[str] = frozenset(),
    limits: FileLimits | None = None,
) -> Bdg2CsvError | None:
    """The first ragged row, bad timestamp or non-numeric value, by line and column (slow; error path only).

    Every column except `timestamp` and `text_columns` must hold numbers or be empty. Lines are read one by
    one within the line limit (`FileLimitError` beyond it), and a record the `csv` module refuses (an unclosed
    quote running on past its field size limit) is named by the line it starts on.
    """
    limits = FileLimits.from_env() if limits is None else limits
    reader = csv.reader(_bounded_lines(stream, member, limits))
    lines_done = 0
    try:
        header = next(reader, None)
        if header is None:
            return Bdg2CsvError(member, "no header line", line=1)
        header[0] = header[0].lstrip("\ufeff")
        lines_done = reader.line_num
        for line, row in enumerate(reader, start=2):
            if len(row) != len(header):
                return Bdg2CsvError(
                    member, f"ragged row: {len(row)} fields where the header has {len(header)}", line=line
                )
            try:
                datetime.strptime(row[0], TIMESTAMP_FORMAT)
            except ValueError:
                return Bdg2CsvError(
                    member,
                    f"timestamp {row[0]!r} does not parse as YYYY-MM-DD HH:MM:SS",
                    line=line,
                    column=TIMESTAMP_COLUMN,
                )
            for name, cell in zip(header[1:], row[1:], strict=True):
                if cell and name not in text_columns and not _is_number(cell):
                    return Bdg2CsvError(
                        member, f"value {cell[:40]!r} is not a number", line=line, column=name
                    )
            lines_done = reader.line_num
    except Bdg2CsvError as exc:  # a line that is not UTF-8
        return exc
    except csv.Error as exc:
        return Bdg2CsvError(
            member,
            f"cannot be read as CSV from this line on ({exc}; an unclosed quote?)",
            line=lines_done + 1,
        )
    return None


def _bounded_lines(stream: IO[bytes], member: str, limits: FileLimits) -> Iterator[str]:
    """The stream's lines as text, with their line ends (for `csv`), none longer than the line limit."""
    number = 0
    while line := stream.readline(limits.max_line_bytes + 1):
        number += 1
        if len(line.rstrip(b"\r\n")) > limits.max_line_bytes:
            raise limits.line_too_long(member, number)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Bdg2CsvError(
                member, f"not UTF-8 text ({exc.reason} at byte {exc.start})", line=number
            ) from None
        yield text


_NUMBER = re.compile(
    r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$", re.IGNORECASE
)


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))
