"""The `nmi_daily_consumption` mart: local days in Australia/Brisbane, energy sums and quality shares."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from energy_assets.sources.meters.aggregates import nmi_daily_consumption
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.tables import NMI_DAILY_CONSUMPTION

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nem12"


def test_daily_energy_and_quality_shares() -> None:
    readings = read_nem12_table(FIXTURES / "nem12_30min_multiple_quality.csv")
    mart = nmi_daily_consumption(readings)

    assert mart.schema == NMI_DAILY_CONSUMPTION.arrow_schema
    keys = [(r["nmi"], r["nmi_suffix"], r["local_date"]) for r in mart.to_pylist()]
    assert keys == [
        ("CCCC123456", "E1", date(2004, 4, 17)),
        ("CCCC123456", "E1", date(2004, 4, 18)),
        ("VBCD000022", "E1", date(2003, 8, 1)),
        ("VBCD000022", "E1", date(2003, 8, 2)),
        ("VBCD000022", "Q1", date(2003, 8, 1)),
        ("VBCD000022", "Q1", date(2003, 8, 2)),
    ]
    first = mart.to_pylist()[0]
    day_values = readings.filter(pa.compute.equal(readings.column("nmi"), "CCCC123456")).slice(0, 48)
    assert first["consumption"] == pytest.approx(sum(day_values.column("value").to_pylist()))
    # 400 records: 1-20 F14, 21-24 A, 25-48 S14
    assert (first["interval_count"], first["expected_interval_count"]) == (48, 48)
    assert first["actual_share"] == pytest.approx(4 / 48)
    assert first["estimated_or_substituted_share"] == pytest.approx(44 / 48)
    q1_day2 = mart.to_pylist()[5]
    assert (q1_day2["uom"], q1_day2["actual_share"]) == ("kVArh", pytest.approx(47 / 48))


def test_days_follow_the_interval_start_in_brisbane_and_lengths_vary() -> None:
    mart = nmi_daily_consumption(read_nem12_table(FIXTURES / "nem12_mixed_intervals.csv"))
    summary = {
        (r["nmi"], r["nmi_suffix"]): (r["local_date"], r["expected_interval_count"]) for r in mart.to_pylist()
    }
    assert summary == {
        ("QB12345678", "E1"): (date(2024, 1, 2), 48),
        ("QB12345678", "B1"): (date(2024, 1, 2), 288),
        ("6305ABC123", "E1"): (date(2024, 1, 2), 96),
        ("6305ABC123", ""): (date(2024, 1, 2), 96),
    }


def test_only_energy_channels_and_order_independent() -> None:
    readings = read_nem12_table(FIXTURES / "nem12_5min_solar.csv")
    mart = nmi_daily_consumption(readings)
    assert sorted({r["uom"] for r in mart.to_pylist()}) == ["VArh", "Wh", "kWh"]
    shuffled = readings.take(pa.array(list(range(readings.num_rows))[::-1]))
    assert nmi_daily_consumption(shuffled).equals(mart)
    volts = readings.set_column(3, "uom", pa.array(["V"] * readings.num_rows))
    assert nmi_daily_consumption(volts).num_rows == 0
