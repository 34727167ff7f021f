"""The buildings marts against hand computations, and byte-for-byte determinism."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from energy_assets.sources.buildings import aggregates
from energy_assets.sources.buildings.archive import METADATA_MEMBER, WEATHER_MEMBER, Bdg2Archive, meter_member
from energy_assets.sources.buildings.metadata import SOURCE_COLUMNS, metadata_table
from energy_assets.sources.buildings.readings import convert_meter
from energy_assets.sources.buildings.sample_builder import build_bdg2_zip, hourly, wide_csv
from energy_assets.sources.buildings.tables import (
    BUILDING_DAILY_CONSUMPTION,
    BUILDING_DAILY_WEATHER,
    BUILDING_ENERGY_USE_INTENSITY,
    SITE_USAGE_DAILY_CONSUMPTION,
)
from energy_assets.sources.buildings.timestamps import clock_offsets, site_clock_table
from energy_assets.sources.buildings.weather import weather_table

HANNAH = "Panther_office_Hannah"
CORA = "Panther_lodging_Cora"
ZACHARY = "Fox_office_Zachary"
STAMPS = hourly(datetime(2016, 1, 1), 48)

# Hannah's electricity: day 1 hour h reads h + 0.5 kWh, hour 3 missing; day 2 reads 2.0 kWh every hour.
HANNAH_ELECTRICITY = [None if hour == 3 else hour + 0.5 for hour in range(24)] + [2.0] * 24
# Day 1 by hand: 0.5 + 1.5 + ... + 23.5 = 288.0, minus the missing 3.5 = 284.5 over 23 readings.
HANNAH_DAY1_KWH = 284.5


def _metadata() -> bytes:
    rows = [
        {"building_id": HANNAH, "site_id": "Panther", "primaryspaceusage": "Office", "sqm": "100.0"},
        {
            "building_id": CORA,
            "site_id": "Panther",
            "primaryspaceusage": "Lodging/residential",
            "sqm": "400.0",
        },
        {"building_id": ZACHARY, "site_id": "Fox", "primaryspaceusage": "Office", "sqm": ""},
    ]
    zones = {"Panther": "US/Eastern", "Fox": "US/Mountain"}
    lines = [",".join(SOURCE_COLUMNS)]
    for row in rows:
        full = dict.fromkeys(SOURCE_COLUMNS, "") | row | {"timezone": zones[row["site_id"]]}
        lines.append(",".join(full[name] for name in SOURCE_COLUMNS))
    return ("\r\n".join(lines) + "\r\n").encode()


def _weather() -> bytes:
    lines = [
        "timestamp,site_id,airTemperature,cloudCoverage,dewTemperature,precipDepth1HR,precipDepth6HR,seaLvlPressure,windDirection,windSpeed"
    ]
    for hour, moment in enumerate(STAMPS):
        # Panther: 10.0 degC all of day 1; day 2 alternates 20 and 30 (mean 25). Day 1 hour 0 has no temperature.
        temperature = "" if hour == 0 else ("10.0" if hour < 24 else ("20.0" if hour % 2 else "30.0"))
        lines.append(f"{moment:%Y-%m-%d %H:%M:%S},Panther,{temperature},,,,,,,")
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("marts")
    members = {
        meter_member("electricity"): wide_csv(
            STAMPS, {HANNAH: HANNAH_ELECTRICITY, CORA: [1.0] * 48, ZACHARY: [3.0] * 48}
        ),
        meter_member("chilledwater"): wide_csv(STAMPS, {HANNAH: [1.25] * 48}),
        meter_member("water"): wide_csv(STAMPS, {HANNAH: [100.0] * 48}),
        meter_member("solar"): wide_csv(STAMPS, {CORA: [5.0] * 48}),
        METADATA_MEMBER: _metadata(),
        WEATHER_MEMBER: _weather(),
    }
    path = build_bdg2_zip(folder / "bdg2.zip", members)
    files = []
    with Bdg2Archive(path) as archive:
        for meter in ("electricity", "chilledwater", "water", "solar"):
            convert_meter(archive, meter, folder / f"meter={meter}" / "part-0.parquet")
            files.append(folder / f"meter={meter}" / "part-0.parquet")
        metadata = metadata_table(archive)
        weather = weather_table(archive)
    site_clock = site_clock_table(clock_offsets(metadata, "utc"))
    daily = aggregates.building_daily_consumption(files, site_clock)
    return {
        "files": files,
        "metadata": metadata,
        "weather": weather,
        "site_clock": site_clock,
        "daily": daily,
    }


def _row(table: pa.Table, **match: object) -> dict:
    rows = [row for row in table.to_pylist() if all(row[key] == value for key, value in match.items())]
    assert len(rows) == 1, rows
    return rows[0]


def test_daily_consumption_of_a_known_building_matches_the_hand_computation(inputs: dict) -> None:
    daily = inputs["daily"]
    assert daily.schema == BUILDING_DAILY_CONSUMPTION.arrow_schema

    day1 = _row(daily, building_id=HANNAH, meter="electricity", date=date(2016, 1, 1))
    assert day1["consumption"] == pytest.approx(HANNAH_DAY1_KWH, abs=1e-9)
    assert (day1["reading_count"], day1["min_hourly_reading"], day1["max_hourly_reading"]) == (23, 0.5, 23.5)
    assert day1["unit"] == "kWh"
    day2 = _row(daily, building_id=HANNAH, meter="electricity", date=date(2016, 1, 2))
    assert (day2["consumption"], day2["reading_count"]) == (48.0, 24)
    water = _row(daily, building_id=HANNAH, meter="water", date=date(2016, 1, 1))
    assert (water["consumption"], water["unit"]) == (2400.0, "L")
    assert daily.num_rows == 2 * 6  # 6 building-meter series x 2 days


def test_energy_use_intensity_matches_the_hand_computation(inputs: dict) -> None:
    eui = aggregates.building_energy_use_intensity(inputs["daily"], inputs["metadata"])
    assert eui.schema == BUILDING_ENERGY_USE_INTENSITY.arrow_schema

    hannah = _row(eui, building_id=HANNAH, year=2016)
    # electricity 284.5 + 48.0, chilled water 1.25 x 48 = 60.0; water (litres) does not count; sqm 100.
    assert hannah["electricity_kwh"] == pytest.approx(332.5)
    assert hannah["energy_kwh"] == pytest.approx(392.5)
    assert hannah["eui_kwh_per_m2"] == pytest.approx(3.925)
    assert (hannah["meter_count"], hannah["reading_count"]) == (2, 47 + 48)
    cora = _row(eui, building_id=CORA, year=2016)
    assert cora["energy_kwh"] == 48.0  # solar generation is not consumption
    assert cora["eui_kwh_per_m2"] == pytest.approx(0.12)
    assert _row(eui, building_id=ZACHARY, year=2016)["eui_kwh_per_m2"] is None  # no floor area


def test_site_usage_daily_sums_buildings_of_a_use(inputs: dict) -> None:
    usage = aggregates.site_usage_daily_consumption(inputs["daily"], inputs["metadata"])
    assert usage.schema == SITE_USAGE_DAILY_CONSUMPTION.arrow_schema

    office = _row(
        usage, site_id="Panther", primaryspaceusage="Office", meter="electricity", date=date(2016, 1, 2)
    )
    assert (office["consumption"], office["building_count"], office["reading_count"]) == (48.0, 1, 24)
    lodging = _row(
        usage,
        site_id="Panther",
        primaryspaceusage="Lodging/residential",
        meter="electricity",
        date=date(2016, 1, 1),
    )
    assert lodging["consumption"] == 24.0


def test_weather_joined_daily_has_mean_temperature_and_degree_days(inputs: dict) -> None:
    joined = aggregates.building_daily_weather(inputs["daily"], inputs["weather"], inputs["site_clock"])
    assert joined.schema == BUILDING_DAILY_WEATHER.arrow_schema

    day1 = _row(joined, building_id=HANNAH, meter="electricity", date=date(2016, 1, 1))
    assert (day1["mean_air_temperature_c"], day1["weather_hour_count"]) == (10.0, 23)
    assert (day1["heating_degree_days"], day1["cooling_degree_days"], day1["degree_day_base_c"]) == (
        8.0,
        0.0,
        18.0,
    )
    day2 = _row(joined, building_id=HANNAH, meter="electricity", date=date(2016, 1, 2))
    assert (day2["mean_air_temperature_c"], day2["heating_degree_days"], day2["cooling_degree_days"]) == (
        25.0,
        0.0,
        7.0,
    )
    fox = _row(joined, building_id=ZACHARY, meter="electricity", date=date(2016, 1, 1))
    assert (fox["mean_air_temperature_c"], fox["heating_degree_days"], fox["weather_hour_count"]) == (
        None,
        None,
        0,
    )

    warmer = aggregates.building_daily_weather(
        inputs["daily"], inputs["weather"], inputs["site_clock"], degree_day_base_c=15.5
    )
    assert (
        _row(warmer, building_id=HANNAH, meter="electricity", date=date(2016, 1, 1))["heating_degree_days"]
        == 5.5
    )


def test_days_are_the_dataset_clock_days_whatever_the_convention(inputs: dict, tmp_path: Path) -> None:
    offsets = clock_offsets(inputs["metadata"], "site_standard_time")
    path = build_bdg2_zip(
        tmp_path / "bdg2.zip", {meter_member("electricity"): wide_csv(STAMPS, {HANNAH: HANNAH_ELECTRICITY})}
    )
    with Bdg2Archive(path) as archive:
        convert_meter(archive, "electricity", tmp_path / "e.parquet", utc_offset_minutes=offsets)
    daily = aggregates.building_daily_consumption(tmp_path / "e.parquet", site_clock_table(offsets))

    assert _row(daily, date=date(2016, 1, 1))["consumption"] == pytest.approx(HANNAH_DAY1_KWH)
    assert _row(daily, date=date(2016, 1, 2))["consumption"] == 48.0


def test_same_inputs_give_the_same_bytes(inputs: dict) -> None:
    def parquet_bytes(table: pa.Table) -> bytes:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    again = aggregates.building_daily_consumption(list(reversed(inputs["files"])), inputs["site_clock"])
    assert parquet_bytes(again) == parquet_bytes(inputs["daily"])
    first = aggregates.building_daily_weather(inputs["daily"], inputs["weather"], inputs["site_clock"])
    second = aggregates.building_daily_weather(again, inputs["weather"], inputs["site_clock"])
    assert parquet_bytes(first) == parquet_bytes(second)
