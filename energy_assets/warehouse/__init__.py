"""The warehouse: raw data -> Parquet lake -> inferred schema -> PostgreSQL tables. No Dagster here.

- `parquet_store`: hive-partitioned Parquet datasets, atomic partition writes.
- `schema_inference`: `InferredSchema` from Arrow / CSV / JSON (types, stats, primary key, DDL).
- `identifiers`: `TableName` and quoting; every SQL identifier goes through `psycopg.sql`.
- `pg_types`: Arrow <-> PostgreSQL type rules and safe widenings.
- `evolution`: schema contracts (`evolve`, `freeze`, `discard_columns`) and the schema history.
- `loader`: `WarehouseLoader` (append, merge) by binary COPY in one transaction.
- `table_spec`: `TableSpec`, the one description of a table (types, units, bounds, key, series).
- `audit`: audit rules as DuckDB SQL, the rules every spec implies, and the audit report.
- `publish`: the publish path (lock, recover, stage, audit, commit with records, move).
- `lake_comparison`: the lake's partitions compared with PostgreSQL by per-column aggregates.
- `object_store`: the lake on S3 through `pyarrow.fs`.
- The loader's parts: `inputs` (Arrow / lazily read Parquet), `conform` (cast to the table's types),
  `binary_copy` (pgpq + psycopg COPY), `catalog` (the table as PostgreSQL describes it), `meta`
  (load log, schema history), `merge` and `row_diff` (CDC upserts), `keys` (key checks), `timing`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562): importing one submodule (the BDG2 converter needs only
# `table_spec`) then does not load the loader, psycopg, pandas and pyarrow.dataset (about 0.35 s).
_EXPORTS = {
    "Contract": "evolution",
    "TableName": "identifiers",
    "NotParquetError": "inputs",
    "read_parquet": "inputs",
    "LoadResult": "loader",
    "WarehouseLoader": "loader",
    "ParquetStore": "parquet_store",
    "PartitionPathError": "parquet_store",
    "ColumnStats": "schema_inference",
    "InferredColumn": "schema_inference",
    "InferredSchema": "schema_inference",
    "infer_arrow": "schema_inference",
}

if TYPE_CHECKING:
    from energy_assets.warehouse.evolution import Contract
    from energy_assets.warehouse.identifiers import TableName
    from energy_assets.warehouse.inputs import NotParquetError, read_parquet
    from energy_assets.warehouse.loader import LoadResult, WarehouseLoader
    from energy_assets.warehouse.parquet_store import ParquetStore, PartitionPathError
    from energy_assets.warehouse.schema_inference import (
        ColumnStats,
        InferredColumn,
        InferredSchema,
        infer_arrow,
    )


if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name is still an error

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value


__all__ = [
    "ColumnStats",
    "Contract",
    "InferredColumn",
    "InferredSchema",
    "LoadResult",
    "NotParquetError",
    "ParquetStore",
    "PartitionPathError",
    "TableName",
    "WarehouseLoader",
    "infer_arrow",
    "read_parquet",
]
