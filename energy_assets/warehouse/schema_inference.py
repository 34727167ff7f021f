"""Schema inference: from Arrow data to an `InferredSchema`.

The inferred schema is the artefact written next to each raw source: per column its Arrow type, the
PostgreSQL type that holds every value seen, whether it may be NULL, and cheap statistics (null
fraction, min, max, distinct count); plus a primary key, declared or detected by uniqueness. It
serialises to stable JSON (`to_json` / `from_json`), renders DDL (`to_ddl`) and rebuilds the Arrow
schema (`arrow_schema`). Type mapping rules live in `pg_types`; loading lives in `loader`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from energy_assets.errors import DataValidationError
from energy_assets.warehouse.identifiers import TableName, check_identifier, column
from energy_assets.warehouse.keys import check_primary_key
from energy_assets.warehouse.pg_types import pg_type_for_arrow

SCHEMA_VERSION = 1
# Detection of a composite key checks at most this many column pairs against the full data.
MAX_PAIR_CHECKS = 12
_SAMPLE_ROWS = 20_000

_KEY_NAME = re.compile(r"(^|_)(id|key|code|nmi|eic|mrid|uuid)$|^id_", re.IGNORECASE)
_TIME_NAME = re.compile(r"(^|_)(start|end|time|timestamp|date|ts|datetime|interval|day|hour)$", re.IGNORECASE)


@dataclass
class ColumnStats:
    """Cheap statistics of one column; min/max are JSON-friendly (ISO strings for times, str for decimals)."""

    null_fraction: float
    min: Any = None
    max: Any = None
    distinct_estimate: int | None = None


@dataclass
class InferredColumn:
    name: str
    arrow_type: str
    pg_type: str
    nullable: bool
    stats: ColumnStats
    note: str | None = None
    # Only for nested types, whose Arrow type string cannot be parsed back reliably.
    arrow_type_ipc: str | None = None

    def to_arrow_type(self) -> pa.DataType:
        if self.arrow_type_ipc:
            return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.arrow_type_ipc))).field(0).type
        return parse_arrow_type(self.arrow_type)


@dataclass
class InferredSchema:
    """What a source's data looks like, and the PostgreSQL table that would hold it."""

    columns: list[InferredColumn]
    primary_key: list[str] = field(default_factory=list)
    primary_key_origin: str = "none"  # "declared", "detected" or "none"
    source: str = ""
    source_format: str = "arrow"
    row_count: int = 0
    version: int = SCHEMA_VERSION

    # ------------------------------------------------------------------ lookups
    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> InferredColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"Column {name!r} is not in the inferred schema of {self.source or 'this data'}.")

    def pg_types(self) -> dict[str, str]:
        return {c.name: c.pg_type for c in self.columns}

    # ------------------------------------------------------------------ renderings
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.to_arrow_type(), nullable=c.nullable) for c in self.columns])

    def to_ddl(self, table: TableName) -> str:
        """`CREATE TABLE IF NOT EXISTS` with quoted identifiers and the primary key."""
        return create_table_sql(table, self).as_string()

    def to_json(self) -> str:
        """Stable JSON (sorted keys, fixed indentation) for the inferred-schema artefact."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> InferredSchema:
        data = json.loads(text)
        columns = [InferredColumn(**{**c, "stats": ColumnStats(**c["stats"])}) for c in data.pop("columns")]
        return cls(columns=columns, **data)


def create_table_sql(
    table: TableName, schema: InferredSchema, *, fillfactor: int | None = None, primary_key: bool = True
) -> sql.Composed:
    """CREATE TABLE for `schema`; `primary_key=False` leaves the key's constraint for `add_primary_key_sql`
    (the key columns are NOT NULL either way)."""
    parts = []
    for col in schema.columns:
        not_null = sql.SQL(" NOT NULL") if not col.nullable or col.name in schema.primary_key else sql.SQL("")
        parts.append(sql.SQL("{} {}{}").format(column(col.name), sql.SQL(_safe_type(col.pg_type)), not_null))
    if schema.primary_key and primary_key:
        parts.append(
            sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(column(k) for k in schema.primary_key))
        )
    options = (
        sql.SQL(" WITH (fillfactor = {})").format(sql.Literal(int(fillfactor))) if fillfactor else sql.SQL("")
    )
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} (\n    {}\n){}").format(
        table.sql(), sql.SQL(",\n    ").join(parts), options
    )


def add_primary_key_sql(table: TableName, key: list[str]) -> sql.Composed:
    """The constraint `create_table_sql(..., primary_key=False)` left out (same name, `<table>_pkey`)."""
    return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
        table.sql(), sql.SQL(", ").join(column(k) for k in key)
    )


def _safe_type(pg_type: str) -> str:
    """Type names are ours (from `pg_types`), but a schema read from JSON is checked before it reaches SQL."""
    if not re.fullmatch(r"[a-z][a-z0-9_ ]*(\(\d+(,\d+)?\))?(\[\])?", pg_type):
        raise DataValidationError(f"{pg_type!r} is not a PostgreSQL type name the warehouse writes.")
    return pg_type


# ---------------------------------------------------------------------- inference entry points
def infer_arrow(
    table: pa.Table,
    *,
    primary_key: Sequence[str] | None = None,
    source: str = "",
    source_format: str = "arrow",
    detect_primary_key: bool = True,
    verify_primary_key: bool = True,
) -> InferredSchema:
    """Infer the schema of an Arrow table; `primary_key` is checked (non-null, unique) if given, unless
    `verify_primary_key` is False because the caller has already checked these rows (the publish audit)."""
    for name in table.column_names:
        check_identifier(name, "column")
    if len(set(table.column_names)) != len(table.column_names):
        duplicates = sorted({n for n in table.column_names if table.column_names.count(n) > 1})
        raise DataValidationError(f"{source or 'Input'}: duplicate column names {duplicates}.")
    columns = [_infer_column(table, name) for name in table.column_names]
    origin = "none"
    key: list[str] = []
    if primary_key:
        key = list(primary_key)
        if verify_primary_key:
            check_primary_key(table, key, source=source or "input")
        origin = "declared"
    elif detect_primary_key:
        key = detect_primary_key_columns(table, columns)
        origin = "detected" if key else "none"
    for col in columns:
        if col.name in key:
            col.nullable = False
    return InferredSchema(
        columns=columns,
        primary_key=key,
        primary_key_origin=origin,
        source=source,
        source_format=source_format,
        row_count=table.num_rows,
    )


# ---------------------------------------------------------------------- primary keys
def _key_candidate(col: InferredColumn) -> bool:
    return (
        col.stats.null_fraction == 0
        and col.pg_type not in ("float4", "float8", "jsonb", "bytea", "boolean")
        and not col.pg_type.startswith("numeric")
    )


def _key_score(col: InferredColumn) -> int:
    score = 0
    if _KEY_NAME.search(col.name):
        score += 4
    if col.pg_type in ("timestamptz", "timestamp", "date") or _TIME_NAME.search(col.name):
        score += 3
    if col.pg_type in ("int2", "int4", "int8", "text"):
        score += 1
    return score


def _unique(table: pa.Table, names: Sequence[str]) -> bool:
    if table.num_rows <= 1:
        return True
    groups = table.select(list(names)).group_by(list(names), use_threads=False).aggregate([])
    return groups.num_rows == table.num_rows


def detect_primary_key_columns(table: pa.Table, columns: list[InferredColumn]) -> list[str]:
    """The smallest unique set of non-null columns: one column, else a pair (bounded search).

    Candidates are ordered by how key-like they look (names like `*_id`, time columns first), and a
    pair is checked on a sample before the full data, so the search stays cheap on large inputs.
    """
    n = table.num_rows
    if n == 0:
        return []
    candidates = sorted(
        (c for c in columns if _key_candidate(c)),
        key=lambda c: (-_key_score(c), -(c.stats.distinct_estimate or 0)),
    )
    singles = [c for c in candidates if c.stats.distinct_estimate == n]
    if singles:
        return [singles[0].name]
    pairs = []
    for i, a in enumerate(candidates[:10]):
        for b in candidates[i + 1 : 10]:
            if (a.stats.distinct_estimate or 0) * (b.stats.distinct_estimate or 0) >= n:
                pairs.append((a, b))
    pairs.sort(key=lambda p: -(_key_score(p[0]) + _key_score(p[1])))
    sample = table.slice(0, _SAMPLE_ROWS)
    checked = 0
    for a, b in pairs:
        if not _unique(sample, [a.name, b.name]):
            continue
        checked += 1
        if _unique(table, [a.name, b.name]):
            # Fewer distinct values first: the usual (series, time) index order.
            ordered = sorted((a, b), key=lambda c: c.stats.distinct_estimate or 0)
            return [c.name for c in ordered]
        if checked >= MAX_PAIR_CHECKS:
            break
    return []


# ---------------------------------------------------------------------- columns and stats
def _infer_column(table: pa.Table, name: str) -> InferredColumn:
    array = table[name]
    arrow_type = array.type
    pg_type = pg_type_for_arrow(arrow_type)
    note = None
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        note = "naive timestamp (no time zone): stored as `timestamp`; convert to UTC upstream if it is an instant"
    elif pa.types.is_null(arrow_type):
        note = "every value is NULL: typed as text until real values arrive"
    elif pa.types.is_uint64(arrow_type):
        note = "uint64 exceeds int8: stored as numeric(20,0)"
    nested = pa.types.is_nested(arrow_type) or pa.types.is_dictionary(arrow_type)
    ipc = None
    if nested:
        ipc = base64.b64encode(pa.schema([pa.field(name, arrow_type)]).serialize().to_pybytes()).decode()
    return InferredColumn(
        name=name,
        arrow_type=str(arrow_type),
        pg_type=str(pg_type),
        nullable=True,
        stats=_column_stats(array),
        note=note,
        arrow_type_ipc=ipc,
    )


def _column_stats(array: pa.ChunkedArray) -> ColumnStats:
    n = len(array)
    null_fraction = round(array.null_count / n, 6) if n else 0.0
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = t.value_type
    if pa.types.is_nested(t) or pa.types.is_null(t) or n == array.null_count:
        return ColumnStats(
            null_fraction=null_fraction, distinct_estimate=0 if n == array.null_count else None
        )
    distinct = pc.count_distinct(array, mode="only_valid").as_py()
    lo = hi = None
    if not (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)):
        extremes = pc.min_max(array)
        lo, hi = _jsonable(extremes["min"].as_py()), _jsonable(extremes["max"].as_py())
    return ColumnStats(null_fraction=null_fraction, min=lo, max=hi, distinct_estimate=distinct)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------- reading helpers
# ---------------------------------------------------------------------- Arrow type strings
_SIMPLE_TYPES = {
    "null": pa.null(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "halffloat": pa.float16(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "string_view": pa.string_view(),
    "binary": pa.binary(),
    "large_binary": pa.large_binary(),
    "date32[day]": pa.date32(),
    "date64[ms]": pa.date64(),
}


def parse_arrow_type(text: str) -> pa.DataType:
    """Rebuild a non-nested Arrow type from its `str()` form (as stored in the JSON artefact)."""
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    if m := re.fullmatch(r"timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]", text):
        return pa.timestamp(m.group(1), tz=m.group(2))
    if m := re.fullmatch(r"(time32|time64|duration)\[(s|ms|us|ns)\]", text):
        return getattr(pa, m.group(1))(m.group(2))
    if m := re.fullmatch(r"decimal(32|64|128|256)\((\d+), (-?\d+)\)", text):
        return getattr(pa, f"decimal{m.group(1)}")(int(m.group(2)), int(m.group(3)))
    if m := re.fullmatch(r"fixed_size_binary\[(\d+)\]", text):
        return pa.binary(int(m.group(1)))
    raise DataValidationError(f"Cannot rebuild the Arrow type {text!r} from the inferred schema.")
