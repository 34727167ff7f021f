"""The Parquet lake: hive layout, atomic partition rewrites, validation of names."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from energy_assets.errors import DataValidationError
from energy_assets.warehouse import ParquetStore, PartitionPathError
from energy_assets.warehouse.parquet_store import SMALL_PARTITION_ROWS


def day(values: list[float]) -> pa.Table:
    return pa.table({"series_id": pa.array(range(len(values)), pa.int32()), "value": values})


def test_write_partition_uses_hive_layout_and_zstd(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    path = store.write_partition("prices", {"day": "2025-10-26"}, day([1.0, 2.0]))
    assert path == f"{tmp_path}/prices/day=2025-10-26/part-0.parquet"
    assert store.read_partition("prices", {"day": "2025-10-26"}).to_pydict() == {
        "series_id": [0, 1],
        "value": [1.0, 2.0],
    }
    # zstd from SMALL_PARTITION_ROWS rows; below, snappy (zstd's setup per column costs more than it saves).
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"
    large = store.write_partition("prices", {"day": "2025-10-27"}, day([1.0] * SMALL_PARTITION_ROWS))
    assert pq.ParquetFile(large).metadata.row_group(0).column(0).compression == "ZSTD"


def test_rewrite_replaces_exactly_one_partition(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    for name, values in (("2025-10-25", [1.0]), ("2025-10-26", [2.0, 3.0]), ("2025-10-27", [4.0])):
        store.write_partition("prices", {"day": name}, day(values))
    before = {
        p: os.stat(store.partition_path("prices", {"day": p})).st_mtime_ns
        for p in ("2025-10-25", "2025-10-27")
    }

    store.write_partition("prices", {"day": "2025-10-26"}, day([9.0]))

    table = store.read_dataset("prices").sort_by("day")
    assert table["day"].to_pylist() == ["2025-10-25", "2025-10-26", "2025-10-27"]
    assert table["value"].to_pylist() == [1.0, 9.0, 4.0]
    after = {p: os.stat(store.partition_path("prices", {"day": p})).st_mtime_ns for p in before}
    assert after == before
    assert sorted(os.listdir(tmp_path / "prices" / "day=2025-10-26")) == ["part-0.parquet"]


def test_failed_write_keeps_the_old_partition_and_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    store = ParquetStore(tmp_path)
    store.write_partition("prices", {"day": "2025-10-26"}, day([1.0]))

    def broken(*args, **kwargs) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write_partition("prices", {"day": "2025-10-26"}, day([5.0, 6.0]))
    monkeypatch.undo()
    assert store.read_partition("prices", {"day": "2025-10-26"})["value"].to_pylist() == [1.0]
    assert os.listdir(tmp_path / "prices" / "day=2025-10-26") == ["part-0.parquet"]


def test_nested_partitions_filters_and_duckdb(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    store.write_partition("load", {"country": "de", "day": "2025-10-26"}, day([1.0, 2.0]))
    store.write_partition("load", {"country": "fr", "day": "2025-10-26"}, day([3.0]))
    assert store.list_partitions("load") == [
        {"country": "de", "day": "2025-10-26"},
        {"country": "fr", "day": "2025-10-26"},
    ]
    german = store.read_dataset("load", filter=pc.field("country") == "de")
    assert german["value"].to_pylist() == [1.0, 2.0]
    con = duckdb.connect()
    total = con.sql(
        f"SELECT country, sum(value) FROM read_parquet('{store.duckdb_glob('load')}', hive_partitioning=true) "
        "GROUP BY country ORDER BY country"
    ).fetchall()
    assert total == [("de", 3.0), ("fr", 3.0)]
    assert store.duckdb_relation(con, "load").aggregate("count(*)").fetchall() == [(3,)]


@pytest.mark.parametrize(
    ("dataset", "partition"),
    [
        ("..", {"day": "x"}),
        ("prices/../../etc", {"day": "x"}),
        ("", {"day": "x"}),
        ("prices", {"day": ".."}),
        ("prices", {"day": "../../etc"}),
        ("prices", {"day": "a/b"}),
        ("prices", {"day": ""}),
        ("prices", {"../day": "x"}),
        ("prices", {"": "x"}),
        ("prices", {}),
    ],
)
def test_path_traversal_and_empty_names_are_refused(tmp_path: Path, dataset: str, partition: dict) -> None:
    store = ParquetStore(tmp_path / "lake")
    with pytest.raises(PartitionPathError):
        store.write_partition(dataset, partition, day([1.0]))
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet"))


def test_partition_keys_must_match_the_existing_layout(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    store.write_partition("load", {"country": "de", "day": "2025-10-26"}, day([1.0]))
    with pytest.raises(PartitionPathError, match="country"):
        store.write_partition("load", {"day": "2025-10-27"}, day([1.0]))
    with pytest.raises(PartitionPathError):
        store.write_partition("load", {"country": "de"}, day([1.0]))


def test_partition_column_in_the_data_must_match_the_folder(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    good = pa.table({"day": ["2025-10-26", "2025-10-26"], "value": [1.0, 2.0]})
    store.write_partition("prices", {"day": "2025-10-26"}, good)
    assert store.read_partition("prices", {"day": "2025-10-26"}).column_names == ["value"]
    bad = pa.table({"day": ["2025-10-26", "2025-10-27"], "value": [1.0, 2.0]})
    with pytest.raises(DataValidationError, match="'2025-10-27' at row 1"):
        store.write_partition("prices", {"day": "2025-10-26"}, bad)


def test_other_filesystems_go_through_pyarrow_fs(tmp_path: Path) -> None:
    filesystem = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    store = ParquetStore("lake", filesystem=filesystem)
    path = store.write_partition("prices", {"day": "2025-10-26"}, day([1.0]))
    assert path == "lake/prices/day=2025-10-26/part-0.parquet"
    assert (tmp_path / path).exists()
    assert store.has_partition("prices", {"day": "2025-10-26"})
    assert store.read_dataset("prices")["value"].to_pylist() == [1.0]
    assert store.delete_partition("prices", {"day": "2025-10-26"})
    assert not store.has_partition("prices", {"day": "2025-10-26"})


def test_inferred_schema_artefact_sits_beside_the_partitions(tmp_path: Path) -> None:
    from energy_assets.warehouse import infer_arrow

    store = ParquetStore(tmp_path)
    table = pa.table({"series_id": pa.array([1, 2], pa.int32()), "value_mw": [1.5, None]})
    store.write_partition("readings", {"date": "2025-10-26"}, table)
    assert store.read_inferred_schema("readings") is None
    schema = infer_arrow(table, primary_key=["series_id"])
    path = store.write_inferred_schema("readings", schema)
    assert path.endswith("readings/_inferred_schema.json")
    again = store.read_inferred_schema("readings")
    assert again == schema
    assert again.column("value_mw").stats.null_fraction == 0.5
    # Readers of the dataset do not see the artefact.
    assert store.read_dataset("readings").num_rows == 2
    glob = store.duckdb_glob("readings")
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(2,)]
