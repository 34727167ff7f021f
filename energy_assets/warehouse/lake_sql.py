"""DuckDB SQL over lake partition files: their rows typed as the table spec says, each with its partition label.

`partition_files_sql` is how the publish path's audit reads staged candidates and how the lake comparison
reads published partitions: one scan over all the files of a run, whatever its length. Local lakes are read
by DuckDB's own Parquet reader (`read_parquet` over the file list, which opens a year of daily files in a
fraction of the time a pyarrow dataset takes); object storage goes through pyarrow datasets registered on the
connection (no DuckDB extension to download). Partition keys that are table columns are restored from the
partition mapping (not parsed from paths) and cast to the spec's type. Also here: `partition_label`, how
partitions are named in records, reports and the UI. No Dagster here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from energy_assets.warehouse.audit import PARTITION_COLUMN, quote
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.table_spec import TableSpec

# The scan's own column naming each row's file (not a name a table may use), and the glob characters
# DuckDB's `read_parquet` would expand in a local path.
FILE_COLUMN = "__lake_file"
_GLOB = re.compile(r"[*?\[\]{}]")


def partition_label(partition: Mapping[str, str]) -> str:
    """`country=de/date=2024-01-01`: how a lake partition is named in records, reports and the UI."""
    return "/".join(f"{key}={value}" for key, value in partition.items())


def partition_files_sql(
    con: duckdb.DuckDBPyConnection,
    store: ParquetStore,
    spec: TableSpec,
    files: Sequence[tuple[Mapping[str, str], str]],
    *,
    name: str = "partition_files",
) -> str:
    """A DuckDB query over `(partition, file path)` pairs: the files' columns, the partition keys that are
    table columns (typed), and `lake_partition` (the partition's label).

    Registers the relation `name` (the file -> partition mapping) on `con`; use distinct names for two
    scans on one connection. With no files, the query has the spec's columns and no rows. A table column
    or partition key named `__lake_file` or `lake_partition` is refused.
    """
    keys = _keys([partition for partition, _ in files])
    reserved = {FILE_COLUMN, PARTITION_COLUMN} & {*spec.column_names, *keys}
    if reserved:
        raise ValueError(
            f"{spec.qualified_name}: {sorted(reserved)} name the lake's own bookkeeping columns;"
            " rename the table column or partition key."
        )
    if not files:
        con.register(name, spec.empty())
        return f"SELECT *, CAST(NULL AS VARCHAR) AS {PARTITION_COLUMN} FROM {name}"
    restored = [key for key in keys if key in spec.column_names]
    mapping = pa.table(
        {
            FILE_COLUMN: [path for _, path in files],
            PARTITION_COLUMN: [partition_label(partition) for partition, _ in files],
            **{key: [partition.get(key) for partition, _ in files] for key in restored},
        }
    )
    con.register(name, mapping)
    casts = [
        f"CAST(m.{quote(key)} AS {duckdb_type(spec.column(key).arrow_type)}) AS {quote(key)}"
        for key in restored
    ]
    select = ", ".join([f"f.* EXCLUDE ({FILE_COLUMN})", *casts, f"m.{PARTITION_COLUMN}"])
    paths = [path for _, path in files]
    if store.is_local and not any(_GLOB.search(path) for path in paths):
        file_list = ", ".join(sql_text(path) for path in paths)
        scan = (
            f"read_parquet([{file_list}], filename = '{FILE_COLUMN}', union_by_name = true,"
            " hive_partitioning = false)"
        )
    else:  # object storage, or a path DuckDB would take for a glob pattern
        scan = f"({_registered_union(con, store, paths, name)})"
    return f"SELECT {select} FROM {scan} f JOIN {name} m ON f.{FILE_COLUMN} = m.{FILE_COLUMN}"


def _registered_union(
    con: duckdb.DuckDBPyConnection, store: ParquetStore, paths: Sequence[str], prefix: str
) -> str:
    """SQL over files read by pyarrow (object storage, or local paths with glob characters): each file a
    lazy dataset registered on `con`."""
    parts = []
    for index, path in enumerate(paths):
        relation = f"{prefix}_{index}"
        con.register(relation, ds.dataset([path], filesystem=store.filesystem, format="parquet"))
        parts.append(f"SELECT *, {sql_text(path)} AS {FILE_COLUMN} FROM {relation}")
    return " UNION ALL BY NAME ".join(parts)


def _keys(partitions: Sequence[Mapping[str, str]]) -> list[str]:
    """Every partition key, in first-seen order."""
    keys: list[str] = []
    for partition in partitions:
        for key in partition:
            if key not in keys:
                keys.append(key)
    return keys


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type of a partition key column (partition keys are text, dates or integers)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_date32(arrow_type):
        return "DATE"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    raise ValueError(f"Partition columns must be text, date or integer, not {arrow_type}.")


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
