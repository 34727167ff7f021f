"""The PostgreSQL column types the warehouse writes, and how they relate to Arrow types.

One table of truth for three questions: which PostgreSQL type does an Arrow type become
(`pg_type_for_arrow`), which Arrow type must a column have before it is binary-COPYed into a
PostgreSQL type (`arrow_type_for_pg`), and which type changes are safe widenings (`widening_target`).
Type names are kept in short canonical spelling (`int4`, `float8`, `timestamptz`, `numeric(12,3)`,
`varchar(20)`, `char(1)`); `PgType.parse` also understands `format_type()` spellings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

_ALIASES = {
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "real": "float4",
    "double precision": "float8",
    "bool": "boolean",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
    "character varying": "varchar",
    "character": "char",
    "bpchar": "char",
    "decimal": "numeric",
}

INTEGER_TYPES = ("int2", "int4", "int8")
FLOAT_TYPES = ("float4", "float8")
STRING_TYPES = ("text", "varchar", "char")
NESTED_TYPES = ("jsonb", "json")

_INT_MAX_DIGITS = {"int2": 5, "int4": 10, "int8": 19}


@dataclass(frozen=True)
class PgType:
    """A PostgreSQL column type: a base name plus its modifiers (`numeric(12,3)`, `varchar(20)`)."""

    base: str
    modifiers: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PgType:
        spelled = text.strip().lower()
        match = re.fullmatch(r"([a-z0-9_ ]+?)\s*(?:\(([\d,\s]+)\))?(\[\])?", spelled)
        if match is None:
            return cls(spelled)
        base = _ALIASES.get(match.group(1).strip(), match.group(1).strip())
        modifiers = tuple(int(m) for m in match.group(2).split(",")) if match.group(2) else ()
        if match.group(3):
            base += "[]"
        if base in ("timestamptz", "timestamp", "time") and modifiers == (6,):
            modifiers = ()
        return cls(base, modifiers)

    def __str__(self) -> str:
        if not self.modifiers:
            return self.base
        return f"{self.base}({','.join(str(m) for m in self.modifiers)})"

    @property
    def is_integer(self) -> bool:
        return self.base in INTEGER_TYPES

    @property
    def is_string(self) -> bool:
        return self.base in STRING_TYPES


def pg_type_for_arrow(arrow_type: pa.DataType) -> PgType:
    """The PostgreSQL type that holds every value of `arrow_type` (nested values become jsonb)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        return pg_type_for_arrow(t.value_type)
    if pa.types.is_boolean(t):
        return PgType("boolean")
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return PgType("int2")
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return PgType("int4")
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return PgType("int8")
    if pa.types.is_uint64(t):
        return PgType("numeric", (20, 0))
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return PgType("float4")
    if pa.types.is_float64(t):
        return PgType("float8")
    if pa.types.is_decimal(t):
        return PgType("numeric", (t.precision, t.scale))
    if pa.types.is_date(t):
        return PgType("date")
    if pa.types.is_timestamp(t):
        return PgType("timestamptz" if t.tz is not None else "timestamp")
    if pa.types.is_time(t):
        return PgType("time")
    if pa.types.is_duration(t):
        return PgType("interval")
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return PgType("text")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return PgType("bytea")
    if pa.types.is_binary_view(t):
        return PgType("bytea")
    if pa.types.is_nested(t):
        return PgType("jsonb")
    if pa.types.is_null(t):
        return PgType("text")
    raise TypeError(f"Arrow type {t} has no PostgreSQL counterpart in the warehouse")


def arrow_type_for_pg(pg_type: PgType, incoming: pa.DataType | None = None) -> pa.DataType:
    """The Arrow type a column must have before its binary COPY into `pg_type`.

    jsonb and json are sent as JSON text (nested Arrow values are serialised first).
    """
    base = pg_type.base
    simple = {
        "boolean": pa.bool_(),
        "int2": pa.int16(),
        "int4": pa.int32(),
        "int8": pa.int64(),
        "float4": pa.float32(),
        "float8": pa.float64(),
        "date": pa.date32(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "timestamp": pa.timestamp("us"),
        "time": pa.time64("us"),
        "interval": pa.duration("us"),
        "text": pa.string(),
        "varchar": pa.string(),
        "char": pa.string(),
        "jsonb": pa.string(),
        "json": pa.string(),
        "bytea": pa.binary(),
    }
    if base in simple:
        return simple[base]
    if base == "numeric":
        if len(pg_type.modifiers) == 2 and pg_type.modifiers[0] <= 38:
            return pa.decimal128(*pg_type.modifiers)
        if len(pg_type.modifiers) == 1 and pg_type.modifiers[0] <= 38:
            return pa.decimal128(pg_type.modifiers[0], 0)
        if incoming is not None and pa.types.is_decimal(incoming) and incoming.precision <= 38:
            return pa.decimal128(incoming.precision, incoming.scale)
        return pa.decimal128(38, 10)
    raise TypeError(f"PostgreSQL type {pg_type} is not supported by the warehouse loader")


def _numeric_digits(t: PgType) -> tuple[int, int] | None:
    """(integer digits, scale) a type can hold, for integer and constrained numeric types."""
    if t.is_integer:
        return _INT_MAX_DIGITS[t.base], 0
    if t.base == "numeric" and len(t.modifiers) == 2:
        return t.modifiers[0] - t.modifiers[1], t.modifiers[1]
    if t.base == "numeric" and len(t.modifiers) == 1:
        return t.modifiers[0], 0
    return None


def holds(existing: PgType, incoming: PgType) -> bool:
    """True if every value of type `incoming` fits a column of type `existing` without loss."""
    if existing == incoming:
        return True
    e, i = existing.base, incoming.base
    if e == "numeric" and not existing.modifiers and (i == "numeric" or incoming.is_integer):
        return True
    if i in INTEGER_TYPES or i == "numeric":
        have, need = _numeric_digits(existing), _numeric_digits(incoming)
        if have is not None and need is not None:
            if existing.is_integer and incoming.is_integer:
                return INTEGER_TYPES.index(e) >= INTEGER_TYPES.index(i)
            return have[0] >= need[0] and have[1] >= need[1]
        if e == "float8" and incoming.is_integer:
            return True
    if e == "float8" and i == "float4":
        return True
    if e == "text" and incoming.is_string:
        return True
    if e == "varchar" and i == "varchar":
        return not existing.modifiers or (
            bool(incoming.modifiers) and existing.modifiers >= incoming.modifiers
        )
    return False


def widening_target(existing: PgType, incoming: PgType) -> PgType | None:
    """The type to ALTER `existing` to so it holds `incoming`, if that is a safe widening; else None.

    Safe widenings: int2 -> int4 -> int8, integers and float4 -> float8, varchar/char -> text,
    varchar(n) -> varchar(m > n), numeric(p,s) -> a numeric that holds both.
    """
    if holds(existing, incoming):
        return None
    e, i = existing.base, incoming.base
    if existing.is_integer and incoming.is_integer:
        return incoming
    if (existing.is_integer or e == "float4") and i in ("float4", "float8"):
        return PgType("float8")
    if e in ("varchar", "char") and incoming.is_string:
        if e == "varchar" and i == "varchar" and incoming.modifiers:
            return incoming
        return PgType("text")
    have, need = _numeric_digits(existing), _numeric_digits(incoming)
    if have is not None and need is not None and (e == "numeric" or i == "numeric"):
        integer_digits, scale = max(have[0], need[0]), max(have[1], need[1])
        if integer_digits + scale <= 1000:
            return PgType("numeric", (integer_digits + scale, scale))
    return None
