"""The buildings source through Dagster on the session's cluster, from the bundled BDG2-shaped record.

The sample record is served by the snapshot client (offline); every table goes through the publish path.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from energy_assets.defs.buildings import ZenodoResource
from energy_assets.defs.buildings.assets import BUILDING_MARTS, READINGS_KEY, building_assets
from energy_assets.defs.buildings.component import Bdg2Source
from energy_assets.defs.buildings.sensors import new_version_sensor
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome

SAMPLE_METERS = ("electricity", "chilledwater", "hotwater", "gas", "water")
# The bundled declaration's assets, built by the product's factory as the component does.
BUILDING_ASSETS = building_assets(Bdg2Source().meters)


@pytest.fixture(scope="module")
def resources(data_home: DataHome, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("buildings")
    return {
        "zenodo": ZenodoResource(source="sample", cache_dir=str(root / "cache")),
        "lake": LakeResource(data_home=str(data_home.root)),
        "postgres": PostgresResource(data_home=str(data_home.root)),
    }


def rows(settings: PostgresSettings, query: str, *params: object) -> list[tuple]:
    with connect(settings) as connection:
        return connection.execute(query, params).fetchall()


def materialize_all(resources: dict, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    archive, reference, readings = BUILDING_ASSETS
    results = [dg.materialize([archive, reference], resources=resources, instance=instance)]
    for meter in SAMPLE_METERS:
        results.append(
            dg.materialize([readings], partition_key=meter, resources=resources, instance=instance)
        )
    results.append(dg.materialize(BUILDING_MARTS, resources=resources, instance=instance))
    return results


def metadata_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict:
    [event] = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.is_step_materialization and e.event_specific_data.materialization.asset_key == key
    ]
    return {name: value.value for name, value in event.metadata.items()}


def test_sample_record_end_to_end_and_unchanged_rerun(resources: dict, pg_settings: PostgresSettings) -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = materialize_all(resources, instance)
    assert all(result.success for result in first)
    assert all(e.passed for result in first for e in result.get_asset_check_evaluations())

    readings = rows(pg_settings, "SELECT meter, count(*) FROM buildings.meter_readings GROUP BY 1 ORDER BY 1")
    assert [meter for meter, _ in readings] == sorted(SAMPLE_METERS)
    lake_rows = metadata_of(first[1], READINGS_KEY)["dagster/row_count"]
    assert dict(readings)["electricity"] == lake_rows
    # A hand computation from the published readings: one building's electricity on its first day.
    [(building, day, expected)] = rows(
        pg_settings,
        "SELECT building_id, (timestamp AT TIME ZONE 'UTC')::date, sum(reading) FROM buildings.meter_readings"
        " WHERE meter = 'electricity' GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1",
    )
    [(consumption,)] = rows(
        pg_settings,
        "SELECT consumption FROM marts.building_daily_consumption WHERE building_id = %s AND meter = 'electricity'"
        " AND date = %s",
        building,
        day,
    )
    assert consumption == pytest.approx(expected)
    eui = rows(
        pg_settings,
        "SELECT e.energy_kwh / m.sqm, e.eui_kwh_per_m2 FROM marts.building_energy_use_intensity e"
        " JOIN buildings.metadata m USING (building_id) WHERE m.sqm > 0 LIMIT 3",
    )
    assert eui and all(computed == pytest.approx(stored) for computed, stored in eui)

    again = materialize_all(resources, instance)
    assert all(result.success for result in again)
    for result in again[1:]:
        for event in result.all_events:
            if event.is_step_materialization:
                metadata = event.event_specific_data.materialization.metadata
                if "partitions_changed" in metadata:
                    assert metadata["partitions_changed"].value == 0
                    assert metadata["partitions_new"].value == 0
                    assert metadata["inserted"].value == 0 and metadata["updated"].value == 0


def test_a_meter_missing_from_the_archive_fails_clearly(resources: dict) -> None:
    _, _, readings = BUILDING_ASSETS
    result = dg.materialize(
        [readings],
        partition_key="steam",
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "no cleaned steam file" in failure.step_failure_data.error.message


def test_archive_is_cached_by_record_and_key(resources: dict) -> None:
    archive = BUILDING_ASSETS[0]
    result = dg.materialize([archive], resources=resources, instance=dg.DagsterInstance.ephemeral())
    [event] = [e for e in result.all_events if e.is_step_materialization]
    metadata = event.event_specific_data.materialization.metadata
    assert metadata["record_id"].value == 3887306
    path = Path(metadata["dagster/uri"].value)
    assert path.parts[-3:] == ("buds-lab", "building-data-genome-project-2-v1.0.zip")[
        -3:
    ] or path.name.endswith(".zip")
    assert metadata["downloaded_now"].value is False  # the module's first test downloaded it


def test_new_version_sensor_reports_a_newer_record_and_never_switches(tmp_path: Path) -> None:
    bdg2_new_version_sensor = new_version_sensor(Bdg2Source().version_check_interval_hours)
    from energy_assets.sources.buildings.snapshot import SAMPLE_DIR as BUILDINGS_SAMPLE
    from energy_assets_tests.sources.zenodo_server import ZenodoTestServer

    archive = next(BUILDINGS_SAMPLE.glob("*.zip")).read_bytes()
    key = "buds-lab/building-data-genome-project-2-v1.0.zip"
    server = ZenodoTestServer().start()
    try:
        server.add_record(3887306, {key: archive})
        zenodo = ZenodoResource(
            source="live", base_url=server.base_url, record="3887306", cache_dir=str(tmp_path)
        )
        context = dg.build_sensor_context(resources={"zenodo": zenodo})
        same = bdg2_new_version_sensor(context)
        assert "3887306 is the latest version" in same.skip_reason.skip_message and same.cursor == "3887306"

        server.add_record(4000001, {key: archive})  # a new version of the same concept record
        newer = bdg2_new_version_sensor(
            dg.build_sensor_context(resources={"zenodo": zenodo}, cursor=same.cursor)
        )
        assert newer.run_requests == []
        assert "newer BDG2 version exists: record 4000001" in newer.skip_reason.skip_message
        assert "BDG2_ZENODO_RECORD=4000001" in newer.skip_reason.skip_message
        assert newer.cursor == "4000001"
    finally:
        server.stop()
