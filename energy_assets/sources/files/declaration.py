"""What a file source declares: its files, its one table, its rules and marts. No Dagster here.

A declaration is plain data (pydantic): the `FileSource` component is this model plus Dagster's
component plumbing, `energy-assets source add` writes one from a sample, and the reader, the rules and
the ingest read it. Validation errors are `ValueError`s naming the attribute, so a `defs.yaml` that does
not fit is refused with its file, line and attribute.

Columns are matched to the file by the header as written (`header`, and `occurrence` for a header that
appears more than once); `name` is the PostgreSQL-safe snake_case column. Types: `text`, `integer`,
`float`, `boolean`, `date` (with `format`), `timestamp` (local wall-clock time in `timezone`, stored as
UTC), `timestamptz` (written with an offset or `Z`; `format` `ISO8601` or a strptime format with `%z`).
A `combined_times` entry joins a date column and a time column into one UTC instant; the source columns
stay as they are.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from energy_assets.warehouse.table_spec import UTC_TIMESTAMP, ColumnSpec, TableSpec

SOURCE_NAME_PATTERN = r"[a-z][a-z0-9_]{0,40}"
COLUMN_NAME_PATTERN = r"[a-z_][a-z0-9_]{0,62}"
RECORDS_TABLE = "records"
ISO8601 = "ISO8601"
DEFAULT_MISSING = ["", "NA", "N/A", "NULL", "null"]
ColumnType = Literal["text", "integer", "float", "boolean", "date", "timestamp", "timestamptz"]
ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": UTC_TIMESTAMP,
    "timestamptz": UTC_TIMESTAMP,
}
TIME_TYPES = frozenset({"timestamp", "timestamptz"})
# PostgreSQL words a column may not be named (they would need quoting everywhere a user writes SQL).
_RESERVED = frozenset(
    {"select", "from", "where", "table", "order", "group", "user", "limit", "lake_partition"}
)


def valid_column_name(name: str, attribute: str = "name") -> str:
    if not re.fullmatch(COLUMN_NAME_PATTERN, name) or name in _RESERVED:
        raise ValueError(
            f"{attribute}: {name!r} is not a column name; use lower-case snake_case (pattern {COLUMN_NAME_PATTERN}),"
            " not a SQL keyword."
        )
    return name


def snake_case(header: str, position: int) -> str:
    """The PostgreSQL-safe name of a header (`Start Date` -> `start_date`); `column_<position>` if none."""
    text = header.replace("\u00a0", " ").strip().lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text:
        return f"column_{position}"
    if text[0].isdigit():
        text = f"c_{text}"
    if text in _RESERVED:
        text = f"{text}_value"
    return text[:63]


class ColumnDeclaration(BaseModel):
    """One column of the table: where it comes from in the file, its type and its rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in PostgreSQL and the lake (snake_case).")
    header: str = Field(description="The header cell as written in the file ('' for an empty header cell).")
    occurrence: int = Field(default=1, description="Which copy of a repeated header (1: the first).")
    type: ColumnType = Field(
        default="text", description="text, integer, float, boolean, date, timestamp, timestamptz."
    )
    format: str | None = Field(
        default=None, description="strptime format of date/timestamp columns (ISO8601 for timestamptz)."
    )
    nullable: bool = Field(
        default=True, description="Empty values allowed (false: an audit rule refuses them)."
    )
    sensitive: bool = Field(
        default=False, description="Personal data: stored only as a keyed pseudonym plus an encrypted token."
    )
    description: str = Field(default="", description="What the column means.")
    unit: str | None = Field(default=None, description="Unit of the values (kWh, EUR, ...).")
    minimum: float | None = Field(default=None, description="Inclusive lower bound (audit rule).")
    maximum: float | None = Field(default=None, description="Inclusive upper bound (audit rule).")
    allowed: list[str] | None = Field(default=None, description="The only values allowed (audit rule).")
    pattern: str | None = Field(
        default=None, description="Regular expression every value matches (audit rule)."
    )
    unique: bool = Field(default=False, description="No two rows share a value (audit rule).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return valid_column_name(value)

    @field_validator("occurrence")
    @classmethod
    def _occurrence(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"occurrence: {value} is not a copy number; 1 is the first copy of a header.")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern: {value!r} is not a regular expression ({error}).") from None
        return value

    @model_validator(mode="after")
    def _format(self) -> ColumnDeclaration:
        if self.type in ("date", "timestamp") and not self.format:
            raise ValueError(
                f"column {self.name}: a {self.type} column needs `format` (e.g. '%d/%m/%Y'); when day-first and"
                " month-first both fit the values, only you can say which one the file uses."
            )
        if self.format and self.format != ISO8601 and "%" not in self.format:
            raise ValueError(
                f"column {self.name}: format {self.format!r} is not a strptime format (e.g. '%Y-%m-%d')."
            )
        if self.sensitive and self.type != "text":
            raise ValueError(f"column {self.name}: a sensitive column is text (its pseudonym is stored).")
        return self

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]


