"""Table and column names, and the only way warehouse code turns them into SQL.

Every identifier reaches PostgreSQL through `psycopg.sql.Identifier`, so reserved words, mixed case,
spaces, quotes and hostile strings (`drop table x;--`) are always quoted, never interpolated.
Validation here is about what PostgreSQL can store faithfully (no NUL, at most 63 bytes: longer
names would be truncated silently), not about taste.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psycopg import sql

from energy_assets.errors import SchemaContractError

# Inside `TableName`, the method `sql` shadows the module in annotations.
_Identifier = sql.Identifier

MAX_IDENTIFIER_BYTES = 63


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if PostgreSQL can store it unchanged, else raise `SchemaContractError`."""
    if not isinstance(name, str) or name == "":
        raise SchemaContractError(f"The {what} name {name!r} is empty; give it a non-empty name.")
    if "\x00" in name:
        raise SchemaContractError(
            f"The {what} name {name!r} contains a NUL character, which PostgreSQL refuses."
        )
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise SchemaContractError(
            f"The {what} name {name!r} is longer than {MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would "
            "truncate it silently. Shorten it."
        )
    return name


def quote_for_display(name: str) -> str:
    """The name as it would appear quoted in SQL, for error messages only (never for execution)."""
    return '"' + name.replace('"', '""') + '"'


def column(name: str) -> sql.Identifier:
    """A quoted column name."""
    return sql.Identifier(check_identifier(name, "column"))


def column_list(names: Iterable[str], prefix: str | None = None) -> sql.Composed:
    """`"a", "b"` or, with a table alias, `s."a", s."b"`."""
    if prefix is None:
        return sql.SQL(", ").join(column(n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(prefix, check_identifier(n, "column")) for n in names)


@dataclass(frozen=True)
class TableName:
    """A schema-qualified table name; `.sql()` is the quoted SQL form, `str()` the readable one."""

    schema: str
    name: str

    def __post_init__(self) -> None:
        check_identifier(self.schema, "schema")
        check_identifier(self.name, "table")

    @classmethod
    def parse(cls, qualified: str, default_schema: str = "public") -> TableName:
        """`"schema.table"` or `"table"` (no quoting syntax: use the constructor for exotic names)."""
        schema, dot, name = qualified.partition(".")
        return cls(schema, name) if dot else cls(default_schema, qualified)

    def sql(self) -> _Identifier:
        return sql.Identifier(self.schema, self.name)

    def schema_sql(self) -> _Identifier:
        return sql.Identifier(self.schema)

    def with_suffix(self, suffix: str) -> TableName:
        """A sibling table in the same schema, e.g. `<table>__history`."""
        return TableName(self.schema, self.name + suffix)

    def __str__(self) -> str:
        return f"{quote_for_display(self.schema)}.{quote_for_display(self.name)}"
