"""Change-data-capture merge (upsert on a natural key) inside the loader's transaction.

Merges are dominated by how many rows the server must compare and rewrite, so the usual path
diffs on the client: under `LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE` (no concurrent writer can
slip in), the target's current rows in the incoming key range are fetched as Arrow through ADBC
(binary COPY TO, read-only, on a second connection that sees exactly the locked state) and diffed
with the incoming rows (`row_diff`); only the changed rows are staged (binary COPY into a temp
table) and updated by key, and the new rows are COPYed straight into the target. The UPDATE keeps
an `IS DISTINCT FROM` guard so the server has the last word on what changed (jsonb, numeric).

Large inputs go in key-range chunks: a reader thread fetches and diffs chunk n+1 while the load's
own connection updates chunk n, so the server reads and writes on two backends at once.

The server-side path stages every incoming row instead and lets the server compare; it is used
when the client cannot read the table meanwhile (the same load altered it, so it is exclusively
locked), when the table is much larger than the incoming key range, or when ADBC is unavailable.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings
from energy_assets.warehouse.binary_copy import copy_arrow
from energy_assets.warehouse.catalog import TableInfo, describe_table
from energy_assets.warehouse.identifiers import TableName, column, column_list
from energy_assets.warehouse.keys import KeyPacker, int64_values, scalar_from_int64
from energy_assets.warehouse.pg_types import PgType
from energy_assets.warehouse.row_diff import diff_rows
from energy_assets.warehouse.scopes import any_scope_condition
from energy_assets.warehouse.timing import StepTimes

log = logging.getLogger(__name__)

STAGE_TABLE = "energy_merge_stage"
HISTORY_SUFFIX = "__history"
# Fetch the target for a client-side diff only if it is at most this many times the input's size
# (plus an allowance, so small inputs into small tables always diff on the client).
MAX_FETCH_RATIO = 3.0
FETCH_ALLOWANCE_ROWS = 50_000
# The client-side diff reads and diffs the target in key ranges of about this many input rows, so
# the server can update one range while it reads the next (two backends, two cores).
CHUNK_ROWS = 400_000
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


def open_reader(settings: PostgresSettings) -> Any:
    """A read-only ADBC connection for the client-side diff, or None if ADBC is unavailable."""
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        return None
    conn = adbc.connect(settings.uri(with_password=True))
    with conn.cursor() as cur:
        # If a session queues for an exclusive lock behind the load's lock, don't wait behind it forever.
        cur.execute("SET lock_timeout = '15s'")
    return conn


def merge_rows(
    cur: psycopg.Cursor,
    *,
    table: TableName,
    info: TableInfo,
    data: pa.Table,
    pg_types: Mapping[str, PgType],
    key: Sequence[str],
    keep_history: bool,
    load_id: uuid.UUID,
    reader: Callable[[], Any] | None,
    before_write: Callable[[], None],
    timings: StepTimes,
) -> MergeCounts:
    """Upsert `data` (conformed to the table's types) into `table`; returns what happened.

    `reader` returns an ADBC connection for the client-side diff (None: server-side diff);
    `before_write` runs before anything is written (the input's key check, done meanwhile).
    """
    job = _MergeJob(cur, table, info, data, pg_types, list(key), keep_history, load_id, before_write, timings)
    chunks = _fetch_plan(cur, table, info, data, job.key, job.values) if reader is not None else None
    connection = _connect_reader(reader, table) if chunks else None
    if connection is None:
        job.server_side(data)
        return job.counts("server-diff")
    pending = job.client_side(connection, chunks)  # type: ignore[arg-type]
    if pending is not None:  # the reader failed part-way: the server diffs what is left
        job.server_side(pending)
        return job.counts("client-diff, then server-diff")
    return job.counts("client-diff")


def _connect_reader(reader: Callable[[], Any] | None, table: TableName) -> Any:
    try:
        return reader() if reader is not None else None
    except Exception as exc:  # the client-side diff is an optimisation: fall back to the server
        log.warning("No reader connection for the merge into %s (%s); diffing on the server.", table, exc)
        return None


@dataclass
class _Chunk:
    """A key range of the input: its rows, and the query for the target's rows in that range."""

    rows: pa.Table
    query: str


class _MergeJob:
    """One merge's statements; counts accumulate over the key-range chunks."""

    def __init__(
        self,
        cur: psycopg.Cursor,
        table: TableName,
        info: TableInfo,
        data: pa.Table,
        pg_types: Mapping[str, PgType],
        key: list[str],
        keep_history: bool,
        load_id: uuid.UUID,
        before_write: Callable[[], None],
        timings: StepTimes,
    ) -> None:
        self.cur, self.table, self.info, self.data, self.pg_types = cur, table, info, data, pg_types
        self.key = key
        self.values = [c for c in data.column_names if c not in key]
        self.keep_history, self.load_id, self.timings = keep_history, load_id, timings
        self._before_write = before_write
        self._checked = False
        self.inserted = self.updated = 0
        self.packer = KeyPacker.fit(data, key)

    def counts(self, strategy: str) -> MergeCounts:
        unchanged = self.data.num_rows - self.inserted - self.updated
        return MergeCounts(self.inserted, self.updated, unchanged, strategy)

    def before_write(self) -> None:
        if not self._checked:
            self._before_write()
            self._checked = True

    def client_side(self, connection: Any, chunks: list[_Chunk]) -> pa.Table | None:
        """Write chunk by chunk while a reader thread fetches and diffs the next one.

        Returns the rows not yet merged if the reader failed (they then go the server-side way).
        """
        diffs: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read_and_diff,
            args=(connection, chunks, diffs, stop),
            name="merge-reader",
            daemon=True,
        )
        reader.start()
        _create_stage(self.cur, STAGE_TABLE, self.data.column_names, self.pg_types)
        by_index = self.info.has_index_on(self.key)
        if by_index:  # few changed rows per chunk: index lookups beat hashing the whole target
            self.cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        pending = None
        try:
            for number in range(len(chunks)):
                with self.timings.step("wait for read and diff"):
                    outcome = diffs.get()
                if outcome is None:
                    pending = pa.concat_tables([c.rows for c in chunks[number:]])
                    break
                self.before_write()
                self._write(*outcome, truncate=number > 0)
        finally:
            stop.set()
            reader.join()
        if by_index:
            self.cur.execute("RESET enable_hashjoin; RESET enable_mergejoin")
        return pending

    def _read_and_diff(
        self, connection: Any, chunks: list[_Chunk], out: queue.Queue, stop: threading.Event
    ) -> None:
        """Reader thread: per chunk, the target's current rows (ADBC) diffed with the input (`row_diff`).

        Hands over (changed, new) per chunk, or None when the client-side diff cannot go on.
        """
        for chunk in chunks:
            if stop.is_set():
                return
            outcome: tuple[pa.Table, pa.Table] | None = None
            try:
                with self.timings.step("read current rows (background)"), connection.cursor() as rc:
                    rc.execute(chunk.query)
                    current = _align(rc.fetch_arrow_table(), chunk.rows, self.table)
                if current is not None:
                    with self.timings.step("diff (background)"):
                        outcome = diff_rows(
                            chunk.rows, current, self.key, self.values, self.pg_types, self.packer
                        )
            except Exception as exc:  # the merge falls back to the server-side diff for the rest
                log.warning(
                    "Reading %s for the merge failed (%s); diffing the rest on the server.", self.table, exc
                )
            while not stop.is_set():
                try:
                    out.put(outcome, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if outcome is None:
                return

    def _write(self, changed: pa.Table, new: pa.Table, *, truncate: bool) -> None:
        if changed.num_rows:
            with self.timings.step("stage changed rows"):
                if truncate:
                    self.cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGE_TABLE)))
                copy_arrow(self.cur, sql.Identifier(STAGE_TABLE), changed, self.pg_types)
            with self.timings.step("update"):
                if self.keep_history:
                    _write_history(self.cur, self.table, STAGE_TABLE, self.key, self.values, self.load_id)
                self.updated += _update_changed(self.cur, self.table, STAGE_TABLE, self.key, self.values)
        if new.num_rows:
            with self.timings.step("insert new rows"):
                self.inserted += copy_arrow(self.cur, self.table.sql(), new, self.pg_types)

    def server_side(self, rows: pa.Table) -> None:
        """Stage every row and let the server compare (no client-side read of the target)."""
        cur, stage = self.cur, STAGE_TABLE + "_all"
        with self.timings.step("stage all rows"):
            _create_stage(cur, stage, rows.column_names, self.pg_types)
            copy_arrow(cur, sql.Identifier(stage), rows, self.pg_types)
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(stage)))
        self.before_write()
        with self.timings.step("update"):
            if self.keep_history:
                _write_history(cur, self.table, stage, self.key, self.values, self.load_id)
            self.updated += _update_changed(cur, self.table, stage, self.key, self.values)
        with self.timings.step("insert new rows"):
            names = rows.column_names
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM {} AS s WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})"
                ).format(
                    self.table.sql(),
                    column_list(names),
                    column_list(names, "s"),
                    sql.Identifier(stage),
                    self.table.sql(),
                    _key_match(self.key),
                )
            )
            self.inserted += cur.rowcount


