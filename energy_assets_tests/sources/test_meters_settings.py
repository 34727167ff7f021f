"""Settings and table descriptions of the meter-file source."""

from __future__ import annotations

from pathlib import Path

import pytest

from energy_assets.errors import ConfigurationError
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.settings import MeterSettings, sample_files
from energy_assets.sources.meters.tables import ALL_TABLES, METER_READINGS


def test_defaults_put_the_inbox_in_the_data_home(tmp_path: Path) -> None:
    settings = MeterSettings.from_env({"ENERGY_ASSETS_HOME": str(tmp_path)})
    assert settings == MeterSettings(inbox=tmp_path / "inbox", protect_nmi=False, batch_rows=262_144)


def test_inbox_switch_and_batch_size_from_the_environment(tmp_path: Path) -> None:
    settings = MeterSettings.from_env(
        {
            "ENERGY_ASSETS_INBOX": str(tmp_path / "drop"),
            "ENERGY_METERS_PROTECT_NMI": "Yes",
            "ENERGY_METERS_BATCH_ROWS": "1000",
        }
    )
    assert settings == MeterSettings(inbox=tmp_path / "drop", protect_nmi=True, batch_rows=1000)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ENERGY_METERS_PROTECT_NMI": "maybe"}, "ENERGY_METERS_PROTECT_NMI='maybe'"),
        ({"ENERGY_METERS_BATCH_ROWS": "-1"}, "ENERGY_METERS_BATCH_ROWS='-1'"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MeterSettings.from_env({"ENERGY_ASSETS_HOME": "/tmp/x", **env})


def test_meter_readings_has_the_issue_columns_and_key() -> None:
    assert METER_READINGS.column_names == [
        "nmi",
        "nmi_suffix",
        "register_id",
        "uom",
        "interval_start",
        "interval_end",
        "value",
        "quality",
        "method",
        "reason",
        "source_file",
    ]
    assert METER_READINGS.primary_key == ("nmi", "nmi_suffix", "interval_end")
    assert [spec.qualified_name for spec in ALL_TABLES] == [
        "meters.meter_readings",
        "meters.meter_readings_history",
        "meters.ingested_files",
        "meters.protected_nmis",
        "marts.nmi_daily_consumption",
    ]
    for spec in ALL_TABLES:
        assert set(spec.primary_key) <= set(spec.column_names)
        assert all(not spec.column(name).nullable for name in spec.primary_key)


def test_sample_files_read_and_the_second_revises_the_first() -> None:
    first, revision, zipped = (read_nem12_table(path) for path in sample_files())
    assert [path.name for path in sample_files()] == [
        "NEM12_DEMO0001_MDPDEMO_RETDEMO.csv",
        "NEM12_DEMO0002_MDPDEMO_RETDEMO.csv",
        "NEM12_DEMO0003_MDPDEMO_RETDEMO.zip",
    ]
    assert (first.num_rows, revision.num_rows, zipped.num_rows) == (7 * 48 * 3, 2 * 48, 7 * 96 * 2)
    key = ["nmi", "nmi_suffix", "interval_end"]
    revised_keys = {tuple(r.values()) for r in revision.select(key).to_pylist()}
    first_keys = {tuple(r.values()) for r in first.select(key).to_pylist()}
    assert revised_keys <= first_keys
    assert set(revision.column("quality").to_pylist()) == {"A"}
