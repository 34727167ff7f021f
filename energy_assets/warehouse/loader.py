"""The warehouse loader: Arrow / Parquet into PostgreSQL by binary COPY, one transaction per load.

Dispositions:
- `append`: add the rows.
- `merge`: upsert on a natural key with counts of inserted / updated / unchanged rows, optionally
  keeping superseded versions in `<table>__history` (see `merge`).

Every load opens one connection (`energy_assets.postgres.connection.connect`, TLS verify-full by
default) and one transaction: create the table if missing, evolve its schema under the contract
(`evolution`), write the rows, log the load in `energy_meta.load_log`. If anything fails, or the
process dies mid-COPY, the server rolls the transaction back and the table is exactly as before.
Parquet files are streamed into the COPY batch by batch (append), so loading
starts before the file is decoded and memory stays flat.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
import pyarrow as pa
from psycopg import sql

from energy_assets.errors import DatabaseError, DataValidationError, EnergyAssetsError, SchemaContractError
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.warehouse.binary_copy import BATCH_ROWS, copy_arrow
from energy_assets.warehouse.catalog import TableInfo, describe_table
from energy_assets.warehouse.conform import conform_table
from energy_assets.warehouse.evolution import Contract, EvolutionPlan, apply_evolution, plan_evolution
from energy_assets.warehouse.identifiers import TableName, check_identifier
from energy_assets.warehouse.inputs import LoadInput, as_input
from energy_assets.warehouse.keys import check_primary_key
from energy_assets.warehouse.merge import delete_missing_rows, lock_for_merge, merge_rows
from energy_assets.warehouse.merge import open_reader as open_merge_reader
from energy_assets.warehouse.meta import META_SCHEMA, ensure_meta_tables, record_load
from energy_assets.warehouse.schema_inference import (
    InferredSchema,
    add_primary_key_sql,
    create_table_sql,
    infer_arrow,
)
from energy_assets.warehouse.scopes import Scope
from energy_assets.warehouse.timing import StepTimes

log = logging.getLogger(__name__)

# Tables created for merges leave room on each page, so updates can stay on the page (HOT updates).
MERGE_FILLFACTOR = 90
_MERGE_WORK_MEM = "256MB"

DataSource: TypeAlias = pa.Table | str | Path


@dataclass
class LoadResult:
    """What one load did; `timings` has the seconds per step, `strategy` how a merge diffed."""

    load_id: uuid.UUID
    table: TableName
    disposition: str
    rows_in: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    schema_changes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    strategy: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.disposition} into {self.table}: {self.rows_in} rows in, {self.inserted} inserted, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.deleted} deleted in {self.seconds:.2f}s"
        )


@dataclass
class _Options:
    """How the shared load skeleton treats one disposition."""

    schema: InferredSchema | None
    contract: Contract
    primary_key: Sequence[str] | None
    required: Sequence[str] = ()
    lock: bool = False
    fillfactor: int | None = None
    open_reader: bool = False
    read_whole: bool = False
    # Runs in the load's transaction just before COMMIT (e.g. the publish path's partition records).
    before_commit: Callable[[psycopg.Cursor, LoadResult], None] | None = None
    # A table this load creates gets its primary key after the rows are in (the body adds it).
    key_after_initial_copy: bool = False


@dataclass
class _Load:
    """State shared by the steps of one load."""

    load_id: uuid.UUID
    table: TableName
    disposition: str
    data: LoadInput
    pool: ThreadPoolExecutor
    info: TableInfo | None = None
    plan: EvolutionPlan | None = None
    not_null: frozenset[str] = frozenset()
    created: bool = False
    altered: bool = False
    # The key of a table created without its constraint (`_Options.key_after_initial_copy`), added after COPY.
    key_to_add: list[str] = field(default_factory=list)
    schema_changes: list[str] = field(default_factory=list)
    reader: Callable[[], Any] | None = None
    timings: StepTimes = field(default_factory=StepTimes)
    # Plans the schema evolution again, reading the values (after an optimistic plan failed).
    replan: Callable[[psycopg.Cursor], None] | None = None
    _rows: pa.Table | None = None

    def rows(self) -> pa.Table:
        """Every incoming row, conformed to the target's column types."""
        if self._rows is None:
            assert self.plan is not None
            with self.timings.step("conform"):
                self._rows = conform_table(
                    self.data.table,
                    self.plan.target_types,
                    table=self.table,
                    source=self.data.source,
                    not_null=self.not_null,
                    already=self.plan.conformed,
                )
        return self._rows

    def copy_into(self, cur: psycopg.Cursor, target: sql.Composable) -> int:
        """COPY every incoming row into `target`, streaming a Parquet input batch by batch.

        If the schema plan assumed that some columns' values fit (see `evolution.plan_evolution`)
        and one does not, the COPY is rolled back to a savepoint, the plan is made again with the
        values (possibly widening a column) and the rows are copied again.
        """
        assert self.plan is not None
        if self.data.is_read or self.data.num_rows == 0:
            return self._copy_whole(cur, target)
        names = list(self.plan.target_types)
        if not (self.plan.assumed and self.replan is not None):
            return copy_arrow(cur, target, self._conformed_batches(), self.plan.target_types, names)
        cur.execute("SAVEPOINT energy_copy")
        try:
            return copy_arrow(cur, target, self._conformed_batches(), self.plan.target_types, names)
        except EnergyAssetsError as exc:
            log.info("%s: %s; planning the schema again with the values.", self.table, exc)
            cur.execute("ROLLBACK TO SAVEPOINT energy_copy")
        self.replan(cur)
        return self._copy_whole(cur, target)

    def _copy_whole(self, cur: psycopg.Cursor, target: sql.Composable) -> int:
        assert self.plan is not None
        rows = self.rows()
        return copy_arrow(cur, target, rows, self.plan.target_types) if rows.num_rows else 0

    def _conformed_batches(self) -> Iterator[pa.Table]:
        assert self.plan is not None
        offset = 0
        for batch in self.data.batches(BATCH_ROWS):
            yield conform_table(
                batch,
                self.plan.target_types,
                table=self.table,
                source=self.data.source,
                not_null=self.not_null,
                already=self.plan.conformed,
                row_offset=offset,
            )
            offset += batch.num_rows


