"""The warehouse's own bookkeeping tables in schema `energy_meta`: the load log and the schema history.

`load_log` has one row per load (successful ones written in the load's own transaction, failed ones
afterwards); `schema_history` has one row per schema change a load applied, with that load's id;
`published_partitions` has one row per lake partition the publish path published (content hash, rows,
series, load id), written in the same transaction as the rows, so it says what the lake must hold.
The DDL is idempotent and runs once per loader, in its own short transaction, under an advisory
lock so two processes creating it at the same time do not collide.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg import sql

from energy_assets.warehouse.identifiers import TableName

META_SCHEMA = "energy_meta"
_LOCK_KEY = 0x656E6D65  # "enme": serialises creation of the meta tables

_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {load_log} (
    load_id uuid PRIMARY KEY,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    disposition text NOT NULL,
    status text NOT NULL,
    source text,
    rows_in bigint,
    inserted bigint,
    updated bigint,
    unchanged bigint,
    deleted bigint,
    schema_changes integer,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    error text
);
CREATE INDEX IF NOT EXISTS load_log_table_idx ON {load_log} (table_schema, table_name, started_at);
CREATE TABLE IF NOT EXISTS {schema_history} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    change text NOT NULL,
    column_name text,
    old_type text,
    new_type text,
    load_id uuid NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schema_history_table_idx ON {schema_history} (table_schema, table_name, applied_at);
CREATE TABLE IF NOT EXISTS {published} (
    table_schema text NOT NULL,
    table_name text NOT NULL,
    lake_partition text NOT NULL,
    content_sha256 text NOT NULL,
    row_count bigint NOT NULL,
    series_count bigint NOT NULL,
    load_id uuid NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_schema, table_name, lake_partition)
);
"""


def load_log_table(schema: str = META_SCHEMA) -> TableName:
    return TableName(schema, "load_log")


def schema_history_table(schema: str = META_SCHEMA) -> TableName:
    return TableName(schema, "schema_history")


def published_partitions_table(schema: str = META_SCHEMA) -> TableName:
    """One row per published lake partition: content hash, rows, series and the load that published it."""
    return TableName(schema, "published_partitions")


def ensure_meta_tables(conn: psycopg.Connection, schema: str = META_SCHEMA) -> None:
    """Create the meta schema and tables if missing, in a transaction of their own."""
    statement = sql.SQL(_DDL).format(
        schema=sql.Identifier(schema),
        load_log=load_log_table(schema).sql(),
        schema_history=schema_history_table(schema).sql(),
        published=published_partitions_table(schema).sql(),
    )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(statement)


def record_schema_change(
    cur: psycopg.Cursor,
    table: TableName,
    *,
    change: str,
    column_name: str | None,
    old_type: str | None,
    new_type: str | None,
    load_id: uuid.UUID,
    schema: str = META_SCHEMA,
) -> None:
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (table_schema, table_name, change, column_name, old_type, new_type, load_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        ).format(schema_history_table(schema).sql()),
        (table.schema, table.name, change, column_name, old_type, new_type, load_id),
    )


def record_load(
    cur: psycopg.Cursor,
    *,
    load_id: uuid.UUID,
    table: TableName,
    disposition: str,
    status: str,
    source: str,
    counts: Sequence[int | None],
    schema_changes: int,
    started_at: datetime,
    finished_at: datetime | None,
    error: str | None = None,
    schema: str = META_SCHEMA,
) -> None:
    """One load_log row; `counts` is (rows_in, inserted, updated, unchanged, deleted)."""
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (load_id, table_schema, table_name, disposition, status, source, rows_in, "
            "inserted, updated, unchanged, deleted, schema_changes, started_at, finished_at, error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(load_log_table(schema).sql()),
        (
            load_id,
            table.schema,
            table.name,
            disposition,
            status,
            source,
            *counts,
            schema_changes,
            started_at,
            finished_at,
            error,
        ),
    )
