"""The loader against the session's managed PostgreSQL (verify-full TLS): round trips and dispositions."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from energy_assets.errors import DataValidationError, SchemaContractError
from energy_assets.warehouse import NotParquetError, TableName, WarehouseLoader

BERLIN = ZoneInfo("Europe/Berlin")


def dst_instants() -> pd.DatetimeIndex:
    """Europe/Berlin 2025-10-26 01:45 .. 03:15 local time: 02:00-02:45 happens twice."""
    return pd.date_range("2025-10-25 23:45", "2025-10-26 02:15", freq="15min", tz="UTC").tz_convert(BERLIN)


def every_type(rows: int = 11) -> pa.Table:
    instants = dst_instants()
    assert len(instants) == rows
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "small": pa.array([i - 5 for i in range(rows)], pa.int16()),
            "medium": pa.array([2**31 - 1 - i for i in range(rows)], pa.int32()),
            "big": pa.array([2**62 + i for i in range(rows)], pa.int64()),
            "value": pa.array([float("nan"), None, 1.5, -0.0, 1e308, *[i / 3 for i in range(rows - 5)]]),
            "price": pa.array([decimal.Decimal(f"{i}.125") for i in range(rows)], pa.decimal128(12, 3)),
            "flag": pa.array([i % 2 == 0 if i != 3 else None for i in range(rows)]),
            "day": pa.array([dt.date(2025, 10, 26) + dt.timedelta(days=i) for i in range(rows)]),
            "interval_start": pa.Array.from_pandas(instants),
            "local_time": pa.array([dt.datetime(2025, 10, 26, 2, 30)] * rows, pa.timestamp("ns")),
            "name": pa.array(
                ["Zürich", "東京", "emoji 🔌", "", None, "tab\there", "quote'\"", *["x"] * (rows - 7)]
            ),
            "blob": pa.array([bytes([i, 0, 255]) for i in range(rows)]),
            "details": pa.array(
                [{"a": i, "b": [i, i + 1], "c": "ü"} if i != 2 else None for i in range(rows)]
            ),
            "tags": pa.array([[f"t{i}"] * (i % 3) for i in range(rows)]),
            "attributes": pa.array([[("k", i)] for i in range(rows)], pa.map_(pa.string(), pa.int64())),
        }
    )


def test_round_trip_of_every_supported_type(loader: WarehouseLoader, warehouse_schema: str, query) -> None:
    table = TableName(warehouse_schema, "every_type")
    data = every_type()
    result = loader.append(table, data, primary_key=["id"])
    assert (result.rows_in, result.inserted) == (11, 11)
    assert result.schema_changes == [f"create table {table}"]

    types = dict(
        query(
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns c "
            "JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))"
            "::regclass AND a.attname = c.column_name WHERE table_schema = %s AND table_name = %s",
            (warehouse_schema, "every_type"),
        )
    )
    assert types == {
        "id": "bigint",
        "small": "smallint",
        "medium": "integer",
        "big": "bigint",
        "value": "double precision",
        "price": "numeric(12,3)",
        "flag": "boolean",
        "day": "date",
        "interval_start": "timestamp with time zone",
        "local_time": "timestamp without time zone",
        "name": "text",
        "blob": "bytea",
        "details": "jsonb",
        "tags": "jsonb",
        "attributes": "jsonb",
    }
    rows = query(sql.SQL("SELECT * FROM {} ORDER BY id").format(table.sql()))
    back = {name: [row[i] for row in rows] for i, name in enumerate(types)}
    assert back["small"] == [i - 5 for i in range(11)]
    assert back["medium"][0] == 2**31 - 1
    assert back["big"][10] == 2**62 + 10
    assert math.isnan(back["value"][0]) and back["value"][1] is None
    assert back["value"][2:5] == [1.5, 0.0, 1e308]
    assert math.copysign(1.0, back["value"][3]) == -1.0
    assert back["price"][3] == decimal.Decimal("3.125")
    assert back["flag"][:4] == [True, False, True, None]
    assert back["day"][1] == dt.date(2025, 10, 27)
    # The DST change: eleven distinct instants, local 02:00-02:45 twice (CEST, then CET).
    instants = back["interval_start"]
    # (Compared in UTC: Python never equates an ambiguous local time with another zone's time.)
    assert instants == [t.to_pydatetime() for t in dst_instants().tz_convert("UTC")]
    assert len(set(instants)) == 11
    local = [t.astimezone(BERLIN).strftime("%H:%M %Z") for t in instants]
    assert local[:6] == ["01:45 CEST", "02:00 CEST", "02:15 CEST", "02:30 CEST", "02:45 CEST", "02:00 CET"]
    assert local[-1] == "03:15 CET"
    assert back["local_time"][0] == dt.datetime(2025, 10, 26, 2, 30)
    assert back["name"][:7] == ["Zürich", "東京", "emoji 🔌", "", None, "tab\there", "quote'\""]
    assert back["blob"][1] == b"\x01\x00\xff"
    assert back["details"][1] == {"a": 1, "b": [1, 2], "c": "ü"}
    assert back["details"][2] is None
    assert back["tags"][:3] == [[], ["t1"], ["t2", "t2"]]
    assert back["attributes"][4] == {"k": 4}
    nan_rows = query(sql.SQL("SELECT count(*) FROM {} WHERE value = 'NaN'::float8").format(table.sql()))
    assert nan_rows == [(1,)]


def test_value_that_cannot_be_cast_names_table_column_and_value(
    loader: WarehouseLoader, warehouse_schema: str, query
) -> None:
    table = TableName(warehouse_schema, "readings")
    loader.append(table, pa.table({"meter_id": pa.array([1], pa.int32()), "kwh": [1.0]}))
    bad = pa.table({"meter_id": ["2", "3", "three"], "kwh": [1.0, 2.0, 3.0]})
    with pytest.raises(DataValidationError) as error:
        loader.append(table, bad)
    assert "readings" in str(error.value) and "'meter_id'" in str(error.value)
    assert "'three' at row 2" in str(error.value)
    overflow = pa.table({"meter_id": pa.array([5_000_000_000], pa.int64()), "kwh": [1.0]})
    with pytest.raises(SchemaContractError, match="'meter_id'|\"meter_id\"") as frozen:
        loader.append(table, overflow, contract="freeze")
    assert "value 5000000000 at row 0 cannot be stored as int4" in str(frozen.value)
    assert query(sql.SQL("SELECT count(*) FROM {}").format(table.sql())) == [(1,)]


def test_mismatched_schema_is_refused(loader: WarehouseLoader, warehouse_schema: str, query) -> None:
    table = TableName(warehouse_schema, "readings")
    read_at = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    loader.append(
        table,
        pa.table(
            {"meter_id": pa.array([1], pa.int32()), "read_on": [dt.date(2025, 1, 1)], "read_at": [read_at]}
        ),
    )
    nested = pa.table({"meter_id": pa.array([2], pa.int32()), "read_on": [{"y": 2025}], "read_at": [read_at]})
    with pytest.raises(SchemaContractError, match='"read_on": table has date, data has jsonb'):
        loader.append(table, nested)
    naive = pa.table(
        {
            "meter_id": pa.array([2], pa.int32()),
            "read_on": [dt.date(2025, 1, 2)],
            "read_at": [dt.datetime(2025, 1, 2)],
        }
    )
    with pytest.raises(SchemaContractError, match='"read_at": table has timestamptz, data has timestamp'):
        loader.append(table, naive)
    assert query(sql.SQL("SELECT count(*) FROM {}").format(table.sql())) == [(1,)]
    failed = query(
        "SELECT count(*) FROM energy_meta.load_log WHERE table_schema = %s AND status = 'failed'",
        (warehouse_schema,),
    )
    assert failed == [(2,)]


def test_a_file_that_is_not_parquet_is_named(
    loader: WarehouseLoader, warehouse_schema: str, tmp_path: Path
) -> None:
    path = tmp_path / "prices.parquet"
    path.write_text("interval_start,price\n2025-10-26T00:00:00Z,1.0\n")
    with pytest.raises(NotParquetError, match=str(path)):
        loader.append(TableName(warehouse_schema, "prices"), path)
    with pytest.raises(NotParquetError, match="no such file"):
        loader.append(TableName(warehouse_schema, "prices"), tmp_path / "missing.parquet")


def test_hostile_and_reserved_names_are_quoted(loader: WarehouseLoader, warehouse_schema: str, query) -> None:
    table = TableName(warehouse_schema, 'drop table x;--"')
    data = pa.table(
        {
            "select": pa.array([1, 2], pa.int32()),
            "Mixed Case": ["a", "b"],
            'a"b': [1.0, 2.0],
            "drop table x;--": ["y", "z"],
            "with space": [True, False],
        }
    )
    loader.append(table, data, primary_key=["select"])
    loader.merge(table, data.set_column(2, 'a"b', pa.array([1.0, 5.0])), key=["select"])
    rows = query(sql.SQL("SELECT * FROM {} ORDER BY {}").format(table.sql(), sql.Identifier("select")))
    assert rows == [(1, "a", 1.0, "y", True), (2, "b", 5.0, "z", False)]
    names = query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
        (str(table),),
    )
    assert [n for (n,) in names] == ["select", "Mixed Case", 'a"b', "drop table x;--", "with space"]
    assert query("SELECT count(*) FROM pg_class WHERE relname = 'x'") == [(0,)]


# -- failure paths: the project's error, and the table exactly as before -------------------------------


def rows_of(data: pa.Table) -> list[tuple]:
    return list(zip(*(data[name].to_pylist() for name in data.column_names), strict=True))


def failed_loads(query, schema: str) -> list[tuple[str, str]]:
    return query(
        "SELECT disposition, error FROM energy_meta.load_log WHERE table_schema = %s AND status = 'failed' "
        "ORDER BY finished_at",
        (schema,),
    )


def test_a_duplicate_key_during_the_copy_loads_nothing(
    loader: WarehouseLoader, warehouse_schema: str, table_rows, query
) -> None:
    table = TableName(warehouse_schema, "meters")
    first = pa.table({"meter_id": pa.array([1, 2], pa.int32()), "kwh": [1.0, 2.0]})
    loader.append(table, first, primary_key=["meter_id"])
    # Row 0 is new, row 1 repeats a key the table already has: the server refuses, nothing stays.
    clash = pa.table({"meter_id": pa.array([3, 2], pa.int32()), "kwh": [3.0, 9.0]})
    with pytest.raises(DataValidationError) as error:
        loader.append(table, clash)
    assert str(error.value).startswith(
        f"{table} (from Arrow table): PostgreSQL rejected the data: duplicate key"
    )
    assert "Key (meter_id)=(2) already exists." in str(error.value)
    assert str(error.value).endswith("; nothing was loaded.")
    assert table_rows(table, "meter_id") == rows_of(first)
    [(disposition, logged)] = failed_loads(query, warehouse_schema)
    assert disposition == "append" and "duplicate key value violates unique constraint" in logged


@pytest.mark.parametrize("damage", ["footer", "data page"])
def test_a_damaged_parquet_file_with_valid_magic_bytes_is_refused(
    loader: WarehouseLoader, warehouse_schema: str, tmp_path: Path, table_rows, damage: str
) -> None:
    table = TableName(warehouse_schema, "readings")
    existing = pa.table({"series_id": pa.array([-1], pa.int32()), "value": [0.5]})
    loader.append(table, existing)
    rows = 20_000
    path = tmp_path / "readings.parquet"
    pq.write_table(
        pa.table({"series_id": pa.array(range(rows), pa.int32()), "value": [i / 7 for i in range(rows)]}),
        path,
        compression="zstd",
    )
    data = bytearray(path.read_bytes())
    if damage == "footer":
        footer_length = int.from_bytes(data[-8:-4], "little")
        footer_start = len(data) - 8 - footer_length
        data[footer_start + 10 : footer_start + 40] = bytes(30)
    else:
        chunk = pq.ParquetFile(path).metadata.row_group(0).column(1)
        middle = chunk.data_page_offset + chunk.total_compressed_size // 2
        data[middle : middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    assert data[:4] == data[-4:] == b"PAR1"
    with pytest.raises(
        NotParquetError, match=f"(?s){re.escape(str(path))}: a damaged Parquet file .*; nothing was loaded"
    ):
        loader.append(table, path)
    assert table_rows(table, "series_id") == rows_of(existing)


@pytest.fixture
def coded(warehouse_schema: str, query) -> TableName:
    """A table with bounded string columns, as a hand-written migration would make it."""
    table = TableName(warehouse_schema, "coded")
    query(
        sql.SQL("CREATE TABLE {} (id int4 PRIMARY KEY, code varchar(5), grade char(2))").format(table.sql())
    )
    query(sql.SQL("INSERT INTO {} VALUES (1, 'abcde', 'A')").format(table.sql()))
    return table


def test_varchar_and_char_overflow_is_refused_under_freeze(
    loader: WarehouseLoader, coded: TableName, query
) -> None:
    fits = pa.table({"id": pa.array([2], pa.int32()), "code": ["ü" * 5], "grade": ["B "]})
    assert loader.append(coded, fits, contract="freeze").inserted == 1
    too_long = pa.table({"id": pa.array([3, 4], pa.int32()), "code": ["abc", "abcdef"], "grade": ["C", "C"]})
    with pytest.raises(SchemaContractError) as error:
        loader.append(coded, too_long, contract="freeze")
    assert "value 'abcdef' at row 1 is longer than varchar(5) allows" in str(error.value)
    too_wide = pa.table({"id": pa.array([3], pa.int32()), "code": ["abc"], "grade": ["ABC"]})
    with pytest.raises(SchemaContractError, match="value 'ABC' at row 0 is longer than char.2. allows"):
        loader.append(coded, too_wide, contract="discard_columns")
    assert query(sql.SQL("SELECT id, code, grade FROM {} ORDER BY id").format(coded.sql())) == [
        (1, "abcde", "A "),
        (2, "ü" * 5, "B "),
    ]
    assert query(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "ORDER BY attnum",
        (str(coded),),
    ) == [("integer",), ("character varying(5)",), ("character(2)",)]


def test_varchar_overflow_in_a_streamed_file_widens_under_evolve(
    loader: WarehouseLoader, coded: TableName, query, tmp_path: Path
) -> None:
    path = tmp_path / "coded.parquet"
    pq.write_table(pa.table({"id": pa.array([2, 3], pa.int32()), "code": ["abc", "abcdef"]}), path)
    result = loader.append(coded, path)
    assert result.schema_changes == ['widen column "code" varchar(5) -> text']
    assert query(sql.SQL("SELECT id, code FROM {} ORDER BY id").format(coded.sql())) == [
        (1, "abcde"),
        (2, "abc"),
        (3, "abcdef"),
    ]


def test_a_loaded_parquet_file_is_not_left_open(
    loader: WarehouseLoader, warehouse_schema: str, tmp_path: Path
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to list open files")
    path = tmp_path / "readings.parquet"
    pq.write_table(pa.table({"series_id": pa.array([1, 2], pa.int32()), "value": [1.0, 2.0]}), path)

    def open_files() -> set[str]:
        found = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/self/fd/{fd}"))
        return found

    for load in (
        lambda: loader.append(TableName(warehouse_schema, "streamed"), path),
        lambda: loader.merge(TableName(warehouse_schema, "merged"), path, key=["series_id"]),
    ):
        assert load().inserted == 2
        assert str(path) not in open_files()
