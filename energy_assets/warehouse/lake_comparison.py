"""Lake versus PostgreSQL: do the published lake partitions hold what PostgreSQL holds? No Dagster here.

`compare_lake_with_postgres` computes the same aggregates on both sides, per lake partition and column:
row count, and per column its non-NULL count and its sum (numbers, times as epoch seconds, dates as days)
or total byte length and min/max (text). PostgreSQL groups its rows into the partitions itself (equality
columns, and `width_bucket` over the sorted bounds of the range column), so one query answers for a year
of daily partitions without sending the rows; the lake side is one DuckDB query over the partitions' files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.warehouse.audit import PARTITION_COLUMN, quote
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.lake_sql import partition_files_sql, partition_label
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.scopes import Scope, any_scope_condition, coalesce_scopes
from energy_assets.warehouse.table_spec import TableSpec


@dataclass
class PartitionComparison:
    """One lake partition against PostgreSQL's rows in its scope: row counts and the columns that differ."""

    label: str
    lake_rows: int
    postgres_rows: int
    differing_columns: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.differing_columns and self.lake_rows == self.postgres_rows


@dataclass
class LakeComparison:
    """The lake's partitions compared with PostgreSQL, column by column (counts, sums, lengths, min/max).

    `postgres_only_rows` counts rows PostgreSQL holds inside the compared scopes that belong to none of
    the lake partitions compared.
    """

    table: str
    partitions: list[PartitionComparison]
    postgres_only_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.postgres_only_rows == 0 and all(part.passed for part in self.partitions)

    def summary(self) -> str:
        lake_rows = sum(part.lake_rows for part in self.partitions)
        if self.passed:
            return (
                f"{lake_rows} rows in {len(self.partitions)} partition(s): the same content in the lake and"
                " PostgreSQL (row counts and every column's count, sum or length, min and max)"
            )
        bad = [part for part in self.partitions if not part.passed]
        parts = ", ".join(
            f"{part.label} (lake {part.lake_rows} rows, PostgreSQL {part.postgres_rows}"
            + (f"; differing: {', '.join(part.differing_columns)}" if part.differing_columns else "")
            + ")"
            for part in bad[:3]
        )
        extra = (
            f"; {self.postgres_only_rows} PostgreSQL row(s) in no compared lake partition"
            if self.postgres_only_rows
            else ""
        )
        return f"{self.table}: lake and PostgreSQL differ in {len(bad)} partition(s): {parts}{extra}. Re-run the partitions."


def compare_lake_with_postgres(
    settings: PostgresSettings,
    store: ParquetStore,
    spec: TableSpec,
    partitions: Sequence[tuple[Mapping[str, str], Scope]],
) -> LakeComparison:
    """Compare the lake partitions with PostgreSQL's rows in their scopes, per partition and column.

    Both sides compute the same aggregates per partition: row count, and per column its non-NULL count
    and its sum (numbers, times as epoch seconds, dates as days) or total byte length and min/max (text).
    PostgreSQL groups its rows into the partitions itself (equality columns, and `width_bucket` over the
    sorted range bounds), so one query answers for a year of partitions without sending the rows.
    """
    if not partitions:
        return LakeComparison(spec.qualified_name, [])
    aggregates = _column_aggregates(spec)
    # PostgreSQL aggregates its side while DuckDB reads the lake's (both release the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-comparison") as pool:
        from_postgres = pool.submit(_postgres_aggregates, settings, spec, partitions, aggregates)
        lake = _lake_aggregates(store, spec, partitions, aggregates)
        postgres, orphans = from_postgres.result()
    comparisons = []
    for partition, _ in partitions:
        label = partition_label(partition)
        mine, theirs = lake.get(label), postgres.get(label)
        lake_rows = int(mine[0]) if mine else 0
        postgres_rows = int(theirs[0]) if theirs else 0
        differing = []
        if lake_rows and postgres_rows and mine is not None and theirs is not None:
            for (_, column_name, _, _), a, b in zip(aggregates, mine[1:], theirs[1:], strict=True):
                if not _same(a, b) and column_name not in differing:
                    differing.append(column_name)
        comparisons.append(PartitionComparison(label, lake_rows, postgres_rows, differing))
    return LakeComparison(spec.qualified_name, comparisons, orphans)


def _column_aggregates(spec: TableSpec) -> list[tuple[str, str, str, str]]:
    """(name, column, DuckDB expression, PostgreSQL expression) of every aggregate compared."""
    result = []
    for column_spec in spec.columns:
        name, kind = column_spec.name, column_spec.arrow_type
        q, p = quote(name), sql.Identifier(name).as_string(None)
        result.append((f"{name}:count", name, f"count({q})", f"count({p})"))
        if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            result.append((f"{name}:sum", name, f"sum(CAST({q} AS DOUBLE))", f"sum({p}::float8)"))
        elif pa.types.is_integer(kind):  # exact: integer sums compare with ==
            result.append((f"{name}:sum", name, f"sum({q})", f"sum({p})"))
        elif pa.types.is_timestamp(kind):  # exact microseconds, and the range
            result.append(
                (
                    f"{name}:sum",
                    name,
                    f"sum(epoch_us({q}))",
                    f"sum((extract(epoch FROM {p}) * 1000000)::int8)",
                )
            )
            result.append((f"{name}:min", name, f"min({q})", f"min({p})"))
            result.append((f"{name}:max", name, f"max({q})", f"max({p})"))
        elif pa.types.is_date(kind):
            days = "DATE '1970-01-01'"
            result.append((f"{name}:sum", name, f"sum({q} - {days})", f"sum({p} - {days})"))
            result.append((f"{name}:min", name, f"min({q})", f"min({p})"))
            result.append((f"{name}:max", name, f"max({q})", f"max({p})"))
        elif pa.types.is_boolean(kind):
            result.append((f"{name}:sum", name, f"sum(CAST({q} AS INTEGER))", f"sum({p}::int)"))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            result.append((f"{name}:bytes", name, f"sum(strlen({q}))", f"sum(octet_length({p}))"))
            result.append((f"{name}:min", name, f"min({q})", f'min({p} COLLATE "C")'))
            result.append((f"{name}:max", name, f"max({q})", f'max({p} COLLATE "C")'))
    return result


