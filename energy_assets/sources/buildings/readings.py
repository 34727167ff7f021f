"""Wide BDG2 meter CSV -> long Parquet (`buildings.meter_readings`), streamed with bounded memory.

A meter file is wide: `timestamp` then one column per building id, 17,544 hourly rows, empty cells for missing
readings. The conversion keeps exactly the non-empty cells as rows `building_id, site_id, meter, timestamp,
reading, unit`:

1. the header is read and checked (first column `timestamp`, building ids `<Site>_<usage>_<Name>`, no repeats);
2. pyarrow's streaming CSV reader parses blocks of `BLOCK_BYTES` (timestamps with the exact format
   `%Y-%m-%d %H:%M:%S`, every building column float64, empty cell = NULL) in a background thread while the
   previous block is reshaped, so parsing and writing overlap on two cores;
3. each block is reshaped with numpy (values and validity as a buildings x hours matrix, `nonzero`) into
   dictionary-encoded columns and appended to the Parquet file as one row group: memory stays at about two
   blocks whatever the file size;
4. timestamps must lie on whole hours and strictly increase from line to line;
5. the Parquet file is written next to the destination and renamed into place only when the whole member
   converted, so a bad member publishes nothing.

DuckDB's `read_csv` + `UNPIVOT` was measured against this (see benchmarks/bdg2.py and the README): it needs the
member extracted to disk first and was slower on two cores, so the pyarrow path is the one kept.

Any parse problem (ragged row, non-numeric reading, unparseable timestamp) is located by re-reading the member
with Python's `csv` module, so the error names the member, the line and the column.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import secrets
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from energy_assets.files import fsync_directory
from energy_assets.sources.buildings.archive import Bdg2Archive, MeterKind, meter_member
from energy_assets.sources.buildings.errors import Bdg2CsvError, CorruptArchiveError
from energy_assets.sources.buildings.tables import METER_READINGS, METER_UNITS

TIMESTAMP_COLUMN = "timestamp"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
BLOCK_BYTES = 8 << 20
HOUR_S = 3600
BUILDING_ID = re.compile(r"^([A-Za-z0-9]+)_([^_]+)_(.+)$")
PARQUET_COMPRESSION = "zstd"
PARQUET_COMPRESSION_LEVEL = 1

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
    """Check the header line of a meter file and split it into building ids and sites."""
    try:
        text = line.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise Bdg2CsvError(member, f"the header is not UTF-8 ({exc})", line=1) from None
    names = next(csv.reader([text]))
    if not names or names[0] != TIMESTAMP_COLUMN:
        raise Bdg2CsvError(
            member, f"the first column must be `timestamp`, found {names[0] if names else ''!r}", line=1
        )
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
    )


def convert_meter_file(
    path: str | Path,
    destination: str | Path,
    *,
    meter: str,
    utc_offset_minutes: Mapping[str, int] | None = None,
) -> ConversionStats:
    """Convert a plain (extracted) meter CSV file; see `convert_meter`."""
    path = Path(path)
    return convert_meter_csv(
        lambda: open(path, "rb"),
        destination,
        meter=meter,
        member=str(path),
        csv_bytes=path.stat().st_size,
        utc_offset_minutes=utc_offset_minutes,
    )


def convert_meter_csv(
    open_stream: Callable[[], IO[bytes]],
    destination: str | Path,
    *,
    meter: str,
    member: str,
    csv_bytes: int,
    utc_offset_minutes: Mapping[str, int] | None = None,
) -> ConversionStats:
    """The conversion itself, over any binary stream (`open_stream` is called once per pass)."""
    if meter not in METER_UNITS:
        raise ValueError(f"unknown BDG2 meter {meter!r}; the meters are: {', '.join(METER_UNITS)}")
    started = time.perf_counter()
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.with_name(f".{destination.name}.{secrets.token_hex(6)}.tmp")
    try:
        with _translate_archive_errors(member):
            with open_stream() as stream:
                header = parse_header(stream.readline(64 << 20), member)
            offsets_us = _offsets_us(header, utc_offset_minutes, member)
            try:
                with open_stream() as stream:
                    counts = _stream_convert(stream, temp, header, meter, offsets_us, member)
            except pa.ArrowInvalid as exc:
                with open_stream() as stream:
                    located = locate_csv_problem(stream, member)
                raise (located or Bdg2CsvError(member, f"cannot be parsed: {exc}")) from None
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, destination)
        fsync_directory(destination.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
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
        parquet_bytes=destination.stat().st_size,
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
    temp: Path,
    header: MeterHeader,
    meter: str,
    offsets_us: np.ndarray | None,
    member: str,
) -> tuple[int, int, np.ndarray, datetime | None, datetime | None]:
    buildings = len(header.building_ids)
    column_types = {TIMESTAMP_COLUMN: pa.timestamp("s")}
    column_types.update(dict.fromkeys(header.building_ids, pa.float64()))
    reader = pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=True),
        parse_options=pacsv.ParseOptions(newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            timestamp_parsers=[TIMESTAMP_FORMAT],
        ),
    )
    site_names = sorted(set(header.site_ids))
    site_index = np.array([site_names.index(site) for site in header.site_ids], dtype=np.int32)
    dictionaries = {
        "building_id": pa.array(header.building_ids, pa.string()),
        "site_id": pa.array(site_names, pa.string()),
        "meter": pa.array([meter], pa.string()),
        "unit": pa.array([METER_UNITS[meter]], pa.string()),
    }
    per_building = np.zeros(buildings, dtype=np.int64)
    rows = values = 0
    previous_s: int | None = None
    first_s: int | None = None
    writer = pq.ParquetWriter(
        temp,
        _FILE_SCHEMA,
        compression=PARQUET_COMPRESSION,
        compression_level=PARQUET_COMPRESSION_LEVEL,
        store_schema=False,
        use_dictionary=["building_id", "site_id", "meter", "unit"],
        column_encoding={"timestamp": "DELTA_BINARY_PACKED"},
        # Row groups are blocks of hours, so only timestamp min/max prune; string statistics cost 10 % of the run.
        write_statistics=["timestamp"],
    )
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bdg2-csv") as pool:
            pending = pool.submit(_next_batch, reader)
            while True:
                batch = pending.result()
                if batch is None:
                    break
                pending = pool.submit(_next_batch, reader)  # parse the next block while this one is reshaped
                seconds = _checked_seconds(batch.column(0), rows, previous_s, member)
                if seconds.size:
                    first_s = int(seconds[0]) if first_s is None else first_s
                    previous_s = int(seconds[-1])
                table, valid_per_building = _reshape(batch, seconds, site_index, offsets_us, dictionaries)
                writer.write_table(table, row_group_size=max(table.num_rows, 1))
                per_building += valid_per_building
                rows += batch.num_rows
                values += table.num_rows
    finally:
        writer.close()
    return rows, values, per_building, _utc(first_s), _utc(previous_s)


def _next_batch(reader: pacsv.CSVStreamingReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _utc(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _checked_seconds(column: pa.Array, rows_before: int, previous_s: int | None, member: str) -> np.ndarray:
    """Naive timestamps as int64 seconds; each on a whole hour and later than the line before."""
    if column.null_count:
        row = int(np.flatnonzero(~_validity(column))[0])
        raise Bdg2CsvError(member, "empty timestamp", line=rows_before + row + 2, column=TIMESTAMP_COLUMN)
    seconds = column.cast(pa.int64()).to_numpy()
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
    return seconds


def _show(seconds: np.integer) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime(TIMESTAMP_FORMAT)


def _validity(array: pa.Array) -> np.ndarray:
    bitmap = array.buffers()[0]
    if bitmap is None:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(
        np.frombuffer(bitmap, dtype=np.uint8), bitorder="little", count=array.offset + len(array)
    )
    return bits[array.offset :].astype(bool)


def _reshape(
    batch: pa.RecordBatch,
    seconds: np.ndarray,
    site_index: np.ndarray,
    offsets_us: np.ndarray | None,
    dictionaries: Mapping[str, pa.Array],
) -> tuple[pa.Table, np.ndarray]:
    """The non-empty cells of a wide block as long columns, building by building (hours in order).

    Values and validity go into buildings x hours matrices; boolean masks then pick the non-empty cells in
    building-major order, and the building index is a `repeat` of the per-building counts (no `nonzero`).
    """
    hours = batch.num_rows
    buildings = batch.num_columns - 1
    readings = np.empty((buildings, hours), dtype=np.float64)
    bitmap_bytes = (hours + 7) // 8
    bitmaps = np.full((buildings, bitmap_bytes), 0xFF, dtype=np.uint8)
    for index in range(buildings):
        array = batch.column(index + 1)
        validity, data = array.buffers()
        readings[index] = np.frombuffer(data, dtype=np.float64, count=hours, offset=array.offset * 8)
        if validity is not None and array.null_count:
            if array.offset % 8 == 0:
                bitmaps[index] = np.frombuffer(
                    validity, dtype=np.uint8, count=bitmap_bytes, offset=array.offset // 8
                )
            else:
                bitmaps[index] = np.packbits(_validity(array), bitorder="little")
    valid = np.unpackbits(bitmaps, axis=1, count=hours, bitorder="little").view(bool)
    per_building = valid.sum(axis=1)
    building = np.repeat(np.arange(buildings, dtype=np.int32), per_building)
    timestamps = np.broadcast_to(seconds * 1_000_000, (buildings, hours))[valid]
    if offsets_us is not None:
        timestamps -= offsets_us[building]
    n = building.size
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    columns = [
        pa.DictionaryArray.from_arrays(pa.array(building), dictionaries["building_id"]),
        pa.DictionaryArray.from_arrays(pa.array(site_index[building]), dictionaries["site_id"]),
        pa.DictionaryArray.from_arrays(zeros, dictionaries["meter"]),
        pa.array(timestamps, METER_READINGS.column("timestamp").arrow_type),
        pa.array(readings[valid]),
        pa.DictionaryArray.from_arrays(zeros, dictionaries["unit"]),
    ]
    return pa.Table.from_arrays(columns, schema=_FILE_SCHEMA), per_building


def locate_csv_problem(
    stream: IO[bytes], member: str, *, text_columns: frozenset[str] = frozenset()
) -> Bdg2CsvError | None:
    """The first ragged row, bad timestamp or non-numeric value, by line and column (slow; error path only).

    Every column except `timestamp` and `text_columns` must hold numbers or be empty.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", errors="strict")
    try:
        reader = csv.reader(text)
        header = next(reader)
        header[0] = header[0].lstrip("\ufeff")
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
    except UnicodeDecodeError as exc:
        return Bdg2CsvError(member, f"not UTF-8 text ({exc})")
    return None


_NUMBER = re.compile(
    r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$", re.IGNORECASE
)


def _is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell))
