"""A declaration from a whole sample file: types, key, time columns, and what the values leave open. No Dagster.

Every value of the sample is looked at (not the first rows): a column is an integer only if every value
is one (`604735H` in one row keeps the column text, and so do identifiers with leading zeros), a date
only if every value fits one format. Day-first and month-first are decided from the values (a day above
12 decides); when every value fits both, the column stays text and the ambiguity is reported, since only
the user can name the format. The natural key is proposed from the data (the smallest unique set of
non-null columns, `warehouse.schema_inference`) unless given. The written declaration holds headers,
names, types and formats, never a value of the sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import ValidationError

from energy_assets.errors import DataValidationError
from energy_assets.sources.files.declaration import (
    DEFAULT_MISSING,
    ISO8601,
    ColumnDeclaration,
    CombinedTime,
    FileSourceDeclaration,
)
from energy_assets.sources.files.errors import FileFormatError
from energy_assets.sources.files.reader import parse_times, read_declared, sniff_text
from energy_assets.warehouse.schema_inference import infer_arrow

COMPONENT_TYPE = "energy_assets.components.FileSource"
_INTEGER = r"^[+-]?(0|[1-9][0-9]*)$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_COMMA_FLOAT = r"^[+-]?[0-9]+(,[0-9]+)?$"
_OFFSET_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"
_CLOCK = r"^\d{1,2}:\d{2}(:\d{2})?$"
# (format, day-first?) : None for formats that are not ambiguous between day and month.
DATE_FORMATS: list[tuple[str, bool | None]] = [
    ("%Y-%m-%d", None),
    ("%Y/%m/%d", None),
    ("%d/%m/%Y", True),
    ("%m/%d/%Y", False),
    ("%d.%m.%Y", True),
    ("%d-%m-%Y", True),
    ("%m-%d-%Y", False),
]
CLOCK_FORMATS = ["%H:%M", "%H:%M:%S"]
DATETIME_SEPARATORS = [" ", "T"]


class InferenceError(DataValidationError):
    """The sample cannot give a declaration (binary, empty, one column, no key); one line says why."""


@dataclass
class Inferred:
    """The inferred declaration and what the user should know about it."""

    declaration: FileSourceDeclaration
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        return render_yaml(self.declaration, self.notes)


@dataclass
class _Column:
    position: int
    header: str
    occurrence: int
    name: str
    type: str = "text"
    format: str | None = None
    has_nulls: bool = False
    empty: bool = True


def infer_declaration(
    path: Path,
    name: str,
    *,
    key: Sequence[str] = (),
    time: str | None = None,
    time_name: str = "recorded_at",
    timezone: str | None = None,
    sensitive: Sequence[str] = (),
    partition: str | None = None,
    skip_rows: int = 0,
    delimiter: str = ",",
) -> Inferred:
    """Read the whole sample and propose its declaration (see the module docstring)."""
    label = path.name
    try:
        header, batches = sniff_text(path, delimiter=delimiter, skip_rows=skip_rows, label=label)
        table = pa.Table.from_batches(list(batches))
    except FileFormatError as error:
        raise InferenceError(f"{label}: cannot infer a declaration: {error}") from None
    except pa.ArrowInvalid as error:
        raise InferenceError(
            f"{label}: cannot infer a declaration: not readable as CSV ({str(error).splitlines()[0]})"
        ) from None
    if table.num_rows == 0:
        raise InferenceError(
            f"{label}: cannot infer a declaration: no rows below the header (line {header.line})."
        )
    notes: list[str] = []
    columns = _columns(header, table)
    named = [c for c in columns if not c.empty or c.header]
    if len(named) < 2:
        raise InferenceError(
            f"{label}: cannot infer a declaration: the sample reads as {len(named)} column(s); is it CSV with"
            f" {delimiter!r} between fields?"
        )
    last = max(c.position for c in named)
    trailing = len(columns) - last
    if trailing:
        notes.append(
            f"{trailing} empty trailing column(s) after the last header cell: expected empty in every file."
        )
    columns = [c for c in columns if c.position <= last]
    by_any = {c.header: c for c in columns if c.header} | {c.name: c for c in columns}
    protected = {_find(by_any, text, "--sensitive").name for text in sensitive}
    decimal = "."
    for column in columns:
        values = table.column(f"f{column.position - 1}")
        if column.name in protected:
            column.has_nulls = _nulls(values) > 0
            continue
        _infer_type(column, values, notes)
        if column.type == "float" and column.format == ",":
            decimal, column.format = ",", None
    combined: list[CombinedTime] = []
    time_column = None
    if time and "+" in time:
        date_text, clock_text = (part.strip() for part in time.split("+", 1))
        date_col, clock_col = _find(by_any, date_text, "--time"), _find(by_any, clock_text, "--time")
        if date_col.type != "date":
            raise InferenceError(
                f"{label}: --time: {date_text!r} is not a date column ({_why_not_date(date_col, notes)})."
            )
        clock_values = table.column(f"f{clock_col.position - 1}")
        clock_format = next((f for f in CLOCK_FORMATS if _all_parse(clock_values, f, "%H")), None)
        if clock_format is None or clock_col.type not in ("text", "integer"):
            raise InferenceError(
                f"{label}: --time: {clock_text!r} does not hold times of day (HH:MM or HH:MM:SS)."
            )
        clock_col.type, clock_col.format = "text", None
        combined.append(
            CombinedTime(
                name=time_name,
                date=date_col.name,
                time=clock_col.name,
                format=f"{date_col.format} {clock_format}",
            )
        )
        time_column = time_name
    elif time:
        chosen = _find(by_any, time, "--time")
        if chosen.type not in ("date", "timestamp", "timestamptz"):
            raise InferenceError(
                f"{label}: --time: {time!r} is not a date or timestamp column (inferred {chosen.type})."
            )
        time_column = chosen.name
    else:
        time_column = next((c.name for c in columns if c.type in ("timestamptz", "timestamp")), None)
    local = [c.name for c in columns if c.type == "timestamp"] + [t.name for t in combined]
    if local and timezone is None:
        timezone = "UTC"
        notes.append(
            f"{', '.join(local)} hold local times without a zone and --timezone was not given: declared UTC; set timezone."
        )
    key_columns = [_find(by_any, text, "--key").name for text in key]
    declared_columns = [
        ColumnDeclaration(
            name=c.name,
            header=c.header,
            occurrence=c.occurrence,
            type=c.type,  # type: ignore[arg-type]
            format=None if c.format == "ambiguous" else c.format,
            sensitive=c.name in protected,
            nullable=c.name != time_column,
        )
        for c in columns
    ]
    if partition == "month" and time_column is None:
        raise InferenceError(f"{label}: --partition month needs a time column (--time).")
    chosen_partition = partition or ("month" if time_column else "none")
    base: dict[str, Any] = {
        "name": name,
        "skip_rows": skip_rows,
        "delimiter": delimiter,
        "decimal": decimal,
        "trailing_empty_columns": trailing,
        "combined_times": combined,
        "time_column": time_column,
        "partition": chosen_partition,
        "timezone": timezone,
    }
    provisional = _declaration(base, declared_columns, key_columns or [declared_columns[0].name], label)
    try:
        # Unclear local times (a DST change) are noted below; the key is proposed from the rows either way.
        lenient = provisional.model_copy(update={"ambiguous_times": "earlier"}) if local else provisional
        typed = read_declared(path, lenient, label=label).table
    except FileFormatError as error:
        raise InferenceError(
            f"{label}: the sample does not read with the inferred declaration: {error}"
        ) from None
    if local:
        try:
            read_declared(path, provisional, label=label)
        except FileFormatError as error:
            lines = ", ".join(str(p.get("line")) for p in error.problems[:10])
            notes.append(
                f"local times that a DST change makes unclear on line(s) {lines}: files with such times are refused"
                " until defs.yaml declares ambiguous_times (earlier or later) or a timezone_abbreviation_column."
            )
    if not key_columns:
        inferred = infer_arrow(typed, source=label)
        key_columns = list(inferred.primary_key)
        if not key_columns:
            raise InferenceError(
                f"{label}: no column or pair of columns is unique in the sample; name the key with --key."
            )
        notes.append(
            f"key proposed from the data: {', '.join(key_columns)} (unique and never empty in the sample)."
        )
    else:
        duplicates = typed.group_by(key_columns).aggregate([([], "count_all")])
        repeated = duplicates.filter(pc.greater(duplicates.column("count_all"), 1)).num_rows
        if repeated:
            notes.append(
                f"--key {', '.join(key_columns)} repeats in {repeated} group(s) of the sample: files like it will be refused."
            )
    declaration = _declaration(base, declared_columns, key_columns, label)
    key_set = set(key_columns) | ({time_column} if time_column else set())
    declaration = declaration.model_copy(
        update={
            "columns": [c.model_copy(update={"nullable": c.name not in key_set}) for c in declaration.columns]
        }
    )
    return Inferred(FileSourceDeclaration.model_validate(declaration.model_dump()), notes)


def _declaration(
    base: dict[str, Any], columns: list[ColumnDeclaration], key: list[str], label: str
) -> FileSourceDeclaration:
    try:
        return FileSourceDeclaration(**base, columns=columns, key=key)
    except ValidationError as error:
        reason = "; ".join(str(problem["msg"]).removeprefix("Value error, ") for problem in error.errors())
        raise InferenceError(f"{label}: cannot infer a declaration: {reason}") from None


def _columns(header: Any, table: pa.Table) -> list[_Column]:
    columns = []
    for index in range(table.num_columns):
        values = table.column(index)
        empty = bool(pc.all(pc.equal(values, "")).as_py()) if len(values) else True
        if index < len(header.cells):
            cell = header.cells[index]
            columns.append(_Column(cell.position, cell.text, cell.occurrence, cell.name, empty=empty))
        else:
            occurrence = sum(1 for c in columns if c.header == "") + 1
            columns.append(_Column(index + 1, "", occurrence, f"column_{index + 1}", empty=empty))
    return columns


def _find(columns: dict[str, _Column], text: str, option: str) -> _Column:
    found = columns.get(text.strip())
    if found is None:
        known = ", ".join(sorted(repr(k) for k in columns))
        raise InferenceError(
            f"{option}: {text!r} is neither a header of the sample nor its snake_case name ({known})."
        )
    return found


def _present(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return values.filter(pc.invert(pc.is_in(values, value_set=pa.array(DEFAULT_MISSING, pa.string()))))


def _nulls(values: pa.ChunkedArray) -> int:
    return len(values) - len(_present(values))


def _all_match(values: pa.ChunkedArray, pattern: str) -> bool:
    return len(values) > 0 and bool(pc.all(pc.match_substring_regex(values, pattern)).as_py())


def _all_parse(values: pa.ChunkedArray, fmt: str, _: str = "") -> bool:
    present = _present(values)
    if len(present) == 0:
        return False
    _, bad = parse_times(present, fmt)
    return not bool(pc.any(bad).as_py())


def _infer_type(column: _Column, values: pa.ChunkedArray, notes: list[str]) -> None:
    present = _present(values)
    column.has_nulls = len(present) < len(values)
    if len(present) == 0:
        return
    if _all_match(present, _INTEGER):
        try:
            pc.cast(present, pa.int64())
            column.type = "integer"
            return
        except pa.ArrowInvalid:
            return
    if _all_match(present, _FLOAT):
        column.type = "float"
        return
    if _all_match(present, _COMMA_FLOAT) and bool(pc.any(pc.match_substring(present, ",")).as_py()):
        column.type, column.format = "float", ","
        return
    lower = pc.utf8_lower(present)
    if bool(pc.all(pc.is_in(lower, value_set=pa.array(["true", "false"]))).as_py()):
        column.type = "boolean"
        return
    if _all_match(present, _OFFSET_TIME):
        column.type, column.format = "timestamptz", ISO8601
        return
    for kind, formats in (("date", [(f, d) for f, d in DATE_FORMATS]), ("timestamp", _datetime_formats())):
        fitting = [(fmt, day_first) for fmt, day_first in formats if _all_parse(present, fmt)]
        if not fitting:
            continue
        orders = {day_first for _, day_first in fitting}
        if None in orders or len(orders) == 1:
            column.type, column.format = kind, fitting[0][0]
            return
        column.type = "text"
        column.format = "ambiguous"
        notes.append(
            f"{column.header or column.name}: every value fits both day-first ({_first(fitting, True)}) and month-first"
            f" ({_first(fitting, False)}); kept as text. Set type: {kind} and the format in defs.yaml."
        )
        return


def _first(fitting: list[tuple[str, bool | None]], day_first: bool) -> str:
    return next(fmt for fmt, order in fitting if order is day_first)


def _datetime_formats() -> list[tuple[str, bool | None]]:
    return [
        (f"{date}{separator}{clock}", day_first)
        for date, day_first in DATE_FORMATS
        for separator in DATETIME_SEPARATORS
        for clock in CLOCK_FORMATS
    ]


def _why_not_date(column: _Column, notes: list[str]) -> str:
    if column.format == "ambiguous":
        column.format = None
        return "its values fit both day-first and month-first; declare its format by hand"
    return f"inferred {column.type}"


def render_yaml(declaration: FileSourceDeclaration, notes: Sequence[str] = ()) -> str:
    """The `defs.yaml` of a declaration (defaults left out), with the inference notes as comments."""
    attributes = declaration.model_dump(mode="json", exclude_defaults=True)
    attributes = {"name": declaration.name, **attributes}
    attributes["key"] = list(declaration.key)
    columns = []
    for column in declaration.columns:
        item = column.model_dump(mode="json", exclude_defaults=True)
        item = {"name": column.name, "header": column.header, **item}
        columns.append(item)
    attributes["columns"] = columns
    text = "# Written by `energy-assets source add` from a sample file; edit freely (types, rules, marts).\n"
    text += "".join(f"# note: {note}\n" for note in notes)
    text += yaml.safe_dump(
        {"type": COMPONENT_TYPE, "attributes": attributes}, sort_keys=False, allow_unicode=True, width=120
    )
    return text


__all__ = ["InferenceError", "Inferred", "infer_declaration", "render_yaml"]