class WarehouseLoader:
    """Loads Arrow tables and Parquet files into PostgreSQL tables (see module docstring)."""

    def __init__(self, settings: PostgresSettings, *, meta_schema: str = META_SCHEMA) -> None:
        self.settings = settings
        self.meta_schema = check_identifier(meta_schema, "schema")
        self._meta_ready = False

    # ------------------------------------------------------------------ dispositions
    def append(
        self,
        table: TableName,
        data: DataSource,
        *,
        schema: InferredSchema | None = None,
        contract: Contract | str = Contract.EVOLVE,
        primary_key: Sequence[str] | None = None,
    ) -> LoadResult:
        """Add every row; creates the table (from `schema` or the data) if it is missing."""

        def body(cur: psycopg.Cursor, load: _Load) -> dict[str, Any]:
            with load.timings.step("copy"):
                return {"inserted": load.copy_into(cur, table.sql())}

        return self._load(
            table, "append", data, body, _Options(schema, Contract.parse(contract), primary_key)
        )

    def merge(
        self,
        table: TableName,
        data: DataSource,
        *,
        key: Sequence[str],
        contract: Contract | str = Contract.EVOLVE,
        keep_history: bool = False,
        schema: InferredSchema | None = None,
        fillfactor: int | None = MERGE_FILLFACTOR,
        delete_missing_in: Sequence[Scope] | None = None,
        before_commit: Callable[[psycopg.Cursor, LoadResult], None] | None = None,
        key_after_initial_copy: bool = False,
    ) -> LoadResult:
        """Upsert on the natural `key`: insert new keys, update rows whose values changed.

        With `delete_missing_in` (scopes, see `scopes`), the table's rows inside those scopes whose
        key the input no longer has are deleted too: the input is the whole truth for them (a
        re-fetched day). With `keep_history`, superseded and deleted rows go to `<table>__history`
        with `superseded_at` and `load_id`. Duplicate or NULL keys in the input raise `DataValidationError` naming them.
        A table created by a merge gets `fillfactor` (room for updates on the same page).
        `before_commit(cursor, result)` runs inside the load's transaction just before it commits, so
        bookkeeping written there commits (or rolls back) together with the rows.
        With `key_after_initial_copy`, a table this merge creates gets its rows first and its primary key
        after, in the same transaction: one sorted index build instead of a B-tree insert per row (19.4
        million BDG2 readings: COPY 11 s + key 17-19 s, against 50.3 s of COPY into the keyed table).
        """
        key = [check_identifier(k, "key column") for k in key]
        if not key:
            raise SchemaContractError(f"{table}: merge needs a key (the natural key columns).")

        def body(cur: psycopg.Cursor, load: _Load) -> dict[str, Any]:
            key_check = load.pool.submit(
                check_primary_key, load.data.table, key, source=f"{table} (from {load.data.source})"
            )
            rows = load.rows()
            if load.created:
                if not load.key_to_add:
                    key_check.result()  # a keyed table would refuse a repeated key mid-COPY, less clearly
                with load.timings.step("copy"):
                    inserted = copy_arrow(cur, table.sql(), rows, load.plan.target_types)  # type: ignore[union-attr]
                if load.key_to_add:
                    # `key_after_initial_copy`: the input's key is checked while the rows are copied (a
                    # repeated key raises here and rolls the table back), so the build does not fail on one.
                    key_check.result()
                    with load.timings.step("primary key"):
                        cur.execute(add_primary_key_sql(table, load.key_to_add))
                return {"inserted": inserted, "strategy": "initial-copy"}
            cur.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(_MERGE_WORK_MEM)))
            counts = merge_rows(
                cur,
                table=table,
                info=describe_table(cur, table) if load.altered else load.info,  # type: ignore[arg-type]
                data=rows,
                pg_types=load.plan.target_types,  # type: ignore[union-attr]
                key=key,
                keep_history=keep_history,
                load_id=load.load_id,
                # While this load holds an exclusive lock (it altered the table), nobody else can read it.
                reader=None if load.altered else load.reader,
                before_write=key_check.result,
                timings=load.timings,
            )
            deleted = 0
            if delete_missing_in:
                with load.timings.step("delete missing rows"):
                    deleted = delete_missing_rows(
                        cur,
                        table=table,
                        data=rows,
                        key=key,
                        pg_types=load.plan.target_types,  # type: ignore[union-attr]
                        scopes=delete_missing_in,
                        keep_history=keep_history,
                        load_id=load.load_id,
                    )
            return {
                "inserted": counts.inserted,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "deleted": deleted,
                "strategy": counts.strategy,
            }

        options = _Options(
            schema,
            Contract.parse(contract),
            key,
            required=key,
            lock=True,
            fillfactor=fillfactor,
            open_reader=True,
            read_whole=True,
            before_commit=before_commit,
            key_after_initial_copy=key_after_initial_copy,
        )
        return self._load(table, "merge", data, body, options)

    # ------------------------------------------------------------------ the shared load skeleton
    def _load(
        self,
        table: TableName,
        disposition: str,
        data: DataSource,
        body: Callable[[psycopg.Cursor, _Load], dict[str, Any]],
        options: _Options,
    ) -> LoadResult:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="warehouse-load") as pool:
            # Opening the input (and the merge's reader) overlaps with connecting and locking.
            reading = pool.submit(_open, data, options.read_whole)
            reader = pool.submit(open_merge_reader, self.settings) if options.open_reader else None
            load = _Load(uuid.uuid4(), table, disposition, _placeholder(data), pool=pool)
            try:
                result = self._transaction(load, reading, reader, body, options)
            finally:
                if reader is not None:
                    _close_quietly(reader)
                load.data.close()
        result.seconds = time.perf_counter() - started
        result.timings = dict(load.timings)
        log.info("%s", result.summary())
        return result

    def _transaction(
        self,
        load: _Load,
        reading: Future[LoadInput],
        reader: Future[Any] | None,
        body: Callable[[psycopg.Cursor, _Load], dict[str, Any]],
        options: _Options,
    ) -> LoadResult:
        started_at = datetime.now(timezone.utc)
        with load.timings.step("connect"):
            conn = connect(self.settings)
        with conn:
            self._ensure_meta(conn)
            try:
                with conn.cursor() as cur:
                    with load.timings.step("lock and describe"):
                        # Loads of the same table queue up instead of racing on CREATE / ALTER.
                        cur.execute(
                            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                            (f"{load.table.schema}.{load.table.name}",),
                        )
                        load.info = describe_table(cur, load.table)
                        if load.info is not None and options.lock:
                            lock_for_merge(cur, load.table)
                    with load.timings.step("open input"):
                        load.data = reading.result()
                    if reader is not None:
                        load.reader = reader.result
                    with load.timings.step("schema"):
                        # A Parquet file that will be streamed is not read just to check types.
                        streaming = options.contract is Contract.EVOLVE and not load.data.is_read
                        self._prepare(cur, load, options, check_values=not streaming)
                        load.replan = lambda c: self._replan(c, load, options)
                    counts = body(cur, load)
                    result = LoadResult(
                        load_id=load.load_id,
                        table=load.table,
                        disposition=load.disposition,
                        rows_in=load.data.num_rows,
                        inserted=counts.get("inserted", 0),
                        updated=counts.get("updated", 0),
                        unchanged=counts.get("unchanged", 0),
                        deleted=counts.get("deleted", 0),
                        schema_changes=load.schema_changes,
                        strategy=counts.get("strategy", ""),
                    )
                    self._log(cur, load, result, started_at)
                    if options.before_commit is not None:
                        options.before_commit(cur, result)
                with load.timings.step("commit"):
                    conn.commit()
            except Exception as exc:
                conn.rollback()
                self._log_failure(conn, load, started_at, exc)
                raise _translate(exc, load.table, load.data.source) from exc
        return result

    def _prepare(
        self, cur: psycopg.Cursor, load: _Load, options: _Options, *, check_values: bool = True
    ) -> None:
        """Create the table if missing, then plan and apply the schema evolution."""
        if load.info is None:
            self._create(cur, load, options)
        assert load.info is not None
        load.plan = plan_evolution(
            load.table,
            load.info,
            load.data,
            options.contract,
            source=load.data.source,
            required=options.required,
            check_values=check_values,
        )
        if load.plan.applied:
            load.altered = True
        load.schema_changes += apply_evolution(
            cur, load.table, load.plan, load.load_id, meta_schema=self.meta_schema
        )
        load.not_null = frozenset(n for n, c in load.info.columns.items() if c.not_null) | frozenset(
            options.required
        )

    def _replan(self, cur: psycopg.Cursor, load: _Load, options: _Options) -> None:
        with load.timings.step("schema"):
            load.info = describe_table(cur, load.table)
            self._prepare(cur, load, options, check_values=True)

    def _create(self, cur: psycopg.Cursor, load: _Load, options: _Options) -> None:
        table, schema = load.table, options.schema
        if schema is None:
            schema = infer_arrow(
                load.data.table,
                primary_key=options.primary_key,
                source=load.data.source,
                detect_primary_key=False,
            )
        elif options.primary_key and list(schema.primary_key) != list(options.primary_key):
            schema = dataclasses.replace(schema, primary_key=list(options.primary_key))
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(table.schema_sql()))
        defer = options.key_after_initial_copy and bool(schema.primary_key)
        cur.execute(create_table_sql(table, schema, fillfactor=options.fillfactor, primary_key=not defer))
        load.key_to_add = list(schema.primary_key) if defer else []
        load.info = describe_table(cur, table)
        load.created = load.altered = True
        load.schema_changes.append(f"create table {table}")

    # ------------------------------------------------------------------ bookkeeping
    def _ensure_meta(self, conn: psycopg.Connection) -> None:
        if not self._meta_ready:
            ensure_meta_tables(conn, self.meta_schema)
            self._meta_ready = True

    def _log(self, cur: psycopg.Cursor, load: _Load, result: LoadResult, started_at: datetime) -> None:
        record_load(
            cur,
            load_id=load.load_id,
            table=load.table,
            disposition=load.disposition,
            status="succeeded",
            source=load.data.source,
            counts=(result.rows_in, result.inserted, result.updated, result.unchanged, result.deleted),
            schema_changes=len(load.schema_changes),
            started_at=started_at,
            finished_at=datetime.now(timezone.utc),
            schema=self.meta_schema,
        )

    def _log_failure(
        self, conn: psycopg.Connection, load: _Load, started_at: datetime, exc: BaseException
    ) -> None:
        """Best effort: a failed load is logged in a transaction of its own after the rollback."""
        try:
            with conn.transaction(), conn.cursor() as cur:
                record_load(
                    cur,
                    load_id=load.load_id,
                    table=load.table,
                    disposition=load.disposition,
                    status="failed",
                    source=load.data.source,
                    counts=(load.data.num_rows, 0, 0, 0, 0),
                    schema_changes=0,
                    started_at=started_at,
                    finished_at=datetime.now(timezone.utc),
                    error=str(exc)[:2000],
                    schema=self.meta_schema,
                )
        except Exception:  # the connection may be gone; the original error matters more
            log.debug("Could not log the failed load %s", load.load_id, exc_info=True)


