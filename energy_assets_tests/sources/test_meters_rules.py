"""The NEM12 audit rules: parsed files pass them all, and each rule catches the rows it is about."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.rules import METER_READINGS_RULES
from energy_assets.sources.meters.tables import METER_READINGS
from energy_assets.warehouse.audit import run_audit, spec_rules

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nem12"
GOOD_FILES = sorted(FIXTURES.glob("nem12_*"))


def candidate(table: pa.Table) -> pa.Table:
    return table.append_column("lake_partition", pa.repeat(pa.scalar("file=test"), table.num_rows))


def audit(table: pa.Table) -> dict[str, int]:
    report = run_audit(METER_READINGS, candidate(table), [*spec_rules(METER_READINGS), *METER_READINGS_RULES])
    return {outcome.rule: outcome.offending_rows for outcome in report.failures}


@pytest.mark.parametrize("path", GOOD_FILES, ids=[path.name for path in GOOD_FILES])
def test_parsed_files_pass_every_rule(path: Path) -> None:
    assert audit(read_nem12_table(path)) == {}


def _base() -> pa.Table:
    return read_nem12_table(FIXTURES / "nem12_30min_multiple_quality.csv")


def _replace(table: pa.Table, name: str, index: int, value: object) -> pa.Table:
    values = table.column(name).to_pylist()
    values[index] = value
    position = table.schema.get_field_index(name)
    return table.set_column(
        position, table.schema.field(name), pa.array(values, table.schema.field(name).type)
    )


def test_interval_off_the_grid_and_of_a_wrong_length() -> None:
    table = _base()
    shifted = _replace(
        table, "interval_end", 0, table.column("interval_end")[0].as_py() + timedelta(minutes=7)
    )
    failures = audit(shifted)
    assert failures["interval_length"] == 1 and failures["interval_grid"] == 1


def test_overlapping_intervals_of_one_channel() -> None:
    table = _base()
    start = table.column("interval_start")[1].as_py()
    overlapping = _replace(table, "interval_start", 1, start - timedelta(minutes=15))
    assert audit(overlapping)["no_overlapping_intervals"] == 1


@pytest.mark.parametrize(
    ("column", "index", "value", "rule"),
    [
        ("quality", 0, "V", "quality_flag"),
        ("method", 22, 14, "actual_has_no_method"),
        ("method", 0, None, "estimate_has_method"),
        ("method", 0, 42, "method_known"),
        ("uom", 0, "KWH", "uom_known"),
    ],
)
def test_flag_and_unit_rules(column: str, index: int, value: object, rule: str) -> None:
    table = _base()
    assert table.column("quality")[0].as_py() == "F" and table.column("quality")[22].as_py() == "A"
    assert audit(_replace(table, column, index, value)).get(rule) == 1


def test_a_channel_mixing_units() -> None:
    table = _base()
    mixed = _replace(table, "uom", 0, "Wh")
    channel_rows = pc.sum(pc.equal(table.column("nmi"), "CCCC123456")).as_py()
    assert audit(mixed)["one_unit_per_channel"] == channel_rows == 96


def test_negative_values_break_the_generic_bound() -> None:
    failures = audit(_replace(_base(), "value", 3, -0.5))
    assert list(failures.values()) == [1]
