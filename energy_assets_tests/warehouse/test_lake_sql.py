"""`lake_sql.partition_files_sql`: the one scan the audit and the lake comparison read partition files with."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from energy_assets.warehouse.lake_sql import partition_files_sql
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.table_spec import TableSpec, column

SPEC = TableSpec(
    "test",
    "uploads",
    "files received per day",
    (
        column("day", pa.date32(), "local day", nullable=False),
        column("filename", pa.string(), "a column that shares its name with DuckDB's file column", False),
        column("bytes", pa.int64(), "size"),
    ),
    primary_key=("day", "filename"),
)


def write_days(store: ParquetStore) -> list[tuple[dict[str, str], str]]:
    files = []
    for day, rows in (("2024-03-30", [("a.csv", 10), ("b.csv", 20)]), ("2024-03-31", [("c.csv", 5)])):
        table = pa.table(
            {
                "filename": [name for name, _ in rows],
                "bytes": pa.array([size for _, size in rows], pa.int64()),
            }
        )
        store.write_partition(SPEC.qualified_name, {"day": day}, table)
        files.append(({"day": day}, store.partition_path(SPEC.qualified_name, {"day": day})))
    return files


def scanned(store: ParquetStore, files: list[tuple[dict[str, str], str]]) -> list[tuple]:
    with duckdb.connect() as con:
        query = partition_files_sql(con, store, SPEC, files)
        return con.sql(
            f"SELECT day::VARCHAR, filename, bytes, lake_partition FROM ({query}) ORDER BY 2"
        ).fetchall()


EXPECTED = [
    ("2024-03-30", "a.csv", 10, "day=2024-03-30"),
    ("2024-03-30", "b.csv", 20, "day=2024-03-30"),
    ("2024-03-31", "c.csv", 5, "day=2024-03-31"),
]


def test_a_table_column_called_filename_is_read_like_any_other(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path / "lake")
    assert scanned(store, write_days(store)) == EXPECTED


def test_glob_characters_in_the_lake_path_are_not_expanded(tmp_path: Path) -> None:
    # DuckDB's read_parquet takes `lake[1]` for a glob that matches `lake1`; such paths go through pyarrow.
    decoy = ParquetStore(tmp_path / "lake1")
    for day in ("2024-03-30", "2024-03-31"):
        decoy.write_partition(
            SPEC.qualified_name, {"day": day}, pa.table({"filename": ["decoy"], "bytes": [0]})
        )
    store = ParquetStore(tmp_path / "lake[1]")
    assert scanned(store, write_days(store)) == EXPECTED


def test_object_storage_is_read_through_pyarrow(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    remote = ParquetStore(
        "lake", filesystem=pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    )
    assert not remote.is_local
    assert scanned(remote, write_days(remote)) == EXPECTED


def test_no_files_give_the_spec_columns_and_no_rows(tmp_path: Path) -> None:
    with duckdb.connect() as con:
        query = partition_files_sql(con, ParquetStore(tmp_path), SPEC, [])
        relation = con.sql(query)
        assert relation.columns == [*SPEC.column_names, "lake_partition"]
        assert relation.fetchall() == []


def test_the_scan_s_own_column_names_are_refused(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    with duckdb.connect() as con, pytest.raises(ValueError, match="bookkeeping"):
        partition_files_sql(con, store, SPEC, [({"lake_partition": "x"}, str(tmp_path / "x.parquet"))])