# ---------------------------------------------------------------------- client-side diff
def _fetch_plan(
    cur: psycopg.Cursor, table: TableName, info: TableInfo, data: pa.Table, key: list[str], values: list[str]
) -> list[_Chunk] | None:
    """Queries for the target's rows in the incoming key range, split into chunks along the key.

    None when the server-side path is better: the range holds far more rows than the input.
    """
    conditions = []
    for name in key:
        if info.columns[name].pg_type.base in _RANGE_TYPES and data.num_rows:
            bounds = pc.min_max(data[name])
            conditions.append(
                sql.SQL("{} BETWEEN {} AND {}").format(
                    column(name), sql.Literal(bounds["min"].as_py()), sql.Literal(bounds["max"].as_py())
                )
            )
    select = sql.SQL("SELECT {} FROM {}").format(column_list([*key, *values]), table.sql())

    def query(extra: list[sql.Composable]) -> sql.Composed:
        where = conditions + extra
        return select + (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))

    explained = cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query([])).fetchone()
    assert explained is not None
    plan = explained[0]
    if plan[0]["Plan"]["Plan Rows"] > MAX_FETCH_RATIO * data.num_rows + FETCH_ALLOWANCE_ROWS:
        return None
    chunks = []
    for rows, lower, upper in _split_by_leading_key(data, info, key):
        extra: list[sql.Composable] = []
        if lower is not None:
            extra.append(sql.SQL("{} >= {}").format(column(key[0]), sql.Literal(lower)))
        if upper is not None:
            extra.append(sql.SQL("{} < {}").format(column(key[0]), sql.Literal(upper)))
        chunks.append(_Chunk(rows, query(extra).as_string(cur.connection)))
    return chunks


