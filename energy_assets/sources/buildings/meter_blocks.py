"""A wide BDG2 meter CSV, after its header, as blocks of long rows: chunked, parsed and reshaped in threads.

The stream is read in chunks of about `CHUNK_BYTES` cut at line ends (`line_chunks`, into buffers from Arrow's
memory pool); `PARSE_THREADS` threads turn chunks into `LongBlock`s (`long_blocks`), handed out in file order,
so memory stays at a few chunks whatever the file size (a line longer than the limit given raises
`LineTooLongError` once the blocks before it are handed out, instead of growing a buffer for it). A block
holds the chunk's naive timestamps (one per line, checked in file order by the caller) and its non-empty cells
as long columns `building_id, site_id, meter, timestamp, reading, unit` in file order: hour by hour,
buildings in header order.

`BlockParser` parses a chunk in one of two ways, with the same result:
- **the tokenizer** (nearly every chunk): numpy finds the delimiters, every line must have exactly one field
  per column, and the cells become one Arrow string array over the chunk's own bytes: each field followed by
  the delimiter between it and the next field as a NULL entry (offsets only, no copy of the text). Arrow's
  `cast` to float64 parses the non-empty fields (the parser pyarrow's CSV reader uses) and `strptime` the
  timestamps with the exact format. One `nonzero` and three `take`s keep the non-empty cells' readings and
  their building and site (from per-field index templates). This takes about half the CPU of the CSV reader
  (0.62 against 1.2 s on the benchmark's file), whose per-column bookkeeping over 1,579 columns dominates.
- **pyarrow's CSV reader** (every building column float64, empty cell = NULL): for any chunk the tokenizer
  does not take as is, i.e. whatever is not plain `<timestamp>,<number or empty>,...` lines ending in LF or
  CRLF (quotes, blanks around numbers, empty lines, a missing final line end, a ragged row, a value that does
  not parse, a CR outside a CRLF). It also parses what the tokenizer refused on grounds of form, and raises
  `ArrowInvalid` for the caller to locate the problem by line and column.

A cell that spells out `NaN` or `inf` is not empty: it stays a reading (for the publish audit's `finite` rule
to refuse) on both ways.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

CHUNK_BYTES = 2 << 20  # parsed per task: large enough that per-chunk costs are small, small enough to stream
PARSE_THREADS = 2
TIMESTAMP_COLUMN = "timestamp"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_COMMA, _LF, _CR = ord(","), ord("\n"), ord("\r")
_MAX_TOKENIZED_BYTES = (1 << 31) - 1  # Arrow string offsets are int32

_T = TypeVar("_T")


class LineTooLongError(Exception):
    """A line of the stream is longer than the limit given to `line_chunks`; the caller names file and line."""


@dataclass(frozen=True)
class LongBlock:
    """One chunk: its lines' naive timestamps and, when every line has one, its non-empty cells as long rows."""

    seconds: np.ndarray  # int64 seconds since the epoch per line (naive: the dataset's clock)
    empty_timestamp_line: int | None  # index of the first line without a timestamp (then `table` is None)
    table: pa.Table | None  # the long rows, in `BlockParser.schema`
    per_building: np.ndarray | None  # non-empty cells per building column