class CombinedTime(BaseModel):
    """A date column and a time column read together as one local instant, stored as UTC."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the combined timestamptz column.")
    date: str = Field(description="Name of the date column.")
    time: str = Field(description="Name of the time column (text such as 08:33).")
    format: str = Field(description="strptime format of '<date> <time>', e.g. '%d/%m/%Y %H:%M'.")
    nullable: bool = Field(default=False, description="Rows without a date or time allowed.")
    description: str = Field(default="", description="What the instant means.")

    @field_validator("name", "date", "time")
    @classmethod
    def _names(cls, value: str) -> str:
        return valid_column_name(value)


class MartDeclaration(BaseModel):
    """A table computed with DuckDB SQL over the source's table (`records`), published to marts.<name>."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Mart table name (marts.<name>).")
    sql: str = Field(description="DuckDB SELECT over the relation `records`.")
    key: list[str] = Field(description="Columns that identify a row of the mart.")
    description: str = Field(default="", description="What the mart holds.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return valid_column_name(value)


class FileSourceDeclaration(BaseModel):
    """A source of users' files: where they arrive, how they are read, and the one table they feed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description=f"Source name: asset prefix, PostgreSQL schema, inbox folder ({SOURCE_NAME_PATTERN})."
    )
    description: str = Field(default="", description="What the files are.")
    inbox: str | None = Field(
        default=None,
        description="Inbox folder (processed/ and quarantine/ inside); empty: <data home>/inbox/<name>.",
    )
    format: Literal["csv"] = Field(default="csv", description="File format (csv).")
    delimiter: str = Field(default=",", description="Field separator.")
    encoding: Literal["utf-8"] = Field(default="utf-8", description="Text encoding (a UTF-8 BOM is skipped).")
    skip_rows: int = Field(default=0, description="Preamble lines before the header.")
    decimal: Literal[".", ","] = Field(default=".", description="Decimal separator of float columns.")
    missing_values: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MISSING), description="Spellings of a missing value."
    )
    contract: Literal["evolve", "freeze", "discard"] = Field(
        default="freeze",
        description="A column in a file that is not declared: freeze refuses the file, discard drops the column,"
        " evolve refuses it naming the column to add to this declaration.",
    )
    trailing_empty_columns: int = Field(
        default=0, description="Empty fields after the last header cell on every row (must stay empty)."
    )
    columns: list[ColumnDeclaration] = Field(description="The table's columns, from the file's headers.")
    combined_times: list[CombinedTime] = Field(
        default_factory=list, description="Date + time columns read as one instant."
    )
    key: list[str] = Field(
        description="Natural key: a re-sent row with the same key updates the earlier one."
    )
    time_column: str | None = Field(default=None, description="The column that places a row in time.")
    partition: Literal["month", "none"] = Field(
        default="none", description="Lake partitions: month of time_column, or none."
    )
    timezone: str | None = Field(
        default=None, description="IANA zone of local wall-clock times (timestamp columns)."
    )
    ambiguous_times: Literal["refuse", "earlier", "later"] = Field(
        default="refuse",
        description="Local times that occur twice or never (DST changes): refuse the file, or take the earlier or later instant.",
    )
    timezone_abbreviation_column: str | None = Field(
        default=None,
        description="A column holding the zone abbreviation (BST/GMT) that decides ambiguous times.",
    )
    marts: list[MartDeclaration] = Field(default_factory=list, description="Marts computed from the table.")

    @field_validator("name")
    @classmethod
    def _source_name(cls, value: str) -> str:
        if not re.fullmatch(SOURCE_NAME_PATTERN, value):
            raise ValueError(
                f"name: {value!r} is not a source name; use lower-case letters, digits and _ ({SOURCE_NAME_PATTERN})."
            )
        return value

    @field_validator("skip_rows", "trailing_empty_columns")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"{value} is negative; give a number of lines or columns (0 or more).")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in '\r\n"':
            raise ValueError(f"delimiter: {value!r} is not one character (',' ';' or a tab).")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"timezone: {value!r} is not an IANA time zone (e.g. Europe/London)."
                ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FileSourceDeclaration:
        names = [c.name for c in self.columns] + [t.name for t in self.combined_times]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns: {', '.join(repeated)} declared twice; give each column its own name.")
        headers = [(c.header, c.occurrence) for c in self.columns]
        if len(set(headers)) != len(headers):
            raise ValueError("columns: two columns read the same header and occurrence.")
        by_name = {c.name: c for c in self.columns}
        if not self.key:
            raise ValueError("key: declare the natural key (the columns that identify a row).")
        for name in self.key:
            if name not in names:
                raise ValueError(f"key: {name!r} is not a declared column.")
        for combined in self.combined_times:
            for part in (combined.date, combined.time):
                if part not in by_name:
                    raise ValueError(f"combined_times.{combined.name}: {part!r} is not a declared column.")
        local = [c.name for c in self.columns if c.type == "timestamp"] + [
            t.name for t in self.combined_times
        ]
        if local and self.timezone is None:
            raise ValueError(
                f"timezone: {', '.join(local)} hold local wall-clock times; declare their IANA time zone."
            )
        if self.time_column is not None:
            time_types = {c.name: c.type for c in self.columns} | {
                t.name: "timestamp" for t in self.combined_times
            }
            if time_types.get(self.time_column) not in ("timestamp", "timestamptz", "date"):
                raise ValueError(
                    f"time_column: {self.time_column!r} is not a declared date or timestamp column."
                )
        if self.partition == "month" and self.time_column is None:
            raise ValueError("partition: month needs time_column (the column whose month places a row).")
        nullable = {c.name: c.nullable for c in self.columns} | {
            t.name: t.nullable for t in self.combined_times
        }
        if self.partition == "month" and self.time_column is not None and nullable.get(self.time_column):
            raise ValueError(
                f"partition: month places rows by {self.time_column}; declare it nullable: false."
            )
        if self.timezone_abbreviation_column is not None and self.timezone_abbreviation_column not in by_name:
            raise ValueError(
                f"timezone_abbreviation_column: {self.timezone_abbreviation_column!r} is not a declared column."
            )
        marts = [m.name for m in self.marts]
        if len(set(marts)) != len(marts):
            raise ValueError("marts: two marts share a name.")
        return self

    # ------------------------------------------------------------------ derived
    @property
    def sensitive_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.sensitive]

    def column_specs(self) -> tuple[ColumnSpec, ...]:
        key = set(self.key)
        specs = [
            ColumnSpec(
                c.name,
                c.arrow_type,
                _describe(c.description, c.header, c.sensitive),
                nullable=c.nullable and c.name not in key,
                unit=c.unit,
                minimum=c.minimum,
                maximum=c.maximum,
            )
            for c in self.columns
        ]
        specs += [
            ColumnSpec(
                t.name,
                UTC_TIMESTAMP,
                t.description or f"{t.date} + {t.time} read in {self.timezone}, as UTC",
                nullable=t.nullable and t.name not in key,
            )
            for t in self.combined_times
        ]
        return tuple(specs)

    def table_spec(self) -> TableSpec:
        """The source's table `<name>.records` (lake `<name>/records`)."""
        return TableSpec(
            schema=self.name,
            name=RECORDS_TABLE,
            description=self.description or f"Rows of the {self.name} files.",
            columns=self.column_specs(),
            primary_key=tuple(self.key),
            # A first file may hold millions of rows: COPY them, then build the key (see WarehouseLoader.merge).
            key_after_initial_copy=True,
        )


def _describe(description: str, header: str, sensitive: bool) -> str:
    origin = f"from header {header!r}" if header else "from an unnamed column"
    protected = "; a keyed pseudonym (HMAC-SHA256), the value is encrypted elsewhere" if sensitive else ""
    return (
        f"{description} ({origin}{protected})"
        if description
        else f"{origin[0].upper()}{origin[1:]}{protected}."
    )
