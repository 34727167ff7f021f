"""Metadata and weather tables, the timestamp convention, and the source's audit rules."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from energy_assets.errors import ConfigurationError, DataValidationError
from energy_assets.sources.buildings.archive import METADATA_MEMBER, WEATHER_MEMBER, Bdg2Archive
from energy_assets.sources.buildings.errors import Bdg2CsvError
from energy_assets.sources.buildings.metadata import metadata_table
from energy_assets.sources.buildings.rules import (
    METADATA_RULES,
    METER_READINGS_RULES,
    WEATHER_RULES,
    audit_relations,
)
from energy_assets.sources.buildings.sample_builder import build_bdg2_zip, metadata_csv, weather_csv
from energy_assets.sources.buildings.settings import BuildingsSettings, TimestampConvention
from energy_assets.sources.buildings.tables import METADATA, METER_READINGS, WEATHER
from energy_assets.sources.buildings.timestamps import clock_offsets, standard_offset_minutes
from energy_assets.sources.buildings.weather import weather_table
from energy_assets.warehouse.audit import PARTITION_COLUMN, run_audit, spec_rules


def archive_with(tmp_path: Path, **replace: bytes) -> Path:
    members = {METADATA_MEMBER: metadata_csv(), WEATHER_MEMBER: weather_csv(hours=48)}
    members.update(
        {METADATA_MEMBER if name == "metadata" else WEATHER_MEMBER: data for name, data in replace.items()}
    )
    return build_bdg2_zip(tmp_path / "bdg2.zip", members)


def test_metadata_has_the_spec_schema_and_typed_values(tmp_path: Path) -> None:
    with Bdg2Archive(archive_with(tmp_path)) as archive:
        table = metadata_table(archive)

    assert table.schema == METADATA.arrow_schema
    assert table.num_rows == 6
    hannah = table.to_pylist()[0]
    assert hannah["building_id"] == "Panther_office_Hannah"
    assert hannah["sqm"] == 1200.5
    assert hannah["yearbuilt"] == 1995  # written as `1995.0`
    assert (hannah["has_electricity"], hannah["has_chilledwater"], hannah["has_steam"]) == (True, True, False)
    assert hannah["timezone"] == "US/Eastern"
    assert hannah["leed_level"] is None


def test_a_bad_meter_flag_names_line_and_column(tmp_path: Path) -> None:
    text = metadata_csv().decode().split("\r\n")
    text[3] = text[3].replace(",Yes,", ",yes please,", 1)
    with Bdg2Archive(archive_with(tmp_path, metadata="\r\n".join(text).encode())) as archive:
        with pytest.raises(Bdg2CsvError, match="expected `Yes` or empty") as raised:
            metadata_table(archive)

    assert raised.value.line == 4
    assert raised.value.member.endswith("data/metadata/metadata.csv")


def test_a_missing_metadata_column_is_named(tmp_path: Path) -> None:
    text = metadata_csv().decode().replace("sqm,sqft", "area,sqft", 1)
    with Bdg2Archive(archive_with(tmp_path, metadata=text.encode())) as archive:
        with pytest.raises(Bdg2CsvError, match=r"columns \['sqm'\] are missing"):
            metadata_table(archive)


def test_weather_is_renamed_with_units_and_placed_by_the_convention(tmp_path: Path) -> None:
    with Bdg2Archive(archive_with(tmp_path)) as archive:
        utc = weather_table(archive)
        offsets = clock_offsets(metadata_table(archive), TimestampConvention.SITE_STANDARD_TIME)
        standard = weather_table(archive, utc_offset_minutes=offsets)

    assert utc.schema == WEATHER.arrow_schema
    assert utc.num_rows == 3 * 48
    first = utc.to_pylist()[0]
    assert first["site_id"] == "Panther"
    assert first["timestamp"] == datetime(2016, 1, 1, tzinfo=timezone.utc)
    assert first["cloud_coverage_oktas"] == 0.0
    assert utc.column("cloud_coverage_oktas").null_count == 3 * 24  # every other hour empty
    assert standard.to_pylist()[0]["timestamp"] == datetime(2016, 1, 1, 5, tzinfo=timezone.utc)
    assert offsets == {"Fox": -420, "Panther": -300, "Robin": 0}


def test_weather_off_the_hourly_grid_names_the_line(tmp_path: Path) -> None:
    lines = weather_csv(hours=48).decode().split("\r\n")
    lines[9] = lines[9].replace(":00:00,", ":15:00,", 1)
    with Bdg2Archive(archive_with(tmp_path, weather="\r\n".join(lines).encode())) as archive:
        with pytest.raises(Bdg2CsvError, match="not on the hourly grid") as raised:
            weather_table(archive)

    assert (raised.value.line, raised.value.column) == (10, "timestamp")


def test_weather_with_a_non_numeric_value_names_line_and_column(tmp_path: Path) -> None:
    lines = weather_csv(hours=48).decode().split("\r\n")
    cells = lines[4].split(",")
    cells[2] = "warm"
    lines[4] = ",".join(cells)
    with Bdg2Archive(archive_with(tmp_path, weather="\r\n".join(lines).encode())) as archive:
        with pytest.raises(Bdg2CsvError, match="'warm' is not a number") as raised:
            weather_table(archive)

    assert (raised.value.line, raised.value.column) == (5, "airTemperature")


def test_standard_offsets_ignore_dst() -> None:
    assert standard_offset_minutes("US/Eastern") == -300
    assert standard_offset_minutes("Europe/London") == 0
    assert standard_offset_minutes("Australia/Adelaide") == 570
    with pytest.raises(DataValidationError, match="not an IANA zone"):
        standard_offset_minutes("Mars/Olympus")


def test_settings_read_the_environment() -> None:
    settings = BuildingsSettings.from_env(
        {
            "ENERGY_ASSETS_SOURCE": "live",
            "ZENODO_BASE_URL": "https://sandbox.zenodo.org/",
            "BDG2_ZENODO_RECORD": "10.5281/zenodo.3887306",
            "ZENODO_ACCESS_TOKEN": "t",
            "BDG2_TIMESTAMP_CONVENTION": "site_standard_time",
        }
    )
    assert settings.zenodo_base_url == "https://sandbox.zenodo.org"
    assert settings.timestamp_convention is TimestampConvention.SITE_STANDARD_TIME
    defaults = BuildingsSettings.from_env({})
    assert (defaults.source, defaults.record, defaults.timestamp_convention) == ("sample", "3887306", "utc")
    with pytest.raises(ConfigurationError, match="BDG2_TIMESTAMP_CONVENTION='local'"):
        BuildingsSettings.from_env({"BDG2_TIMESTAMP_CONVENTION": "local"})


def _candidate(rows: list[dict]) -> pa.Table:
    table = pa.Table.from_pylist(rows, schema=METER_READINGS.arrow_schema)
    return table.append_column(PARTITION_COLUMN, pa.array(["meter=" + row["meter"] for row in rows]))


def _reading(building: str, hour: int, minute: int = 0, **overrides: object) -> dict:
    row = {
        "building_id": building,
        "site_id": building.split("_")[0],
        "meter": "electricity",
        "timestamp": datetime(2016, 1, 1, hour, minute, tzinfo=timezone.utc),
        "reading": 1.5,
        "unit": "kWh",
    }
    row.update(overrides)
    return row


def test_audit_rules_catch_off_grid_unknown_buildings_sites_and_units(tmp_path: Path) -> None:
    with Bdg2Archive(archive_with(tmp_path)) as archive:
        metadata = metadata_table(archive)
    rows = [
        _reading("Panther_office_Hannah", 0),
        _reading("Panther_office_Hannah", 1, 30),
        _reading("Panther_office_Nobody", 2),
        _reading("Fox_office_Zachary", 3, site_id="Panther"),
        _reading("Robin_education_Celia", 4, unit="L"),
        _reading("Robin_education_Celia", 5, reading=-1.0),
    ]
    report = run_audit(
        METER_READINGS,
        _candidate(rows),
        [*spec_rules(METER_READINGS), *METER_READINGS_RULES],
        relations=audit_relations(metadata, "utc"),
    )

    failed = {outcome.rule: outcome.offending_rows for outcome in report.failures}
    assert failed == {
        "hourly_grid": 1,
        "building_in_metadata": 1,
        "site_matches_metadata": 1,
        "unit_matches_meter": 1,
        "bounds:reading": 1,
    }
    assert report.outcome("hourly_grid").partitions == ["meter=electricity"]


def test_the_hourly_grid_is_checked_on_the_dataset_clock(tmp_path: Path) -> None:
    with Bdg2Archive(archive_with(tmp_path)) as archive:
        metadata = metadata_table(archive)
    # Adelaide-style half-hour offsets: 00:30 UTC is a whole hour on a +9:30 clock.
    relations = audit_relations(metadata, "utc")
    relations["site_clock"] = pa.table(
        {"site_id": ["Panther"], "utc_offset_minutes": pa.array([570], pa.int32())}
    )
    report = run_audit(
        METER_READINGS,
        _candidate([_reading("Panther_office_Hannah", 0, 30)]),
        METER_READINGS_RULES,
        relations=relations,
    )
    assert report.passed


def test_weather_and_metadata_rules(tmp_path: Path) -> None:
    with Bdg2Archive(archive_with(tmp_path)) as archive:
        metadata = metadata_table(archive)
        weather = weather_table(archive)
    relations = audit_relations(metadata, "utc")
    candidate = weather.append_column(PARTITION_COLUMN, pa.array(["all"] * weather.num_rows))
    assert run_audit(WEATHER, candidate, [*spec_rules(WEATHER), *WEATHER_RULES], relations=relations).passed

    wrong_site = metadata.set_column(
        1, "site_id", pa.array(["Fox"] + metadata.column("site_id").to_pylist()[1:])
    )
    report = run_audit(
        METADATA,
        wrong_site.append_column(PARTITION_COLUMN, pa.array(["all"] * metadata.num_rows)),
        METADATA_RULES,
    )
    assert [outcome.rule for outcome in report.failures] == ["site_is_building_prefix"]