def _split_by_leading_key(data: pa.Table, info: TableInfo, key: list[str]) -> list[tuple[pa.Table, Any, Any]]:
    """Key ranges of about `CHUNK_ROWS` input rows each along the first key column.

    Only when an index starts with that column (so each range is read by an index scan, not by
    scanning the whole table again); otherwise one chunk.
    """
    lead = key[0]
    count = math.ceil(data.num_rows / CHUNK_ROWS)
    indexed = any(index and index[0] == lead for index in info.indexes)
    if count < 2 or not indexed or info.columns[lead].pg_type.base not in _RANGE_TYPES:
        return [(data, None, None)]
    values = data[lead]
    as_numbers = int64_values(values)
    if as_numbers is None:
        return [(data, None, None)]
    cuts = np.unique(np.quantile(as_numbers, np.linspace(0, 1, count + 1)[1:-1], method="higher"))
    bounds = [scalar_from_int64(c, values.type) for c in cuts.tolist() if c > as_numbers.min()]
    pieces = []
    for lower, upper in zip([None, *bounds], [*bounds, None], strict=True):
        if lower is None:
            mask = pc.less(values, upper)
        elif upper is None:
            mask = pc.greater_equal(values, lower)
        else:
            mask = pc.and_(pc.greater_equal(values, lower), pc.less(values, upper))
        pieces.append((data.filter(mask), _py(lower), _py(upper)))
    return pieces


def _py(value: pa.Scalar | None) -> Any:
    return None if value is None else value.as_py()


def _align(fetched: pa.Table, rows: pa.Table, table: TableName) -> pa.Table | None:
    """The fetched rows with the input's Arrow types (ADBC's may differ, e.g. numeric as text)."""
    columns = []
    for name in fetched.column_names:
        array = fetched[name]
        wanted = rows.schema.field(name).type
        if array.type != wanted:
            try:
                array = pc.cast(array, wanted)
            except pa.ArrowException:
                log.info("Column %s of %s fetched as %s; diffing on the server.", name, table, array.type)
                return None
        columns.append(array)
    return pa.Table.from_arrays(columns, names=fetched.column_names)


# ---------------------------------------------------------------------- server-side statements
def _create_stage(
    cur: psycopg.Cursor, stage: str, names: Sequence[str], pg_types: Mapping[str, PgType]
) -> None:
    definitions = [sql.SQL("{} {}").format(column(n), sql.SQL(str(pg_types[n]))) for n in names]
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            sql.Identifier(stage), sql.SQL(", ").join(definitions)
        )
    )


def _key_match(key: Sequence[str]) -> sql.Composed:
    return sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=column(k)) for k in key)


