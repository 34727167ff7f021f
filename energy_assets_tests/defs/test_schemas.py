"""An inferred schema rendered as Dagster's column schema."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg
import pyarrow as pa

from energy_assets.defs.schemas import table_schema_from_inferred
from energy_assets.warehouse import infer_arrow


def test_types_keys_and_statistics_reach_the_table_schema() -> None:
    table = pa.table(
        {
            "country": ["de", "de", "de"],
            "interval_start": pa.array(
                [datetime(2025, 10, 26, h, tzinfo=timezone.utc) for h in (0, 1, 2)], pa.timestamp("us", "UTC")
            ),
            "value_mw": [1.0, None, 3.5],
        }
    )
    schema = infer_arrow(table, primary_key=["country", "interval_start"])
    rendered = table_schema_from_inferred(schema, {"value_mw": "Mean power over the interval"})
    by_name = {column.name: column for column in rendered.columns}
    assert [c.name for c in rendered.columns] == ["country", "interval_start", "value_mw"]
    assert by_name["interval_start"].type == "timestamptz"
    assert by_name["value_mw"].type == "float8"
    assert by_name["value_mw"].constraints.nullable is True
    assert by_name["country"].constraints.nullable is False
    assert by_name["country"].constraints.other == ["primary key"]
    assert by_name["value_mw"].description.startswith("Mean power over the interval — null 33.3%")
    assert "range 1.0 .. 3.5" in by_name["value_mw"].description
    assert rendered.constraints.other == ["primary key (country, interval_start)"]
    assert isinstance(rendered, dg.TableSchema)


def test_single_column_key_is_unique() -> None:
    schema = infer_arrow(pa.table({"building_id": ["a", "b"]}), primary_key=["building_id"])
    (column,) = table_schema_from_inferred(schema).columns
    assert column.constraints.unique is True
