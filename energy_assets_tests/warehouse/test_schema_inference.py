"""Schema inference from Arrow, CSV and JSON: types for every row, stats, keys, JSON and DDL."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from energy_assets.errors import DataValidationError
from energy_assets.warehouse import InferredSchema, TableName, infer_arrow
from energy_assets.warehouse.keys import KeyPacker, duplicate_keys, row_key_codes


def sample() -> pa.Table:
    berlin = pa.array(
        [
            dt.datetime(2025, 10, 26, 0, 0, tzinfo=dt.timezone.utc),
            dt.datetime(2025, 10, 26, 1, 0, tzinfo=dt.timezone.utc),
        ],
        pa.timestamp("us", tz="Europe/Berlin"),
    )
    return pa.table(
        {
            "series_id": pa.array([1, 2], pa.int32()),
            "small": pa.array([1, 2], pa.int8()),
            "big": pa.array([1, None], pa.int64()),
            "unsigned": pa.array([1, 2], pa.uint32()),
            "value": [1.5, float("nan")],
            "ratio": pa.array([0.5, 0.25], pa.float32()),
            "price": pa.array([decimal.Decimal("1.250"), None], pa.decimal128(12, 3)),
            "flag": [True, False],
            "day": [dt.date(2025, 10, 26), dt.date(2025, 10, 27)],
            "interval_start": berlin,
            "local_time": pa.array([dt.datetime(2025, 10, 26, 2, 0)] * 2, pa.timestamp("ms")),
            "name": ["Zürich", "東京"],
            "blob": [b"\x00\x01", b""],
            "details": [{"a": 1, "b": [1, 2]}, None],
            "tags": [["x"], []],
        }
    )


def test_types_from_arrow() -> None:
    schema = infer_arrow(sample(), source="sample")
    assert schema.pg_types() == {
        "series_id": "int4",
        "small": "int2",
        "big": "int8",
        "unsigned": "int8",
        "value": "float8",
        "ratio": "float4",
        "price": "numeric(12,3)",
        "flag": "boolean",
        "day": "date",
        "interval_start": "timestamptz",
        "local_time": "timestamp",
        "name": "text",
        "blob": "bytea",
        "details": "jsonb",
        "tags": "jsonb",
    }
    assert "naive timestamp" in schema.column("local_time").note
    assert schema.column("interval_start").note is None


def test_stats() -> None:
    schema = infer_arrow(sample())
    big = schema.column("big").stats
    assert (big.null_fraction, big.min, big.max, big.distinct_estimate) == (0.5, 1, 1, 1)
    start = schema.column("interval_start").stats
    assert start.min == "2025-10-26T02:00:00+02:00"
    assert start.max == "2025-10-26T02:00:00+01:00"
    assert start.distinct_estimate == 2
    # NaN is a value (two distinct) but not an extreme: min and max are those of the numbers.
    value = schema.column("value").stats
    assert (value.min, value.max, value.distinct_estimate, value.null_fraction) == (1.5, 1.5, 2, 0.0)
    assert schema.column("price").stats.min == "1.250"


def test_primary_key_detection_prefers_the_smallest_unique_set() -> None:
    table = pa.table(
        {
            "series_id": pa.array([1, 1, 2, 2], pa.int32()),
            "interval_start": pa.array([0, 1, 0, 1], pa.timestamp("s", tz="UTC")),
            "value": [1.0, 2.0, 3.0, 4.0],
            "quality": ["A", "A", "B", "B"],
        }
    )
    schema = infer_arrow(table)
    assert schema.primary_key == ["series_id", "interval_start"]
    assert schema.primary_key_origin == "detected"
    assert [c.nullable for c in schema.columns] == [False, False, True, True]
    single = infer_arrow(pa.table({"meter_id": ["a", "b", "c"], "reading": [1.0, 1.0, 2.0]}))
    assert single.primary_key == ["meter_id"]
    assert infer_arrow(pa.table({"v": [1.0, 1.0]})).primary_key == []


def test_declared_primary_key_is_checked() -> None:
    table = pa.table({"id": [1, 2, 2], "v": [1, 2, 3]})
    with pytest.raises(DataValidationError, match=r"repeated values include \[\{'id': 2\}\]"):
        infer_arrow(table, primary_key=["id"], source="meters.csv")
    assert infer_arrow(table, primary_key=["v"]).primary_key_origin == "declared"


def test_json_round_trip_is_stable_and_rebuilds_the_arrow_schema() -> None:
    schema = infer_arrow(sample(), primary_key=["series_id"], source="sample.parquet")
    text = schema.to_json()
    again = InferredSchema.from_json(text)
    assert again == schema
    assert again.to_json() == text
    assert json.loads(text)["columns"][0]["name"] == "series_id"
    rebuilt = again.arrow_schema()
    assert rebuilt.field("interval_start").type == pa.timestamp("us", tz="Europe/Berlin")
    assert rebuilt.field("details").type == sample().schema.field("details").type
    assert rebuilt.field("price").type == pa.decimal128(12, 3)
    assert rebuilt.field("series_id").nullable is False


def test_ddl_quotes_identifiers_and_declares_the_key() -> None:
    table = pa.table({"select": pa.array([1, 2], pa.int32()), "Mixed Case": ["a", "b"], 'a"b': [1.0, 2.0]})
    ddl = infer_arrow(table, primary_key=["select"]).to_ddl(TableName("energy", "drop table x;--"))
    assert ddl == (
        'CREATE TABLE IF NOT EXISTS "energy"."drop table x;--" (\n'
        '    "select" int4 NOT NULL,\n'
        '    "Mixed Case" text,\n'
        '    "a""b" float8,\n'
        '    PRIMARY KEY ("select")\n'
        ")"
    )


def test_key_packing_and_duplicates() -> None:
    table = pa.table(
        {
            "series_id": pa.array([2, 1, 1], pa.int32()),
            "interval_start": pa.array([0, 900, 0], pa.timestamp("s", tz="UTC")),
        }
    )
    packer = KeyPacker.fit(table, ["series_id", "interval_start"])
    assert packer is not None
    assert packer.pack(table).tolist() == [901, 900, 0]
    assert duplicate_keys(table, ["series_id", "interval_start"]) == []
    doubled = pa.concat_tables([table, table.slice(0, 1)])
    assert duplicate_keys(doubled, ["series_id", "interval_start"]) == [
        {"series_id": 2, "interval_start": dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)}
    ]
    assert KeyPacker.fit(pa.table({"name": ["a"]}), ["name"]) is None


def test_text_keys_are_checked_through_one_int64_code_per_row() -> None:
    # (building_id, meter, timestamp) as in buildings.meter_readings: codes are equal exactly when keys are,
    # across chunks (each chunk of a text column is encoded against the same distinct values).
    hours = pa.array([0, 3600, 0, 3600, 0], pa.timestamp("s", tz="UTC"))
    first = pa.table({"building": ["b", "b", "a", "a", "c"], "meter": ["e"] * 5, "timestamp": hours})
    second = pa.table({"building": ["c", "d"], "meter": ["gas", "e"], "timestamp": hours.slice(0, 2)})
    table = pa.concat_tables([first, second])
    key = ["building", "meter", "timestamp"]
    codes = row_key_codes(table, key)
    assert codes is not None
    keys = list(zip(*(table[name].to_pylist() for name in key), strict=True))
    for i, j in itertools.combinations(range(table.num_rows), 2):
        assert (codes[i] == codes[j]) == (keys[i] == keys[j])
    assert duplicate_keys(table, key) == []
    doubled = pa.concat_tables([table, table.slice(6, 1)])
    assert duplicate_keys(doubled, key) == [
        {"building": "d", "meter": "e", "timestamp": dt.datetime(1970, 1, 1, 1, tzinfo=dt.timezone.utc)}
    ]
    with_null = pa.table({"building": ["a", None], "timestamp": hours.slice(0, 2)})
    assert row_key_codes(with_null, ["building", "timestamp"]) is None  # the general path handles NULLs
    assert row_key_codes(pa.table({"v": [1.5]}), ["v"]) is None  # no codes for floats


def conversion_error(text: str, column_types: dict[str, pa.DataType] | None = None) -> str:
    """The message pyarrow's block-by-block CSV reader gives when a later block breaks a column's type."""
    with pytest.raises(pa.ArrowInvalid) as error:
        pacsv.open_csv(
            io.BytesIO(text.encode()),
            read_options=pacsv.ReadOptions(block_size=4096),
            convert_options=pacsv.ConvertOptions(column_types=column_types or {}),
        ).read_all()
    return str(error.value)
