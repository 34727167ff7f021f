"""Wide BDG2 meter CSV -> long Parquet (`buildings.meter_readings`), streamed with bounded memory.

A meter file is wide: `timestamp` then one column per building id, 17,544 hourly rows, empty cells for missing
readings. The conversion keeps exactly the non-empty cells as rows `building_id, site_id, meter, timestamp,
reading, unit`:

1. the header is read and checked (first column `timestamp`, building ids `<Site>_<usage>_<Name>`, no repeats);
2. the member is read in chunks of about `CHUNK_BYTES` cut at line ends (into buffers from Arrow's memory
   pool); `PARSE_THREADS` threads each parse a chunk with pyarrow's CSV parser (timestamps with the exact
   format `%Y-%m-%d %H:%M:%S`, every building column float64, empty cell = NULL) and reshape it, while the
   main thread writes the chunk before: parsing is the largest cost, and this keeps both cores busy;
3. the reshape (`_Reshaper`): `to_tensor` makes a buildings x hours matrix, `compress` keeps the non-empty
   cells building by building, and the columns become dictionary-encoded indices (building, site, meter,
   unit), timestamps and readings, appended to the Parquet file as one row group per chunk: memory stays at
   a few chunks whatever the file size;
4. timestamps must lie on whole hours and strictly increase from line to line;
5. the Parquet file is written next to the destination and renamed into place only when the whole member
   converted, so a bad member publishes nothing.

The file is a working copy for the publish path, which audits it and re-encodes it into the lake (zstd,
synced there): it is written uncompressed with plain timestamps and readings, not fsynced. On the real
dimensions that halves the time spent writing it (dictionary-hashing 19 million timestamps and zstd cost
more than the bytes they save on a local disk).

DuckDB's `read_csv` + `UNPIVOT` was measured against this (see benchmarks/bdg2.py and the README): it needs the
member extracted to disk first and was slower on two cores, so the pyarrow path is the one kept.

Any parse problem (ragged row, non-numeric reading, unparseable timestamp) is located by re-reading the member
with Python's `csv` module, so the error names the member, the line and the column.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import re
import secrets
import threading
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from energy_assets.sources.buildings.archive import Bdg2Archive, MeterKind, meter_member
from energy_assets.sources.buildings.errors import Bdg2CsvError, CorruptArchiveError
from energy_assets.sources.buildings.tables import METER_READINGS, METER_UNITS

TIMESTAMP_COLUMN = "timestamp"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
CHUNK_BYTES = 8 << 20  # parsed per task: large enough that 1,579 column builders per chunk cost little
PARSE_THREADS = 2
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

_T = TypeVar("_T")


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
        os.replace(temp, destination)
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
    reshapers = threading.local()  # one per parsing thread: each reuses its own matrices

    def reshape(batch: pa.RecordBatch) -> tuple[pa.Table, np.ndarray] | None:
        column = batch.column(0)
        if column.null_count:
            return None  # an empty timestamp: reported in file order by `_checked_seconds`
        if not hasattr(reshapers, "reshaper"):
            reshapers.reshaper = _Reshaper(site_index, offsets_us, dictionaries)
        reshaper: _Reshaper = reshapers.reshaper
        return reshaper.reshape(batch, column.view(pa.int64()).to_numpy())

    writer = pq.ParquetWriter(
        temp,
        _FILE_SCHEMA,
        compression=PARQUET_COMPRESSION,
        store_schema=False,
        use_dictionary=["building_id", "site_id", "meter", "unit"],
        column_encoding={"timestamp": "PLAIN", "reading": "PLAIN"},
        # Row groups are blocks of hours, so only timestamp min/max prune; string statistics cost 10 % of the run.
        write_statistics=["timestamp"],
    )
    try:
        for batch, reshaped in _parsed_blocks(stream, header, reshape):
            # In file order: each hour on the grid and later than the line before (raises otherwise).
            seconds = _checked_seconds(batch.column(0), rows, previous_s, member)
            if seconds.size:
                first_s = int(seconds[0]) if first_s is None else first_s
                previous_s = int(seconds[-1])
            assert reshaped is not None  # only a block with an empty timestamp has none, and it raised above
            table, valid_per_building = reshaped
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            per_building += valid_per_building
            rows += batch.num_rows
            values += table.num_rows
    finally:
        writer.close()
    return rows, values, per_building, _utc(first_s), _utc(previous_s)


def _parsed_blocks(
    stream: IO[bytes], header: MeterHeader, convert: Callable[[pa.RecordBatch], _T]
) -> Iterator[tuple[pa.RecordBatch, _T]]:
    """The data lines after the header, parsed in chunks cut at line ends, each with `convert(batch)`, in
    file order.

    `PARSE_THREADS` chunks are parsed and converted at once (pyarrow and numpy's large operations release
    the GIL) while the caller writes the one before: one thread would leave a core idle. At most
    `PARSE_THREADS + 2` chunks are held (in flight, and the one being written), so memory stays bounded
    whatever the file size.
    """
    names = [TIMESTAMP_COLUMN, *header.building_ids]
    column_types = {TIMESTAMP_COLUMN: pa.timestamp("s"), **dict.fromkeys(header.building_ids, pa.float64())}
    parse_options = pacsv.ParseOptions(newlines_in_values=False)
    convert_options = pacsv.ConvertOptions(
        column_types=column_types,
        null_values=[""],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        timestamp_parsers=[TIMESTAMP_FORMAT],
    )

    def parse(chunk: pa.Buffer) -> tuple[pa.RecordBatch, _T] | None:
        read_options = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=chunk.size + 1)
        table = pacsv.read_csv(
            pa.BufferReader(chunk),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        if table.num_rows == 0:
            return None
        batches = table.to_batches()
        batch = batches[0] if len(batches) == 1 else table.combine_chunks().to_batches()[0]
        return batch, convert(batch)

    stream.readline(64 << 20)  # the header, checked by `parse_header`
    chunks = _line_chunks(stream, CHUNK_BYTES)
    pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="bdg2-csv")
    try:
        pending = deque(pool.submit(parse, chunk) for chunk in itertools.islice(chunks, PARSE_THREADS + 1))
        while pending:
            parsed = pending.popleft().result()
            following = next(chunks, None)
            if following is not None:
                pending.append(pool.submit(parse, following))
            if parsed is not None:
                yield parsed
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _line_chunks(stream: IO[bytes], size: int) -> Iterator[pa.Buffer]:
    """The stream in pieces of about `size` bytes, each ending at a line end (the last one wherever it ends).

    Each piece is read (`readinto`: no copy in Python) into a buffer from Arrow's memory pool, which keeps
    freed memory for the next piece, after the unfinished line the previous buffer ended with.
    """
    rest = b""
    while True:
        buffer = pa.allocate_buffer(max(size, 2 * len(rest)))
        view = memoryview(buffer).cast("B")  # Arrow exports signed bytes
        view[: len(rest)] = rest
        filled = len(rest)
        while filled < len(buffer):
            count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not count:
                break
            filled += count
        if filled == len(rest):  # end of stream
            if rest:
                yield buffer.slice(0, filled)
            return
        if filled < len(buffer):  # the stream ended inside this buffer: the rest is the last line
            cut = filled
        else:
            cut = _after_last_line_end(np.frombuffer(buffer, dtype=np.uint8, count=filled))
        if cut == 0:  # no line end yet (a line longer than the buffer): read on with a larger one
            rest = bytes(view[:filled])
            continue
        rest = bytes(view[cut:filled])
        yield buffer.slice(0, cut)


def _after_last_line_end(data: np.ndarray) -> int:
    """The offset just after the last `\\n` in `data` (0 if none); looks at the tail first (lines are short)."""
    for start in (max(0, data.size - (1 << 16)), 0):
        found = np.flatnonzero(data[start:] == ord("\n"))
        if found.size:
            return start + int(found[-1]) + 1
    return 0


def _utc(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).replace(tzinfo=None)


def _checked_seconds(column: pa.Array, rows_before: int, previous_s: int | None, member: str) -> np.ndarray:
    """Naive timestamps as int64 seconds; each on a whole hour and later than the line before."""
    if column.null_count:
        row = int(np.flatnonzero(~_validity(column))[0])
        raise Bdg2CsvError(member, "empty timestamp", line=rows_before + row + 2, column=TIMESTAMP_COLUMN)
    seconds = column.view(pa.int64()).to_numpy()  # zero-copy (a cast would load the compute kernels)
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


class _Reshaper:
    """Turns wide blocks into long tables (one per parsing thread)."""

    def __init__(
        self, site_index: np.ndarray, offsets_us: np.ndarray | None, dictionaries: Mapping[str, pa.Array]
    ):
        self.site_index = site_index
        self.offsets_us = offsets_us
        self.dictionaries = dictionaries
        self.zeros = np.empty(0, dtype=np.int32)  # meter and unit indices, shared by every block
        # Scratch matrices, reused block after block by this thread (fresh ones fault in new pages each time).
        self.valid = np.empty(0, dtype=bool)
        self.tiled = np.empty(0, dtype=np.int64)

    def reshape(self, batch: pa.RecordBatch, seconds: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """The non-empty cells of a wide block as long columns, building by building (hours in order).

        Values and validity form buildings x hours matrices; boolean masks pick the non-empty cells in
        building-major order, and building and site indices are `repeat`s of the per-building counts.
        The matrix comes from `to_tensor(null_to_nan=True)` (one copy in C++ without the GIL), where an
        empty cell is a NaN. When the block has more NaNs than empty cells, some cell spells out NaN: then
        (rarely) validity comes from the null bitmaps column by column, so that NaN stays a reading for the
        audit to refuse.
        """
        hours = batch.num_rows
        buildings = batch.num_columns - 1
        cells = hours * buildings
        if cells > self.zeros.size:
            self.zeros = np.zeros(cells, dtype=np.int32)
            self.valid = np.empty(cells, dtype=bool)
            self.tiled = np.empty(cells, dtype=np.int64)
        wide = batch.drop_columns([TIMESTAMP_COLUMN])
        readings = wide.to_tensor(null_to_nan=True, row_major=False).to_numpy().T
        valid = self.valid[:cells].reshape(buildings, hours)
        np.equal(readings, readings, out=valid)  # False exactly at NaN (one pass; ~isnan takes two)
        per_building = valid.sum(axis=1)
        if cells - int(per_building.sum()) != sum(array.null_count for array in wide.columns):
            readings, valid = self._from_bitmaps(batch)
            per_building = valid.sum(axis=1)
        building = np.repeat(np.arange(buildings, dtype=np.int32), per_building)
        values = int(per_building.sum())
        # `compress` over the flat (C-ordered) matrices is three times faster than boolean indexing; its
        # outputs live in Arrow's memory pool, which keeps freed memory for the next block.
        keep = valid.ravel()
        tiled = self.tiled[:cells]
        tiled.reshape(buildings, hours)[...] = seconds * 1_000_000
        timestamps, timestamps_buffer = _pooled(values, np.int64)
        np.compress(keep, tiled, out=timestamps)
        if self.offsets_us is not None:
            timestamps -= self.offsets_us[building]
        reading, reading_buffer = _pooled(values, np.float64)
        np.compress(keep, readings.ravel(), out=reading)
        zeros = pa.array(self.zeros[: building.size])
        dictionaries = self.dictionaries
        # Indices are in range by construction: no validation pass over 19 million of them per column.
        columns = [
            pa.DictionaryArray.from_arrays(pa.array(building), dictionaries["building_id"], safe=False),
            pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(self.site_index, per_building)), dictionaries["site_id"], safe=False
            ),
            pa.DictionaryArray.from_arrays(zeros, dictionaries["meter"], safe=False),
            pa.Array.from_buffers(
                METER_READINGS.column("timestamp").arrow_type, values, [None, timestamps_buffer]
            ),
            pa.Array.from_buffers(pa.float64(), values, [None, reading_buffer]),
            pa.DictionaryArray.from_arrays(zeros, dictionaries["unit"], safe=False),
        ]
        return pa.Table.from_arrays(columns, schema=_FILE_SCHEMA), per_building

    def _from_bitmaps(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """Readings and validity (buildings x hours) read column by column from values and null bitmaps."""
        hours = batch.num_rows
        buildings = batch.num_columns - 1
        bitmap_bytes = (hours + 7) // 8
        readings = np.empty((buildings, hours), dtype=np.float64)
        bitmaps = np.empty((buildings, bitmap_bytes), dtype=np.uint8)
        for index in range(buildings):
            array = batch.column(index + 1)
            validity, data = array.buffers()
            readings[index] = np.frombuffer(data, dtype=np.float64, count=hours, offset=array.offset * 8)
            if validity is None or not array.null_count:
                bitmaps[index] = 0xFF
            elif array.offset % 8 == 0:
                bitmaps[index] = np.frombuffer(
                    validity, dtype=np.uint8, count=bitmap_bytes, offset=array.offset // 8
                )
            else:
                bitmaps[index] = np.packbits(_validity(array), bitorder="little")
        return readings, np.unpackbits(bitmaps, axis=1, count=hours, bitorder="little").view(bool)


def _pooled(length: int, dtype: type[np.generic]) -> tuple[np.ndarray, pa.Buffer]:
    """A writable numpy array over a new buffer from Arrow's memory pool, and the buffer."""
    buffer = pa.allocate_buffer(length * np.dtype(dtype).itemsize)
    return np.frombuffer(buffer, dtype=dtype), buffer


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
