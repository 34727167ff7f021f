"""The streaming CSV reader of declared files: header quirks, then strict typed conversion. No Dagster.

The header is read with the `csv` module (a UTF-8 BOM skipped; CR, LF or CRLF line ends; no-break spaces
trimmed; an empty header cell named `column_<position>`, a repeated one suffixed `_2`, `_3`; a preamble
refused unless `skip_rows` says how many lines to skip). The rows are read by `pyarrow.csv` in blocks, every
field as text (quoted fields with the delimiter, doubled quotes and line breaks included), then each declared
column is trimmed, its missing-value spellings made NULL, and converted to its type: a value that does not
convert stops the read with the file, line and column (the value shown unless the column is sensitive).
Line numbers count physical lines, so a record with a quoted line break is found where an editor shows it.

Memory is one block of text plus the typed columns read so far: the text of the file is never held whole.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from energy_assets.sources.files.declaration import (
    ISO8601,
    ColumnDeclaration,
    CombinedTime,
    FileSourceDeclaration,
    snake_case,
)
from energy_assets.sources.files.errors import FileFormatError
from energy_assets.sources.files.local_times import LocalTimeError, to_utc

SPACES = " \t\u00a0\u202f\u2007"
BLOCK_BYTES = 16 << 20
PEEK_ROWS = 200
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
BatchHook = Callable[[pa.RecordBatch], pa.RecordBatch]


@dataclass(frozen=True)
class HeaderCell:
    """One physical column of the file: its 1-based position, the header as written (cleaned), which copy of
    that header it is, and its unique snake_case name."""

    position: int
    text: str
    occurrence: int
    name: str


@dataclass(frozen=True)
class FileHeader:
    cells: list[HeaderCell]
    line: int  # 1-based line of the header

    def find(self, text: str, occurrence: int) -> HeaderCell | None:
        return next((c for c in self.cells if c.text == text and c.occurrence == occurrence), None)


def parse_times(text: pa.Array | pa.ChunkedArray, fmt: str) -> tuple[pa.Array, pa.Array]:
    """`text` parsed with the strptime `fmt` (naive, us), and a mask of present values that did not parse.

    Arrow's strptime rolls impossible dates over (31/02/2020 becomes 2 March): a value is accepted only
    if formatting the parsed time again gives back the same numbers.
    """
    parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
    bad = pc.and_(pc.is_valid(text), pc.is_null(parsed))
    if "%z" not in fmt and "%d" in fmt:
        # A rolled-over day lands on the 1st to 3rd of the next month: only those rows are formatted again.
        suspects = pc.indices_nonzero(pc.fill_null(pc.less_equal(pc.day(parsed), 3), False))
        if len(suspects):
            again = pc.strftime(pc.take(parsed, suspects), format=fmt)
            if "%S" in fmt:
                again = pc.replace_substring_regex(again, r"\.0+([^0-9]|$)", r"\1")
            original = pc.take(text, suspects)
            differs = pc.fill_null(pc.not_equal(again, original), False)
            if pc.any(differs).as_py():  # zero-padding may differ: compare the numbers
                differs = pc.and_(differs, pc.not_equal(_numbers(again), _numbers(original)))
            rolled = pc.filter(suspects, differs)
            if len(rolled):
                bad = pc.or_(bad, pc.is_in(pa.array(range(len(text)), pa.int64()), value_set=rolled))
    return parsed, bad


def _numbers(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The text with leading zeros of its numbers removed (`09/04` and `9/4` compare equal)."""
    return pc.replace_substring_regex(text, r"(^|[^0-9])0+([0-9])", r"\1\2")


def clean_cell(text: str) -> str:
    return text.strip(SPACES)


def peek_rows(path: Path, *, delimiter: str, rows: int, label: str) -> list[tuple[int, list[str]]]:
    """The first `rows` records as (start line, fields), blank lines skipped; refuses binary or non-UTF-8 files."""
    with open(path, "rb") as raw:
        head = raw.read(8192)
    if b"\x00" in head:
        raise FileFormatError.at(label, "a binary file (NUL bytes), not CSV text", line=1)
    out = []
    try:
        for line, fields in _records(path, delimiter):
            out.append((line, fields))
            if len(out) >= rows:
                break
    except UnicodeDecodeError as error:
        raise FileFormatError.at(
            label, f"not UTF-8 text (byte {error.start} of a block: {error.reason}); save the file as UTF-8"
        ) from None
    except csv.Error as error:
        raise FileFormatError.at(label, f"not readable as CSV ({error})") from None
    return out


