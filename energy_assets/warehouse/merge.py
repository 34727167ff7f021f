"""Change-data-capture merge (upsert on a natural key) inside the loader's transaction.

Merges are dominated by how many rows the server must compare and rewrite, so the usual path
diffs on the client: under `LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE` (no concurrent writer can
slip in), the target's current rows in the incoming key range are fetched as Arrow through ADBC
(binary COPY TO, read-only, on a second connection that sees exactly the locked state), DuckDB
joins them with the incoming rows, and only new and changed rows are staged (binary COPY into a
temp table). The server then updates / inserts from that small stage; the UPDATE keeps an
`IS DISTINCT FROM` guard so the server has the last word on what changed (jsonb, numeric, char(n)).

The server-side path stages every incoming row instead; it is used when the client cannot read the
table meanwhile (the same load altered it, so it is exclusively locked), when the table is much
larger than the incoming key range, or when ADBC is unavailable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings
from energy_assets.warehouse.binary_copy import copy_arrow
from energy_assets.warehouse.catalog import TableInfo, describe_table
from energy_assets.warehouse.identifiers import TableName, column, column_list
from energy_assets.warehouse.pg_types import PgType

log = logging.getLogger(__name__)

STAGE_TABLE = "energy_merge_stage"
NEW_FLAG = "__energy_is_new"
PRESENT_FLAG = "__energy_present"
HISTORY_SUFFIX = "__history"
# Fetch the target for a client-side diff only if it is at most this many times the input's size.
MAX_FETCH_RATIO = 3.0
_RANGE_TYPES = ("int2", "int4", "int8", "date", "timestamptz", "timestamp")


@dataclass(frozen=True)
class MergeCounts:
    inserted: int
    updated: int
    unchanged: int
    strategy: str


def lock_for_merge(cur: psycopg.Cursor, table: TableName) -> None:
    """Readers may continue; other writers wait until this load commits or rolls back."""
    cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table.sql()))


def merge_rows(
    cur: psycopg.Cursor,
    *,
    settings: PostgresSettings,
    table: TableName,
    info: TableInfo,
    data: pa.Table,
    pg_types: Mapping[str, PgType],
    key: Sequence[str],
    keep_history: bool,
    load_id: uuid.UUID,
    client_may_read: bool,
) -> MergeCounts:
    """Upsert `data` (conformed, unique non-null key) into `table`; returns what happened."""
    key = list(key)
    values = [c for c in data.column_names if c not in key]
    current = None
    if client_may_read:
        current = _fetch_current(cur, settings, table, info, data, key, values)
    if current is not None:
        stage = _client_diff(data, current, key, values, pg_types)
        strategy = "client-diff"
    else:
        stage = data.append_column(NEW_FLAG, pa.repeat(False, data.num_rows))
        strategy = "server-diff"
    _create_stage(cur, data.column_names, pg_types)
    copy_arrow(cur, sql.Identifier(STAGE_TABLE), stage, pg_types)
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STAGE_TABLE)))
    if keep_history:
        _write_history(cur, table, key, values, load_id)
    updated = _update_changed(cur, table, key, values)
    inserted = _insert_new(cur, table, data.column_names, key, client_classified=current is not None)
    return MergeCounts(inserted, updated, data.num_rows - inserted - updated, strategy)


# ---------------------------------------------------------------------- client-side diff
def _fetch_current(
    cur: psycopg.Cursor,
    settings: PostgresSettings,
    table: TableName,
    info: TableInfo,
    data: pa.Table,
    key: list[str],
    values: list[str],
) -> pa.Table | None:
    """The target's rows in the incoming key range, or None when the server-side path is better."""
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        return None
    conditions = []
    for name in key:
        pg_type = info.columns[name].pg_type
        if pg_type.base in _RANGE_TYPES and data.num_rows:
            bounds = pc.min_max(data[name])
            conditions.append(
                sql.SQL("{} BETWEEN {} AND {}").format(
                    column(name), sql.Literal(bounds["min"].as_py()), sql.Literal(bounds["max"].as_py())
                )
            )
    query = sql.SQL("SELECT {}, true AS {} FROM {}{}").format(
        column_list([*key, *values]),
        sql.Identifier(PRESENT_FLAG),
        table.sql(),
        sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL(""),
    )
    plan = cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query).fetchone()[0]
    estimated = plan[0]["Plan"]["Plan Rows"]
    if estimated > MAX_FETCH_RATIO * max(data.num_rows, 1) + 50_000:
        return None
    text = query.as_string(cur.connection)
    try:
        with adbc.connect(settings.uri(with_password=True)) as reader, reader.cursor() as rc:
            # If someone queues for an exclusive lock behind ours, don't wait behind them forever.
            rc.execute("SET lock_timeout = '15s'")
            rc.execute(text)
            fetched = rc.fetch_arrow_table()
    except Exception as exc:  # any failure of the optional fast path falls back to the server
        log.warning("Client-side diff of %s unavailable (%s); diffing on the server.", table, exc)
        return None
    columns = []
    for name in [*key, *values]:
        array = fetched[name]
        wanted = data.schema.field(name).type
        if array.type != wanted:
            try:
                array = pc.cast(array, wanted)
            except pa.ArrowException:
                log.info("Column %s of %s fetched as %s; diffing on the server.", name, table, array.type)
                return None
        columns.append(array)
    columns.append(fetched[PRESENT_FLAG])
    return pa.Table.from_arrays(columns, names=[*key, *values, PRESENT_FLAG])