def _distinct(values: Sequence[str]) -> sql.Composable:
    if not values:
        return sql.SQL("false")
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        column_list(values, "t"), column_list(values, "s")
    )


def _update_changed(
    cur: psycopg.Cursor, table: TableName, stage: str, key: Sequence[str], values: Sequence[str]
) -> int:
    if not values:
        return 0
    assignments = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=column(v)) for v in values)
    cur.execute(
        sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND {}").format(
            table.sql(), assignments, sql.Identifier(stage), _key_match(key), _distinct(values)
        )
    )
    return cur.rowcount


# ---------------------------------------------------------------------- rows gone from the source
MISSING_KEYS_TABLE = "energy_merge_incoming_keys"


def delete_missing_rows(
    cur: psycopg.Cursor,
    *,
    table: TableName,
    data: pa.Table,
    key: Sequence[str],
    pg_types: Mapping[str, PgType],
    scopes: Sequence[Mapping[str, Any]],
    keep_history: bool,
    load_id: uuid.UUID,
) -> int:
    """Delete the target's rows inside `scopes` whose key is not in `data` (the source dropped them).

    A re-fetched day that no longer has a series must not keep the old rows. With `keep_history`, the
    deleted rows are kept in the history table first. Returns the number of rows deleted.
    """
    condition, params = any_scope_condition(scopes, alias="t")
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            sql.Identifier(MISSING_KEYS_TABLE), column_list(key), table.sql()
        )
    )
    copy_arrow(cur, sql.Identifier(MISSING_KEYS_TABLE), data.select(list(key)), pg_types)
    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(MISSING_KEYS_TABLE)))
    missing = sql.SQL("{condition} AND NOT EXISTS (SELECT 1 FROM {keys} AS s WHERE {match})").format(
        condition=condition, keys=sql.Identifier(MISSING_KEYS_TABLE), match=_key_match(key)
    )
    if keep_history:
        history, names = ensure_history_table(cur, table)
        cur.execute(
            sql.SQL(
                "INSERT INTO {} ({}, superseded_at, load_id) SELECT {}, now(), %s FROM {} AS t WHERE {}"
            ).format(history.sql(), column_list(names), column_list(names, "t"), table.sql(), missing),
            [load_id, *params],
        )
    cur.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(table.sql(), missing), params)
    deleted = cur.rowcount
    cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(MISSING_KEYS_TABLE)))
    return deleted


# ---------------------------------------------------------------------- history
def history_table(table: TableName) -> TableName:
    return table.with_suffix(HISTORY_SUFFIX)


def ensure_history_table(cur: psycopg.Cursor, table: TableName) -> tuple[TableName, list[str]]:
    """`<table>__history`: the target's columns (nullable) plus `superseded_at` and `load_id`, kept in step.

    Returns the history table and the target's column names.
    """
    target = describe_table(cur, table)
    assert target is not None
    history = history_table(table)
    existing = describe_table(cur, history)
    if existing is None:
        definitions: list[sql.Composable] = [
            sql.SQL("{} {}").format(column(n), sql.SQL(str(c.pg_type))) for n, c in target.columns.items()
        ]
        definitions += [sql.SQL("superseded_at timestamptz NOT NULL"), sql.SQL("load_id uuid NOT NULL")]
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(history.sql(), sql.SQL(", ").join(definitions)))
        return history, target.column_names
    for name, col in target.columns.items():
        present = existing.columns.get(name)
        if present is None:
            statement = sql.SQL("ALTER TABLE {} ADD COLUMN {} {}")
        elif present.pg_type != col.pg_type:
            statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}")
        else:
            continue
        cur.execute(statement.format(history.sql(), column(name), sql.SQL(str(col.pg_type))))
    return history, target.column_names


def _write_history(
    cur: psycopg.Cursor,
    table: TableName,
    stage: str,
    key: Sequence[str],
    values: Sequence[str],
    load_id: uuid.UUID,
) -> int:
    """Copy the current version of every row about to change into the history table."""
    history, names = ensure_history_table(cur, table)
    cur.execute(
        sql.SQL(
            "INSERT INTO {} ({}, superseded_at, load_id) SELECT {}, now(), %s FROM {} AS t JOIN {} AS s "
            "ON {} WHERE {}"
        ).format(
            history.sql(),
            column_list(names),
            column_list(names, "t"),
            table.sql(),
            sql.Identifier(stage),
            _key_match(key),
            _distinct(values),
        ),
        (load_id,),
    )
    return cur.rowcount
