"""Make Arrow columns match the PostgreSQL column types they are COPYed into, or say which value can't.

Binary COPY sends raw wire values, so every column must already have exactly the Arrow type that
encodes to its PostgreSQL type (`pg_types.arrow_type_for_pg`): int64 data bound for an int4 column is
cast (overflow checked), timestamps become microseconds UTC, nested values become JSON text for
jsonb, strings are checked against `varchar(n)` / `char(n)` lengths. A value that does not fit raises
`DataValidationError` naming the table, the source, the column, the row and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.errors import DataValidationError, SchemaContractError
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.pg_types import PgType, arrow_type_for_pg

_SLICE = 65_536


def _where(table: TableName, source: str, column: str) -> str:
    return f"{table}, column {column!r} (from {source})"


def conform_table(
    data: pa.Table,
    target_types: Mapping[str, PgType],
    *,
    table: TableName,
    source: str,
    not_null: frozenset[str] = frozenset(),
    already: Mapping[str, pa.ChunkedArray] | None = None,
    row_offset: int = 0,
) -> pa.Table:
    """`data` restricted to `target_types`' columns (in that order), each cast for binary COPY.

    `already` holds whole columns conformed before (while planning the schema evolution); `data`
    may be a slice of the input starting at `row_offset` (row numbers in errors count from the input).
    """
    arrays = []
    fields = []
    for name, pg_type in target_types.items():
        if already and name in already:
            array = already[name].slice(row_offset, data.num_rows)
        else:
            array = conform_column(
                data[name], pg_type, table=table, source=source, column=name, row_offset=row_offset
            )
        if name in not_null and array.null_count:
            row = pc.index(pc.is_null(array), True).as_py() + row_offset
            raise DataValidationError(
                f"{_where(table, source, name)}: NULL at row {row}, but the column is NOT NULL; "
                "nothing was loaded."
            )
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def conform_column(
    array: pa.ChunkedArray,
    pg_type: PgType,
    *,
    table: TableName,
    source: str,
    column: str,
    row_offset: int = 0,
) -> pa.ChunkedArray:
    """One column cast to the Arrow type its PostgreSQL type needs (see module docstring)."""
    where = _where(table, source, column)
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if pa.types.is_null(array.type):
        target = arrow_type_for_pg(pg_type)
        return pa.chunked_array([pa.nulls(len(array), target)], type=target)
    if pg_type.base in ("jsonb", "json"):
        return _to_json_text(array, where)
    try:
        target = arrow_type_for_pg(pg_type, array.type)
    except TypeError as exc:
        raise SchemaContractError(f"{where}: {exc}.") from exc
    if pa.types.is_nested(array.type):
        raise SchemaContractError(
            f"{where}: nested values ({array.type}) cannot go into a {pg_type} column; only jsonb holds them."
        )
    if pa.types.is_timestamp(array.type) and pa.types.is_timestamp(target):
        if (array.type.tz is None) != (target.tz is None):
            kind = "time-zone-aware" if array.type.tz else "naive"
            raise SchemaContractError(
                f"{where}: {kind} timestamps ({array.type}) cannot go into a {pg_type} column; convert them "
                "(naive local times are ambiguous around DST changes)."
            )
    if pa.types.is_floating(array.type) and (pa.types.is_integer(target) or pa.types.is_decimal(target)):
        raise SchemaContractError(
            f"{where}: floating-point values ({array.type}) cannot go into a {pg_type} column."
        )
    if pa.types.is_floating(target) and pa.types.is_floating(array.type):
        if array.type.bit_width > target.bit_width:
            raise SchemaContractError(
                f"{where}: {array.type} values would lose precision in a {pg_type} column."
            )
    if array.type != target:
        array = _checked_cast(array, target, where, pg_type, row_offset)
    if pg_type.base in ("varchar", "char") and pg_type.modifiers:
        _check_length(array, pg_type, where, row_offset)
    return array


def _checked_cast(
    array: pa.ChunkedArray, target: pa.DataType, where: str, pg_type: PgType, row_offset: int
) -> pa.ChunkedArray:
    try:
        return pc.cast(array, target, safe=True)
    except pa.ArrowNotImplementedError as exc:
        raise SchemaContractError(
            f"{where}: {array.type} data cannot be converted to the column's type {pg_type}; the schemas do not match."
        ) from exc
    except pa.ArrowInvalid:
        row, value = _first_failing_value(array, target)
        raise DataValidationError(
            f"{where}: value {value!r} at row {row + row_offset} cannot be stored as {pg_type}; nothing was loaded."
        ) from None


def _first_failing_value(array: pa.ChunkedArray, target: pa.DataType) -> tuple[int, Any]:
    flat = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    for start in range(0, len(flat), _SLICE):
        piece = flat.slice(start, _SLICE)
        try:
            pc.cast(piece, target, safe=True)
        except pa.ArrowException:
            for offset in range(len(piece)):
                try:
                    pc.cast(piece.slice(offset, 1), target, safe=True)
                except pa.ArrowException:
                    return start + offset, piece[offset].as_py()
    return -1, None


def _check_length(array: pa.ChunkedArray, pg_type: PgType, where: str, row_offset: int) -> None:
    limit = pg_type.modifiers[0]
    if len(array) == array.null_count or pc.max(pc.binary_length(array)).as_py() <= limit:
        return  # no value has more bytes than the limit allows characters
    lengths = pc.utf8_length(array)
    if pg_type.base == "char":
        # char(n) ignores trailing spaces, like PostgreSQL does.
        lengths = pc.utf8_length(pc.utf8_rtrim(array, characters=" "))
    too_long = pc.greater(lengths, limit)
    if pc.any(too_long).as_py():
        row = pc.index(too_long, True).as_py()
        raise DataValidationError(
            f"{where}: value {array[row].as_py()!r} at row {row + row_offset} is longer than {pg_type} allows; "
            "nothing was loaded."
        )


def _to_json_text(array: pa.ChunkedArray, where: str) -> pa.ChunkedArray:
    """Nested values as JSON text (DuckDB's `to_json`); strings are taken to be JSON already."""
    t = array.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(array, pa.string())
    import duckdb

    con = duckdb.connect()
    try:
        con.register("nested_values", pa.table({"v": array}))
        result = con.sql("SELECT to_json(v)::VARCHAR AS v FROM nested_values").to_arrow_table()
    except duckdb.Error as exc:
        raise SchemaContractError(f"{where}: {t} values cannot be written as JSON: {exc}") from exc
    finally:
        con.close()
    return pc.cast(result["v"], pa.string())