def _duck(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _client_diff(
    data: pa.Table, current: pa.Table, key: list[str], values: list[str], pg_types: Mapping[str, PgType]
) -> pa.Table:
    """Incoming rows that are new or differ from the current row, with the `NEW_FLAG` column."""
    import duckdb

    def expr(alias: str, name: str) -> str:
        ref = f"{alias}.{_duck(name)}"
        # char(n) ignores trailing spaces; the server pads, the data may not.
        return f"rtrim({ref}, ' ')" if pg_types[name].base == "char" else ref

    on = " AND ".join(f"{expr('i', k)} = {expr('c', k)}" for k in key)
    differs = " OR ".join(f"{expr('i', v)} IS DISTINCT FROM {expr('c', v)}" for v in values) or "false"
    query = (
        f"SELECT i.*, c.{_duck(PRESENT_FLAG)} IS NULL AS {_duck(NEW_FLAG)} "
        f"FROM incoming AS i LEFT JOIN current_rows AS c ON {on} "
        f"WHERE c.{_duck(PRESENT_FLAG)} IS NULL OR {differs}"
    )
    con = duckdb.connect()
    try:
        con.register("incoming", data)
        con.register("current_rows", current)
        changed = con.sql(query).to_arrow_table()
    finally:
        con.close()
    schema = data.schema.append(pa.field(NEW_FLAG, pa.bool_()))
    return changed.cast(schema)


# ---------------------------------------------------------------------- server-side statements
def _create_stage(cur: psycopg.Cursor, names: Sequence[str], pg_types: Mapping[str, PgType]) -> None:
    definitions = [sql.SQL("{} {}").format(column(n), sql.SQL(str(pg_types[n]))) for n in names]
    definitions.append(sql.SQL("{} boolean NOT NULL").format(sql.Identifier(NEW_FLAG)))
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(STAGE_TABLE), sql.SQL(", ").join(definitions)
        )
    )


def _key_match(key: Sequence[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=column(k)) for k in key)


def _distinct(values: Sequence[str], pg_types: Mapping[str, PgType] | None = None) -> sql.Composable:
    if not values:
        return sql.SQL("false")
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        column_list(values, "t"), column_list(values, "s")
    )


def _update_changed(cur: psycopg.Cursor, table: TableName, key: Sequence[str], values: Sequence[str]) -> int:
    if not values:
        return 0
    assignments = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=column(v)) for v in values)
    cur.execute(
        sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE NOT s.{} AND {} AND {}").format(
            table.sql(),
            assignments,
            sql.Identifier(STAGE_TABLE),
            sql.Identifier(NEW_FLAG),
            _key_match(key),
            _distinct(values),
        )
    )
    return cur.rowcount


def _insert_new(
    cur: psycopg.Cursor,
    table: TableName,
    names: Sequence[str],
    key: Sequence[str],
    *,
    client_classified: bool,
) -> int:
    if client_classified:
        condition = sql.SQL("s.{}").format(sql.Identifier(NEW_FLAG))
    else:
        condition = sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
            table.sql(), _key_match(key)
        )
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE {}").format(
            table.sql(), column_list(names), column_list(names, "s"), sql.Identifier(STAGE_TABLE), condition
        )
    )
    return cur.rowcount


# ---------------------------------------------------------------------- history
def history_table(table: TableName) -> TableName:
    return table.with_suffix(HISTORY_SUFFIX)


def ensure_history_table(cur: psycopg.Cursor, table: TableName) -> TableName:
    """`<table>__history`: the target's columns (nullable) plus `superseded_at` and `load_id`, kept in step."""
    target = describe_table(cur, table)
    assert target is not None
    history = history_table(table)
    existing = describe_table(cur, history)
    if existing is None:
        definitions = [
            sql.SQL("{} {}").format(column(n), sql.SQL(str(c.pg_type))) for n, c in target.columns.items()
        ]
        definitions += [sql.SQL("superseded_at timestamptz NOT NULL"), sql.SQL("load_id uuid NOT NULL")]
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(history.sql(), sql.SQL(", ").join(definitions)))
        return history
    for name, col in target.columns.items():
        present = existing.columns.get(name)
        if present is None:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    history.sql(), column(name), sql.SQL(str(col.pg_type))
                )
            )
        elif present.pg_type != col.pg_type:
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                    history.sql(), column(name), sql.SQL(str(col.pg_type))
                )
            )
    return history


def _write_history(
    cur: psycopg.Cursor, table: TableName, key: Sequence[str], values: Sequence[str], load_id: uuid.UUID
) -> int:
    """Copy the current version of every row about to change into the history table."""
    if not values:
        return 0
    history = ensure_history_table(cur, table)
    names = describe_table(cur, table).column_names  # type: ignore[union-attr]
    cur.execute(
        sql.SQL(
            "INSERT INTO {} ({}, superseded_at, load_id) SELECT {}, now(), %s FROM {} AS t JOIN {} AS s "
            "ON {} WHERE NOT s.{} AND {}"
        ).format(
            history.sql(),
            column_list(names),
            column_list(names, "t"),
            table.sql(),
            sql.Identifier(STAGE_TABLE),
            _key_match(key),
            sql.Identifier(NEW_FLAG),
            _distinct(values),
        ),
        (load_id,),
    )
    return cur.rowcount


def first_rows(table: pa.Table, n: int = 3) -> list[dict[str, Any]]:
    return table.slice(0, n).to_pylist()