def _records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Every non-blank record with the physical line it starts on (1-based)."""
    with open(path, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, delimiter=delimiter)
        for fields in reader:
            if not fields or fields == [""]:
                continue
            breaks = sum(len(_LINE_BREAK.findall(value)) for value in fields)
            yield reader.line_num - breaks, fields


def read_header(
    path: Path, *, delimiter: str, skip_rows: int, label: str
) -> tuple[FileHeader, list[list[str]]]:
    """The header after `skip_rows` records, and the records that follow it (up to `PEEK_ROWS`).

    A preamble (title lines before the header) is refused unless `skip_rows` skips it: the header then has
    fewer fields than the rows below, some of which have values beyond it.
    """
    records = peek_rows(path, delimiter=delimiter, rows=skip_rows + 1 + PEEK_ROWS, label=label)
    if len(records) <= skip_rows:
        raise FileFormatError.at(
            label,
            "the file is empty (no header line)" + (f" after skip_rows: {skip_rows}" if skip_rows else ""),
        )
    line, header = records[skip_rows]
    rows = [fields for _, fields in records[skip_rows + 1 :]]
    if skip_rows == 0 and rows:
        widest = max(len(fields) for fields in rows)
        beyond = any(any(clean_cell(v) for v in fields[len(header) :]) for fields in rows)
        if len(header) < widest and beyond:
            first = next(i for i, (_, fields) in enumerate(records) if len(fields) >= widest)
            raise FileFormatError.at(
                label,
                f"line {line} has {len(header)} field(s) but the rows below have {widest}: a preamble before the"
                f" header? Declare skip_rows: {first} (the header would then be line {records[first][0]}).",
                line=line,
            )
    cells = []
    seen: dict[str, int] = {}
    names: set[str] = set()
    for position, raw in enumerate(header, start=1):
        text = clean_cell(raw)
        seen[text] = seen.get(text, 0) + 1
        name = base = snake_case(text, position)
        suffix = 2
        while name in names:
            name = f"{base}_{suffix}"
            suffix += 1
        names.add(name)
        cells.append(HeaderCell(position, text, seen[text], name))
    return FileHeader(cells, line), rows


@dataclass
class ReadResult:
    """A file read as declared: the typed table and what the reader noticed."""

    table: pa.Table
    discarded_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)


class DeclaredCsv:
    """One file read against a declaration (see the module docstring)."""

    def __init__(self, path: Path, declaration: FileSourceDeclaration, *, label: str | None = None) -> None:
        self.path = Path(path)
        self.declaration = declaration
        self.label = label or self.path.name
        self.header, _ = read_header(
            self.path, delimiter=declaration.delimiter, skip_rows=declaration.skip_rows, label=self.label
        )
        self.positions: dict[str, int] = {}  # declared column -> 0-based physical index
        self.missing: list[str] = []
        self.discarded: list[str] = []
        self._resolve()

    # ------------------------------------------------------------------ columns
    def _resolve(self) -> None:
        d, label = self.declaration, self.label
        claimed: set[int] = set()
        key = set(d.key) | {t.date for t in d.combined_times} | {t.time for t in d.combined_times}
        for column in d.columns:
            cell = self.header.find(column.header, column.occurrence)
            if cell is None:
                if column.nullable and column.name not in key and column.name != d.time_column:
                    self.missing.append(column.name)
                    continue
                raise FileFormatError.at(
                    label,
                    f"required column {column.header!r} ({column.name}) is missing from the header; the header has"
                    f" {', '.join(repr(c.text) for c in self.header.cells if c.text) or 'no named cells'}",
                    line=self.header.line,
                    column=column.header or column.name,
                )
            self.positions[column.name] = cell.position - 1
            claimed.add(cell.position - 1)
        unknown = [c for c in self.header.cells if c.position - 1 not in claimed and c.text]
        if unknown and d.contract != "discard":
            names = ", ".join(repr(c.text) for c in unknown)
            hint = (
                "add them to the declaration's columns (the table gains them), or set contract: discard"
                if d.contract == "evolve"
                else "the declaration is frozen (contract: freeze); add them to it or set contract: discard"
            )
            raise FileFormatError.at(
                label, f"undeclared column(s) {names}: {hint}", line=self.header.line, column=unknown[0].text
            )
        self.discarded = [c.text for c in unknown]
        named = max([c.position for c in self.header.cells if c.text or c.position - 1 in claimed] or [0])
        self.field_count = max(len(self.header.cells), named + d.trailing_empty_columns)
        # Physical columns nobody reads must stay empty: nothing is dropped silently.
        self.must_be_empty = [
            i
            for i in range(self.field_count)
            if i not in claimed and not (i < len(self.header.cells) and self.header.cells[i].text)
        ]

    # ------------------------------------------------------------------ reading
    def batches(self, hook: BatchHook | None = None) -> Iterator[pa.RecordBatch]:
        """The file's rows as typed record batches of the declaration's table (in file order)."""
        names = [f"f{i}" for i in range(self.field_count)]
        reader_options = pacsv.ReadOptions(
            column_names=names, skip_rows=self.header.line, block_size=BLOCK_BYTES, encoding="utf8"
        )
        parse_options = pacsv.ParseOptions(delimiter=self.declaration.delimiter, newlines_in_values=True)
        convert_options = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=[names[i] for i in sorted({*self.positions.values(), *self.must_be_empty})],
        )
        first_row = 0
        try:
            reader = pacsv.open_csv(self.path, reader_options, parse_options, convert_options)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                if batch.num_rows == 0:
                    continue
                typed = self._convert(batch, first_row)
                first_row += batch.num_rows
                yield hook(typed) if hook is not None else typed
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise self._parse_error(error) from None

    def read(self, hook: BatchHook | None = None) -> ReadResult:
        schema = self.declaration.table_spec().arrow_schema
        batches = list(self.batches(hook))
        table = pa.Table.from_batches(batches, schema=batches[0].schema if batches else schema)
        return ReadResult(table, self.discarded, self.missing)

    def _parse_error(self, error: Exception) -> FileFormatError:
        """Where pyarrow's parser stopped: the first record whose field count is wrong, else its message."""
        try:
            for index, (line, fields) in enumerate(_records(self.path, self.declaration.delimiter)):
                if index <= self.declaration.skip_rows:
                    continue
                if len(fields) != self.field_count:
                    return FileFormatError.at(
                        self.label,
                        f"{len(fields)} field(s) where the header (with its declared trailing columns) has {self.field_count}",
                        line=line,
                    )
        except UnicodeDecodeError as bad:
            return FileFormatError.at(self.label, f"not UTF-8 text ({bad.reason}); save the file as UTF-8")
        except csv.Error as bad:
            return FileFormatError.at(self.label, f"not readable as CSV ({bad})")
        return FileFormatError.at(self.label, f"not readable as CSV: {str(error).splitlines()[0]}")

    def lines_of(self, rows: Sequence[int]) -> dict[int, int]:
        """The physical lines (1-based) on which data rows `rows` (0-based) start: one pass over the file."""
        wanted = sorted(set(rows))
        found: dict[int, int] = {}
        if not wanted:
            return found
        offset = self.declaration.skip_rows + 1
        for index, (line, _) in enumerate(_records(self.path, self.declaration.delimiter)):
            if index - offset == wanted[len(found)]:
                found[index - offset] = line
                if len(found) == len(wanted):
                    break
        return found | {row: self.header.line + 1 + row for row in wanted if row not in found}

    def line_of(self, row: int) -> int:
        return self.lines_of([row])[row]

    def _fail(self, row: int, column: str, reason: str) -> FileFormatError:
        return FileFormatError.at(self.label, reason, line=self.line_of(row), column=column)

    # ------------------------------------------------------------------ conversion
    def _text(self, batch: pa.RecordBatch, index: int) -> pa.Array:
        values = pc.utf8_trim(batch.column(self._physical(batch, index)), characters=SPACES)
        missing = self.declaration.missing_values
        if missing == [""]:
            return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
        return pc.if_else(
            pc.is_in(values, value_set=pa.array(missing, pa.string())), pa.scalar(None, pa.string()), values
        )

    @staticmethod
    def _physical(batch: pa.RecordBatch, index: int) -> int:
        return batch.schema.get_field_index(f"f{index}")

    def _convert(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        d = self.declaration
        for index in self.must_be_empty:
            values = pc.utf8_trim(batch.column(self._physical(batch, index)), characters=SPACES)
            filled = pc.indices_nonzero(pc.not_equal(values, ""))
            if len(filled):
                row = first_row + filled[0].as_py()
                raise self._fail(
                    row,
                    f"column_{index + 1}",
                    "a value in a column without a header, which the declaration expects empty; declare the column",
                )
        texts = {name: self._text(batch, index) for name, index in self.positions.items()}
        abbreviations = texts.get(d.timezone_abbreviation_column) if d.timezone_abbreviation_column else None
        arrays, fields = [], []
        for column in d.columns:
            if column.name in texts:
                array = self._column(column, texts[column.name], first_row, abbreviations)
            else:
                array = pa.nulls(batch.num_rows, column.arrow_type)
            arrays.append(array)
            fields.append(pa.field(column.name, column.arrow_type))
        for combined in d.combined_times:
            arrays.append(self._combined(combined, texts, first_row, abbreviations))
            fields.append(pa.field(combined.name, pa.timestamp("us", tz="UTC")))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _column(
        self, column: ColumnDeclaration, text: pa.Array, first_row: int, abbreviations: pa.Array | None
    ) -> pa.Array:
        shown = column.header or column.name
        if column.type == "text":
            return text
        if column.type == "integer":
            return self._cast(text, pa.int64(), column, first_row, "an integer")
        if column.type == "float":
            values = pc.replace_substring(text, ",", ".") if self.declaration.decimal == "," else text
            return self._cast(values, pa.float64(), column, first_row, "a number", original=text)
        if column.type == "boolean":
            lower = pc.utf8_lower(text)
            known = pc.or_(
                pc.is_in(lower, value_set=pa.array(_TRUE)), pc.is_in(lower, value_set=pa.array(_FALSE))
            )
            self._first_bad(
                pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(known, False))),
                text,
                column,
                first_row,
                "true or false",
            )
            return pc.if_else(
                pc.is_valid(lower), pc.is_in(lower, value_set=pa.array(_TRUE)), pa.scalar(None, pa.bool_())
            )
        if column.type == "date":
            parsed = self._strptime(text, column.format or "", column, first_row)
            return parsed.cast(pa.date32())
        if column.type == "timestamptz":
            if column.format in (None, ISO8601):
                no_offset = pc.and_(
                    pc.is_valid(text),
                    pc.invert(pc.fill_null(pc.match_substring_regex(text, _OFFSET.pattern), False)),
                )
                self._first_bad(
                    no_offset, text, column, first_row, "an ISO 8601 time with an offset (+01:00, +0100 or Z)"
                )
                return self._cast(
                    text, pa.timestamp("us", tz="UTC"), column, first_row, "an ISO 8601 time with an offset"
                )
            return self._strptime(text, column.format, column, first_row).cast(pa.timestamp("us", tz="UTC"))
        # timestamp: local wall clock in the declared zone
        local = self._strptime(text, column.format or "", column, first_row)
        return self._to_utc(local, shown, first_row, abbreviations)

    def _combined(
        self,
        combined: CombinedTime,
        texts: dict[str, pa.Array],
        first_row: int,
        abbreviations: pa.Array | None,
    ) -> pa.Array:
        date, time = texts[combined.date], texts[combined.time]
        joined = pc.binary_join_element_wise(date, time, " ")
        parsed, bad = parse_times(joined, combined.format)
        hits = pc.indices_nonzero(bad)
        if len(hits):
            i = hits[0].as_py()
            raise self._fail(
                first_row + i,
                f"{combined.date}+{combined.time}",
                f"{joined[i].as_py()!r} does not match {combined.format!r} (combined time {combined.name})",
            )
        return self._to_utc(parsed, combined.name, first_row, abbreviations)

    def _to_utc(
        self, local: pa.Array, shown: str, first_row: int, abbreviations: pa.Array | None
    ) -> pa.Array:
        d = self.declaration
        assert d.timezone is not None  # the declaration requires it for local times
        try:
            return to_utc(local, d.timezone, policy=d.ambiguous_times, abbreviations=abbreviations)
        except LocalTimeError as error:
            listed = error.problems[:50]
            lines = self.lines_of([first_row + problem.row for problem in listed])
            problems = [
                {"line": lines[first_row + problem.row], "column": shown, "reason": problem.reason}
                for problem in listed
            ]
            raise FileFormatError(self.label, problems) from None

    def _strptime(self, text: pa.Array, fmt: str, column: ColumnDeclaration, first_row: int) -> pa.Array:
        parsed, bad = parse_times(text, fmt)
        self._first_bad(
            bad,
            text,
            column,
            first_row,
            f"a date/time in format {fmt!r}",
        )
        return parsed

    def _cast(
        self,
        values: pa.Array,
        to: pa.DataType,
        column: ColumnDeclaration,
        first_row: int,
        what: str,
        original: pa.Array | None = None,
    ) -> pa.Array:
        try:
            return pc.cast(values, to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        low, high = 0, len(values)  # bisect to the first value that does not convert
        while high - low > 1:
            mid = (low + high) // 2
            try:
                pc.cast(values.slice(low, mid - low), to)
                low = mid
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                high = mid
        shown_values = original if original is not None else values
        raise self._fail(
            first_row + low,
            column.header or column.name,
            f"{self._value(shown_values, low, column)} is not {what} ({column.name} is declared {column.type})",
        )

    def _first_bad(
        self, bad: pa.Array, text: pa.Array, column: ColumnDeclaration, first_row: int, what: str
    ) -> None:
        hits = pc.indices_nonzero(pc.fill_null(bad, False))
        if len(hits):
            i = hits[0].as_py()
            raise self._fail(
                first_row + i, column.header or column.name, f"{self._value(text, i, column)} is not {what}"
            )

    @staticmethod
    def _value(values: pa.Array, index: int, column: ColumnDeclaration) -> str:
        return "a value (hidden: sensitive column)" if column.sensitive else repr(values[index].as_py())


def read_declared(
    path: Path, declaration: FileSourceDeclaration, *, label: str | None = None, hook: BatchHook | None = None
) -> ReadResult:
    """Read a whole file as declared (see `DeclaredCsv`)."""
    return DeclaredCsv(path, declaration, label=label).read(hook)


def sniff_text(
    path: Path, *, delimiter: str, skip_rows: int, label: str
) -> tuple[FileHeader, Iterator[pa.RecordBatch]]:
    """The header and the rows as text batches (every physical column, cleaned, missing values not applied):
    what inference reads."""
    header, _ = read_header(path, delimiter=delimiter, skip_rows=skip_rows, label=label)
    return header, _text_batches(path, header, delimiter)


def _text_batches(path: Path, header: FileHeader, delimiter: str) -> Iterator[pa.RecordBatch]:
    width = len(header.cells)
    while True:
        names = [f"f{i}" for i in range(width)]
        try:
            reader = pacsv.open_csv(
                path,
                pacsv.ReadOptions(column_names=names, skip_rows=header.line, block_size=BLOCK_BYTES),
                pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            batches = [
                pa.RecordBatch.from_arrays(
                    [pc.utf8_trim(c, characters=SPACES) for c in b.columns], names=names
                )
                for b in reader
            ]
        except pa.ArrowInvalid as error:
            wider = re.search(r"Expected \d+ columns, got (\d+)", str(error))
            if wider and int(wider.group(1)) > width:
                width = int(wider.group(1))
                continue
            raise
        yield from batches
        return


__all__ = [
    "DeclaredCsv",
    "FileHeader",
    "HeaderCell",
    "ReadResult",
    "read_declared",
    "read_header",
    "sniff_text",
]