def _lake_aggregates(
    store: ParquetStore,
    spec: TableSpec,
    partitions: Sequence[tuple[Mapping[str, str], Scope]],
    aggregates: Sequence[tuple[str, str, str, str]],
) -> dict[str, tuple[Any, ...]]:
    """The aggregates per partition of the lake files as they are now (one DuckDB scan of them all)."""
    present = [
        (partition, store.partition_path(spec.qualified_name, partition))
        for partition, _ in partitions
        if store.has_partition(spec.qualified_name, partition)
    ]
    if not present:
        return {}
    con = duckdb.connect()
    try:
        lake = partition_files_sql(con, store, spec, present, name="lake_files")
        rows = con.sql(
            f"SELECT {PARTITION_COLUMN}, count(*), {', '.join(duck for _, _, duck, _ in aggregates)}"
            f" FROM ({lake}) GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return {row[0]: tuple(row[1:]) for row in rows}


def _postgres_aggregates(
    settings: PostgresSettings,
    spec: TableSpec,
    partitions: Sequence[tuple[Mapping[str, str], Scope]],
    aggregates: Sequence[tuple[str, str, str, str]],
) -> tuple[dict[str, tuple[Any, ...]], int]:
    """Aggregates per lake partition computed by PostgreSQL, and the rows in no partition."""
    table = TableName(spec.schema, spec.name)
    scopes = [scope for _, scope in partitions]
    equal = [name for name, value in scopes[0].items() if not isinstance(value, tuple)]
    ranged = [name for name, value in scopes[0].items() if isinstance(value, tuple)]
    if len(ranged) > 1 or any(
        sorted(scope) != sorted(scopes[0])
        or any(isinstance(v, list | set | frozenset) for v in scope.values())
        for scope in scopes
    ):
        raise ValueError(f"{spec.qualified_name}: partitions' scopes must share one shape to be compared.")
    groups: list[sql.Composable] = [sql.Identifier(name) for name in equal]
    params: list[Any] = []
    bounds: dict[tuple[Any, ...], list[Any]] = {}
    if ranged:
        # Bounds per equality group: areas in different time zones have different day boundaries.
        for scope in scopes:
            bounds.setdefault(tuple(scope[name] for name in equal), []).extend(scope[ranged[0]])
        bounds = {group: sorted(set(values)) for group, values in bounds.items()}
        bucket = sql.SQL("width_bucket({}, %s)").format(sql.Identifier(ranged[0]))
        if len(bounds) == 1:
            groups.append(bucket)
            params.append(next(iter(bounds.values())))
        else:
            cases: list[sql.Composable] = []
            for group, values in bounds.items():
                match = sql.SQL(" AND ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(name)) for name in equal
                )
                cases.append(sql.SQL("WHEN {} THEN {}").format(match, bucket))
                params.extend([*group, values])
            groups.append(sql.SQL("CASE {} END").format(sql.SQL(" ").join(cases)))
    with connect(settings) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table.sql().as_string(conn),)).fetchone()
        if not exists or exists[0] is None:
            return {}, 0
        condition, where_params = any_scope_condition(coalesce_scopes(scopes))
        measures = sql.SQL(", ").join(sql.SQL(pg) for _, _, _, pg in aggregates)
        query = sql.SQL(
            "SELECT {groups}, count(*), {measures} FROM {table} WHERE {condition} GROUP BY {positions}"
        ).format(
            groups=sql.SQL(", ").join(groups),
            measures=measures,
            table=table.sql(),
            condition=condition,
            positions=sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(groups))),
        )
        rows = conn.execute(query, [*params, *where_params]).fetchall()
    labels = {}
    for partition, scope in partitions:
        group = tuple(scope[name] for name in equal)
        if ranged:
            group += (bounds[group].index(scope[ranged[0]][0]) + 1,)
        labels[group] = partition_label(partition)
    result, orphans = {}, 0
    for row in rows:
        label = labels.get(tuple(row[: len(groups)]))
        if label is None:
            orphans += int(row[len(groups)])
        else:
            result[label] = tuple(row[len(groups) :])
    return result, orphans


def _same(a: Any, b: Any) -> bool:
    """Floats within a relative 1e-9 (sums in different orders); everything else exactly (a naive time read
    from an older lake file is taken as UTC, as the loader stores it)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, datetime) and isinstance(b, datetime) and (a.tzinfo is None) != (b.tzinfo is None):
        a, b = (value if value.tzinfo else value.replace(tzinfo=timezone.utc) for value in (a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    if hasattr(a, "as_tuple") or hasattr(b, "as_tuple"):  # PostgreSQL numeric sums of integers
        return Decimal(a) == Decimal(b)
    return bool(a == b)


def cast_partition_columns(spec: TableSpec, table: pa.Table) -> pa.Table:
    """Partition key columns read as text, cast to the spec's type where the key is a table column."""
    for index, name in enumerate(table.column_names):
        if name in spec.column_names and table.schema.field(name).type != spec.column(name).arrow_type:
            table = table.set_column(index, name, table.column(name).cast(spec.column(name).arrow_type))
    return table
