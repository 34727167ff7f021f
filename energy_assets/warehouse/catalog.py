"""What PostgreSQL says about an existing table: its columns, types, nullability and primary key.

Read from `pg_catalog` in two small queries, so the loader and the schema evolution compare incoming
data with the table as it is now (inside the load's transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.pg_types import PgType

_COLUMNS = """
SELECT c.oid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       c.reltuples::float8, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s AND c.relname = %s
ORDER BY a.attnum
"""

_PRIMARY_KEY = """
SELECT a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""

_INDEXES = """
SELECT array_agg(a.attname ORDER BY k.ord)
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisvalid
GROUP BY i.indexrelid
"""


@dataclass(frozen=True)
class ExistingColumn:
    name: str
    pg_type: PgType
    not_null: bool
    has_default: bool


@dataclass
class TableInfo:
    """A table as the catalog describes it."""

    table: TableName
    oid: int
    columns: dict[str, ExistingColumn] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    indexes: list[list[str]] = field(default_factory=list)
    estimated_rows: float = -1.0

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def has_index_on(self, key: list[str]) -> bool:
        """True if some index starts with exactly the `key` columns (in any order)."""
        return any(set(index[: len(key)]) == set(key) for index in self.indexes)

    def types(self) -> dict[str, PgType]:
        return {name: col.pg_type for name, col in self.columns.items()}


def describe_table(cur: psycopg.Cursor, table: TableName) -> TableInfo | None:
    """The table's columns and primary key, or None if it does not exist."""
    rows = cur.execute(_COLUMNS, (table.schema, table.name)).fetchall()
    if not rows:
        return None
    oid, _, _, _, _, reltuples, relkind = rows[0]
    if relkind not in ("r", "p"):
        raise psycopg.ProgrammingError(
            f"{table} is not a table (relkind {relkind!r}); the warehouse loads tables."
        )
    info = TableInfo(table=table, oid=oid, estimated_rows=reltuples)
    for _, name, type_text, not_null, has_default, _, _ in rows:
        if name is not None:
            info.columns[name] = ExistingColumn(name, PgType.parse(type_text), not_null, has_default)
    info.primary_key = [r[0] for r in cur.execute(_PRIMARY_KEY, (oid,)).fetchall()]
    info.indexes = [list(r[0]) for r in cur.execute(_INDEXES, (oid,)).fetchall()]
    return info