def _open(data: DataSource, read_whole: bool) -> LoadInput:
    source = as_input(data)
    if read_whole:
        source.table  # noqa: B018  (decode now, in the background)
    return source


def _placeholder(data: DataSource) -> LoadInput:
    """Stands in for the input until it is opened (so a failure to open it is logged with its name)."""
    name = "Arrow table" if isinstance(data, pa.Table) else str(data)
    return LoadInput(name, table=pa.table({}))


def _close_quietly(reader: Future[Any]) -> None:
    try:
        connection = reader.result()
        if connection is not None:
            connection.close()
    except Exception:  # a reader that failed to open has nothing to close
        log.debug("Closing the merge reader failed", exc_info=True)


def _translate(exc: BaseException, table: TableName, source: str) -> BaseException:
    """Domain errors pass through; database errors become `DataValidationError` / `DatabaseError`."""
    if isinstance(exc, EnergyAssetsError):
        return exc
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        diag = exc.diag
        detail = " ".join(p for p in (diag.message_primary, diag.message_detail, diag.context) if p)
        return DataValidationError(
            f"{table} (from {source}): PostgreSQL rejected the data: {detail}; nothing was loaded."
        )
    if isinstance(exc, psycopg.Error):
        return DatabaseError(
            f"{table} (from {source}): the load failed and was rolled back: {str(exc).strip()}"
        )
    return exc