class BlockParser:
    """Turns chunks of a wide meter file into `LongBlock`s (one per parsing thread: it keeps scratch arrays).

    `schema` is the long table's: dictionary-encoded `building_id`, `site_id`, `meter`, `unit` (their
    dictionaries in `dictionaries`; meter and unit have one entry), `timestamp` (microseconds, UTC) and
    `reading`. `site_index[b]` is the site dictionary index of building column `b`; `offsets_us[b]` (if
    given) is subtracted from the naive timestamps of building column `b`.
    """

    def __init__(
        self,
        building_ids: Sequence[str],
        site_index: np.ndarray,
        offsets_us: np.ndarray | None,
        schema: pa.Schema,
        dictionaries: Mapping[str, pa.Array],
    ) -> None:
        self.buildings = len(building_ids)
        self.columns = self.buildings + 1  # with `timestamp`
        self.site_index = site_index.astype(np.int32)
        self.offsets_us = offsets_us
        self.schema = schema
        self.dictionaries = dictionaries
        self.timestamp_type = schema.field("timestamp").type
        self.read_options = {"column_names": [TIMESTAMP_COLUMN, *building_ids], "use_threads": False}
        self.parse_options = pacsv.ParseOptions(newlines_in_values=False)
        self.convert_options = pacsv.ConvertOptions(
            column_types={TIMESTAMP_COLUMN: pa.timestamp("s"), **dict.fromkeys(building_ids, pa.float64())},
            null_values=[""],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            timestamp_parsers=[TIMESTAMP_FORMAT],
        )
        # The building and site index of each field, for as many lines as the largest chunk had.
        self.building_template = np.empty(0, dtype=np.int32)
        self.site_template = np.empty(0, dtype=np.int32)
        self.zeros = np.empty(0, dtype=np.int32)  # meter and unit indices
        self.scratch: dict[str, np.ndarray] = {}

    def parse(self, chunk: pa.Buffer) -> LongBlock | None:
        """The chunk's block (None for a chunk without lines); raises `ArrowInvalid` for unparseable input."""
        block = self._tokenized(chunk)
        return block if block is not None else self._read_csv(chunk)

    # ------------------------------------------------------------------ the tokenizer
    def _tokenized(self, chunk: pa.Buffer) -> LongBlock | None:
        """The block, or None when the chunk is not plain lines of `columns` fields (see the module docstring)."""
        size = chunk.size
        if not 0 < size <= _MAX_TOKENIZED_BYTES:
            return None
        data = np.frombuffer(chunk, dtype=np.uint8)
        if data[-1] != _LF:
            return None
        line_feeds = data == _LF
        delimiters = data == _COMMA
        delimiters |= line_feeds
        ends = np.flatnonzero(delimiters)
        del delimiters
        columns = self.columns
        fields = ends.size
        lines = fields // columns
        if fields != lines * columns or not np.array_equal(
            np.flatnonzero(line_feeds), ends[columns - 1 :: columns]
        ):
            return None  # not exactly `columns` fields on every line
        # Entry 2k is field k, entry 2k+1 the delimiter after it (a NULL entry): offsets alone cut the cells.
        entries = 2 * fields
        offsets = self._scratch("offsets", entries + 1, np.int32)
        offsets[0] = 0
        offsets[1::2] = ends
        del ends
        np.add(offsets[1::2], 1, out=offsets[2::2])
        line_ends = offsets[1::2].reshape(lines, columns)[:, -1]  # a view: CRLF's CR is not in the last field
        crlf = data[line_ends - 1] == _CR
        if np.count_nonzero(data == _CR) != np.count_nonzero(crlf):
            return (
                None  # a CR elsewhere ends a line for the CSV reader (and strptime would skip it as a blank)
            )
        line_ends -= crlf
        filled = self._scratch("filled", fields, bool)
        np.not_equal(offsets[1::2], offsets[0:-1:2], out=filled)  # non-empty fields
        filled.reshape(lines, columns)[:, 0] = False  # the timestamps are parsed on their own
        keep = self._scratch("keep", entries, bool)
        keep[1::2] = False
        keep[0::2] = filled
        cells = pa.StringArray.from_buffers(
            entries, pa.py_buffer(offsets), chunk, pa.py_buffer(np.packbits(keep, bitorder="little"))
        )
        stamp_offsets = np.empty(2 * lines + 1, dtype=np.int32)
        stamp_offsets[0:-1:2] = offsets[0 : -1 : 2 * columns]
        stamp_offsets[1::2] = offsets[1 :: 2 * columns]
        stamp_offsets[-1] = size
        every_other = pa.py_buffer(b"\x55" * ((2 * lines + 7) // 8))
        stamps = pa.StringArray.from_buffers(2 * lines, pa.py_buffer(stamp_offsets), chunk, every_other)
        try:
            values = pc.cast(cells, pa.float64())
            parsed = pc.strptime(stamps, format=TIMESTAMP_FORMAT, unit="s", error_is_null=False)
        except pa.ArrowInvalid:
            return None  # the CSV reader parses it as it can, or reports it
        seconds = np.frombuffer(parsed.buffers()[1], dtype=np.int64, count=2 * lines)[0::2].copy()
        # `compress` is `nonzero` + `take`: one `nonzero` serves the three columns.
        cell = np.flatnonzero(filled)
        building_template, site_template = self._templates(lines)
        building = building_template.take(cell)
        site = site_template.take(cell)
        reading, reading_buffer = _pooled(cell.size, np.float64)
        np.left_shift(cell, 1, out=cell)  # field k is entry 2k
        np.frombuffer(values.buffers()[1], dtype=np.float64, count=entries).take(cell, out=reading)
        del cell
        flags = filled.reshape(lines, columns).view(np.uint8)
        per_line = np.add.reduce(flags, axis=1, dtype=np.int64)
        per_building = np.add.reduce(flags[:, 1:], axis=0, dtype=np.int64)
        table = self._long_table(building, site, seconds, per_line, reading_buffer)
        return LongBlock(seconds, None, table, per_building)

    def _templates(self, lines: int) -> tuple[np.ndarray, np.ndarray]:
        """Building and site index of each field of `lines` lines (0 under the timestamps)."""
        if self.building_template.size < lines * self.columns:
            per_line = np.zeros(self.columns, dtype=np.int32)
            per_line[1:] = np.arange(self.buildings, dtype=np.int32)
            self.building_template = np.tile(per_line, lines)
            per_line[1:] = self.site_index
            self.site_template = np.tile(per_line, lines)
        return self.building_template, self.site_template

    def _scratch(self, name: str, size: int, dtype: type[np.generic] | type[bool]) -> np.ndarray:
        """This thread's scratch array `name` of `size` items (reused chunk after chunk: no new pages)."""
        array = self.scratch.get(name)
        if array is None or array.size < size:
            array = self.scratch[name] = np.empty(size, dtype=dtype)
        return array[:size]

    # ------------------------------------------------------------------ pyarrow's CSV reader
    def _read_csv(self, chunk: pa.Buffer) -> LongBlock | None:
        table = pacsv.read_csv(
            pa.BufferReader(chunk),
            read_options=pacsv.ReadOptions(**self.read_options, block_size=chunk.size + 1),
            parse_options=self.parse_options,
            convert_options=self.convert_options,
        )
        if table.num_rows == 0:
            return None
        batches = table.to_batches()
        batch = batches[0] if len(batches) == 1 else table.combine_chunks().to_batches()[0]
        stamps = batch.column(0)
        seconds = stamps.view(pa.int64()).to_numpy(zero_copy_only=False)
        if stamps.null_count:
            return LongBlock(seconds, int(np.flatnonzero(~_validity(stamps))[0]), None, None)
        wide = batch.drop_columns([TIMESTAMP_COLUMN])
        readings = wide.to_tensor(null_to_nan=True, row_major=True).to_numpy()  # hours x buildings
        valid = np.equal(readings, readings)  # False exactly at NaN
        if readings.size - int(np.count_nonzero(valid)) != sum(array.null_count for array in wide.columns):
            readings, valid = _from_bitmaps(wide)  # some cell spells out NaN: it stays a reading
        keep = valid.ravel()
        count = int(np.count_nonzero(keep))
        reading, reading_buffer = _pooled(count, np.float64)
        np.compress(keep, readings.ravel(), out=reading)
        building = (np.flatnonzero(keep) % self.buildings).astype(np.int32)
        per_line = valid.sum(axis=1)
        table = self._long_table(building, self.site_index[building], seconds, per_line, reading_buffer)
        return LongBlock(seconds, None, table, valid.sum(axis=0))

    # ------------------------------------------------------------------ both
    def _long_table(
        self,
        building: np.ndarray,
        site: np.ndarray,
        seconds: np.ndarray,
        per_line: np.ndarray,
        reading: pa.Buffer,
    ) -> pa.Table:
        """The long columns: each line's naive `seconds` repeated for its `per_line` cells, in microseconds,
        made UTC with `offsets_us` here."""
        timestamps_us = np.repeat(seconds * 1_000_000, per_line)
        if self.offsets_us is not None:
            timestamps_us -= self.offsets_us[building]
        count = building.size
        if self.zeros.size < count:
            self.zeros = np.zeros(count, dtype=np.int32)
        zeros = pa.array(self.zeros[:count])
        dictionaries = self.dictionaries
        # Indices are in range by construction: no validation pass over millions of them per column.
        columns = [
            pa.DictionaryArray.from_arrays(pa.array(building), dictionaries["building_id"], safe=False),
            pa.DictionaryArray.from_arrays(pa.array(site), dictionaries["site_id"], safe=False),
            pa.DictionaryArray.from_arrays(zeros, dictionaries["meter"], safe=False),
            pa.Array.from_buffers(self.timestamp_type, count, [None, pa.py_buffer(timestamps_us)]),
            pa.Array.from_buffers(pa.float64(), count, [None, reading]),
            pa.DictionaryArray.from_arrays(zeros, dictionaries["unit"], safe=False),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)


def long_blocks(
    stream: IO[bytes], parse: Callable[[pa.Buffer], _T | None], *, max_line_bytes: int | None = None
) -> Iterator[_T]:
    """`parse(chunk)` of each chunk of the stream (from where it stands: after the header), in file order.

    `PARSE_THREADS` chunks are parsed at once (pyarrow and numpy's large operations release the GIL) while
    the caller handles the one before: one thread would leave a core idle. At most `PARSE_THREADS + 2`
    chunks are held (in flight, and the one handed out), so memory stays bounded whatever the file size.
    A line longer than `max_line_bytes` raises `LineTooLongError` after the blocks of the lines before it, so
    the caller knows its line number.
    """
    chunks = line_chunks(stream, CHUNK_BYTES, max_line_bytes=max_line_bytes)
    pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="bdg2-csv")
    pending: deque[Future[_T | None]] = deque()
    too_long: LineTooLongError | None = None

    def submit_next() -> None:
        nonlocal too_long
        if too_long is not None:
            return
        try:
            chunk = next(chunks, None)
        except LineTooLongError as exc:
            too_long = exc
            return
        if chunk is not None:
            pending.append(pool.submit(parse, chunk))

    try:
        for _ in range(PARSE_THREADS + 1):
            submit_next()
        while pending:
            parsed = pending.popleft().result()
            submit_next()
            if parsed is not None:
                yield parsed
        if too_long is not None:
            raise too_long
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def per_thread(make: Callable[[], _T]) -> Callable[[], _T]:
    """A getter of one `make()` per calling thread (each parsing thread keeps its own `BlockParser`)."""
    local = threading.local()

    def get() -> _T:
        try:
            return local.value
        except AttributeError:
            local.value = make()
            return local.value

    return get


def line_chunks(stream: IO[bytes], size: int, *, max_line_bytes: int | None = None) -> Iterator[pa.Buffer]:
    """The stream in pieces of about `size` bytes, each ending at a line end (the last one wherever it ends).

    Each piece is read (`readinto`: no copy in Python) into a buffer from Arrow's memory pool, which keeps
    freed memory for the next piece, after the unfinished line the previous buffer ended with. A line longer
    than `max_line_bytes` (line end not counted) raises `LineTooLongError` where a piece ends, before more of
    it is read: lines are measured at piece boundaries only (measuring every line would add a pass over every
    byte), so one shorter than `size` inside a piece passes; memory stays within two pieces either way.
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
            if max_line_bytes is not None and filled > max_line_bytes:
                raise LineTooLongError(f"a line is longer than {max_line_bytes:,} bytes")
            rest = bytes(view[:filled])
            continue
        rest = bytes(view[cut:filled])
        yield buffer.slice(0, cut)
        if max_line_bytes is not None and len(rest) > max_line_bytes:
            raise LineTooLongError(f"a line is longer than {max_line_bytes:,} bytes")


def _after_last_line_end(data: np.ndarray) -> int:
    """The offset just after the last `\\n` in `data` (0 if none); looks at the tail first (lines are short)."""
    for start in (max(0, data.size - (1 << 16)), 0):
        found = np.flatnonzero(data[start:] == _LF)
        if found.size:
            return start + int(found[-1]) + 1
    return 0


def _validity(array: pa.Array) -> np.ndarray:
    bitmap = array.buffers()[0]
    if bitmap is None:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(
        np.frombuffer(bitmap, dtype=np.uint8), bitorder="little", count=array.offset + len(array)
    )
    return bits[array.offset :].astype(bool)


def _from_bitmaps(wide: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """Readings and validity (hours x buildings) read column by column from values and null bitmaps."""
    hours = wide.num_rows
    buildings = wide.num_columns
    readings = np.empty((hours, buildings), dtype=np.float64)
    valid = np.empty((hours, buildings), dtype=bool)
    for index in range(buildings):
        array = wide.column(index)
        readings[:, index] = np.frombuffer(
            array.buffers()[1], dtype=np.float64, count=hours, offset=array.offset * 8
        )
        valid[:, index] = _validity(array)
    return readings, valid


def _pooled(length: int, dtype: type[np.generic]) -> tuple[np.ndarray, pa.Buffer]:
    """A writable numpy array over a new buffer from Arrow's memory pool, and the buffer."""
    buffer = pa.allocate_buffer(length * np.dtype(dtype).itemsize)
    return np.frombuffer(buffer, dtype=dtype), buffer
