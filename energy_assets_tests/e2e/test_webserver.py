"""The platform through the real webserver and daemon: runs, a backfill and a sensor tick launched over GraphQL.

Everything goes the production way: the webserver queues a run, the daemon launches it in a run worker, the
run loads PostgreSQL over verify-full TLS, and the tests read the rows back. The runs themselves are launched
once per package (`conftest.sample_materializations`, `conftest.failing_source_run`).
"""

from __future__ import annotations

from datetime import date, timezone
from typing import Any

import pytest

from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.sources.energy_charts.local_days import local_day_window
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets_tests.e2e.conftest import (
    BACKFILL_DAYS,
    CLIENT_RETRIES,
    DAILY_JOB,
    LOCATION,
    METER_SAMPLE,
    PARTITION_SET,
    REPOSITORY,
    SERVER_ERROR_DETAIL,
    SINGLE_DAY,
    DagsterUI,
    FailingSourceRun,
    SampleMaterializations,
    prices_of_day,
    tags_of,
)

pytestmark = pytest.mark.slow

PRICE_MART = ["marts", "daily_price_analysis"]
DAY_AHEAD_PRICE = ["energy_charts", "day_ahead_price"]
INBOX_SENSOR = "meters_inbox_sensor"
METERS_JOB = "meters_ingest_job"
SENSOR_TIMEOUT_S = 240.0
OUT_OF_RANGE_KEYS = ("2017-06-01", "2099-01-01")  # before the first partition (2018-10-01); after yesterday

ASSET_MATERIALIZATIONS_QUERY = """
query AssetMaterializations($assetKey: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions) {
        partition
        runId
        metadataEntries {
          label
          ... on FloatMetadataEntry { floatValue }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}
"""

STEP_FAILURES_QUERY = """
query StepFailures($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      eventConnection(limit: 1000) {
        events {
          __typename
          ... on ExecutionStepFailureEvent {
            stepKey
            error { message causes { message } }
          }
        }
      }
    }
  }
}
"""

SENSOR_TICKS_QUERY = """
query SensorTicks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: 50) { status runIds skipReason }
      }
    }
  }
}
"""


def latest_materializations(ui: DagsterUI, asset_path: list[str], partitions: list[str]) -> dict[str, Any]:
    """The newest materialization per partition (the API lists the newest first)."""
    answer = ui.graphql(
        ASSET_MATERIALIZATIONS_QUERY, {"assetKey": {"path": asset_path}, "partitions": partitions}
    )
    latest: dict[str, Any] = {}
    for event in answer["assetOrError"]["assetMaterializations"]:
        latest.setdefault(event["partition"], event)
    return latest


def float_metadata(event: dict[str, Any], label: str) -> float:
    return next(entry["floatValue"] for entry in event["metadataEntries"] if entry["label"] == label)


def price_mart_rows(settings: PostgresSettings, days: list[str]) -> dict[str, float]:
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT local_date::text, mean_price_eur_per_mwh FROM marts.daily_price_analysis"
            " WHERE bidding_zone = 'DE-LU' AND local_date = ANY(%s::date[]) ORDER BY 1",
            (days,),
        ).fetchall()
    return dict(rows)


def power_quarter_hours(settings: PostgresSettings, day: str) -> int:
    window = local_day_window(date.fromisoformat(day))
    with connect(settings) as conn:
        return conn.execute(
            "SELECT count(DISTINCT interval_start) FROM energy_charts.public_power"
            " WHERE country = 'de' AND interval_start >= %s AND interval_start < %s",
            (window.start_utc, window.end_utc),
        ).fetchone()[0]


def price_shape(settings: PostgresSettings, day: str) -> tuple[int, set[int]]:
    """(number of prices, set of interval lengths in minutes) of a local day."""
    rows = prices_of_day(settings, day)
    return len(rows), {minutes for _start, minutes, _price in rows}


def test_partition_run_launched_over_graphql_loads_its_day(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, pg_settings: PostgresSettings
) -> None:
    run = sample_materializations.partition_run
    assert (run["status"], run["jobName"], tags_of(run)["dagster/partition"]) == (
        "SUCCESS",
        DAILY_JOB,
        SINGLE_DAY,
    )

    assert price_shape(pg_settings, SINGLE_DAY) == (24, {60})  # hourly prices before 2025-10-01
    assert power_quarter_hours(pg_settings, SINGLE_DAY) == 96
    mart = price_mart_rows(pg_settings, [SINGLE_DAY])
    event = latest_materializations(dagster_ui, PRICE_MART, [SINGLE_DAY])[SINGLE_DAY]
    assert event["runId"] == run["runId"]
    # What the UI shows for the partition is what PostgreSQL holds.
    assert float_metadata(event, "mean_price_eur_per_mwh") == pytest.approx(mart[SINGLE_DAY])


def test_two_day_backfill_over_graphql_is_one_run_loading_both_days(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, pg_settings: PostgresSettings
) -> None:
    backfill = sample_materializations.backfill
    assert backfill["status"] == "COMPLETED_SUCCESS"
    # BackfillPolicy.single_run(): one run for the whole range.
    [run] = backfill["runs"]
    tags = tags_of(run)
    assert run["status"] == "SUCCESS"
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == BACKFILL_DAYS

    first, second = BACKFILL_DAYS
    assert price_shape(pg_settings, first) == (24, {60})
    assert price_shape(pg_settings, second) == (96, {15})  # quarter-hourly from 2025-10-01
    assert [power_quarter_hours(pg_settings, day) for day in BACKFILL_DAYS] == [96, 96]
    assert sorted(price_mart_rows(pg_settings, list(BACKFILL_DAYS))) == list(BACKFILL_DAYS)
    latest = latest_materializations(dagster_ui, PRICE_MART, list(BACKFILL_DAYS))
    assert {day: event["runId"] for day, event in latest.items()} == dict.fromkeys(
        BACKFILL_DAYS, run["runId"]
    )


def test_backfilled_partitions_carry_their_own_figures(
    dagster_ui: DagsterUI, sample_materializations: SampleMaterializations, pg_settings: PostgresSettings
) -> None:
    # Dagster records a single-run backfill's one result on every partition of the range: the range's
    # figures would be plotted as each day's. So a range run records no per-day figures at all (a day run
    # does), and says how many partitions it covered.
    latest = latest_materializations(dagster_ui, PRICE_MART, list(BACKFILL_DAYS))
    assert set(latest) == set(BACKFILL_DAYS)
    for event in latest.values():
        names = {entry["label"] for entry in event["metadataEntries"]}
        assert "mean_price_eur_per_mwh" not in names, names
        assert "partitions_in_run" in names, names


def test_inbox_sensor_ticks_in_the_daemon_and_its_run_loads_the_file(
    dagster_ui: DagsterUI, pg_settings: PostgresSettings
) -> None:
    name = dagster_ui.inbox_file.name
    [requested] = dagster_ui.wait_for(
        f"a {METERS_JOB} run for {name}",
        lambda: dagster_ui.runs_with_tag(METERS_JOB, "meters/file", name),
        SENSOR_TIMEOUT_S,
    )
    run = dagster_ui.wait_for_run(requested["runId"])
    assert run["status"] == "SUCCESS"

    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": INBOX_SENSOR}
    state = dagster_ui.graphql(SENSOR_TICKS_QUERY, {"selector": selector})["sensorOrError"]["sensorState"]
    assert state["status"] == "RUNNING"
    ticks = list(reversed(state["ticks"]))  # oldest first
    requesting = [tick for tick in ticks if run["runId"] in tick["runIds"]]
    assert [tick["status"] for tick in requesting] == ["SUCCESS"]
    # The first sight of the file only notes its size and time; the tick after that requests the run.
    earlier = ticks[: ticks.index(requesting[0])]
    assert any("1 not yet stable" in (tick["skipReason"] or "") for tick in earlier), earlier

    sample = read_nem12_table(METER_SAMPLE).select(["nmi", "nmi_suffix", "interval_end"]).to_pylist()
    expected = {
        (row["nmi"].replace("QDEMO", dagster_ui.nmi_prefix), row["nmi_suffix"], row["interval_end"])
        for row in sample
    }
    with connect(pg_settings) as conn:
        loaded = conn.execute(
            "SELECT nmi, nmi_suffix, interval_end FROM meters.meter_readings WHERE nmi LIKE %s",
            (f"{dagster_ui.nmi_prefix}%",),
        ).fetchall()
        status = conn.execute(
            "SELECT status FROM meters.ingested_files WHERE file_name = %s", (name,)
        ).fetchall()
    assert set(loaded) == expected and len(loaded) == len(expected)
    assert status == [("processed",)]
    assert not dagster_ui.inbox_file.exists()
    assert [path.name for path in (dagster_ui.inbox.parent / "processed").iterdir()] == [name]


def test_a_file_source_added_from_a_sample_loads_a_dropped_file_through_the_daemon(
    dagster_ui: DagsterUI, pg_settings: PostgresSettings
) -> None:
    name, dropped = dagster_ui.file_source, dagster_ui.file_source_file
    assert dropped is not None
    job = f"{name}_ingest_job"
    [requested] = dagster_ui.wait_for(
        f"a {job} run for {dropped.name}",
        lambda: dagster_ui.runs_with_tag(job, f"{name}/file", dropped.name),
        SENSOR_TIMEOUT_S,
    )
    run = dagster_ui.wait_for_run(requested["runId"])
    assert run["status"] == "SUCCESS"
    with connect(pg_settings) as conn:
        rows = conn.execute(
            f'SELECT session_id, recorded_at, energy_kwh FROM "{name}".records ORDER BY session_id'
        ).fetchall()
        stored = conn.execute(f'SELECT customer_email FROM "{name}".records').fetchall()
    # 08:33 BST on 6 September is 07:33 UTC; 10:00 BST on 1 October is 09:00 UTC.
    assert [(session, at.astimezone(timezone.utc).isoformat(), float(kwh)) for session, at, kwh in rows] == [
        ("S1", "2018-09-06T07:33:00+00:00", 12.5),
        ("S2", "2018-09-13T22:05:00+00:00", 7.25),
        ("S3", "2018-10-01T09:00:00+00:00", 3.0),
    ]
    assert not any("@" in (email or "") for (email,) in stored)  # pseudonyms only
    assert not dropped.exists()
    assert [path.name for path in (dropped.parent / "processed").iterdir()] == [dropped.name]


def test_failing_source_fails_the_run_with_the_api_error_and_keeps_the_loaded_day(
    dagster_ui: DagsterUI,
    failing_source_run: FailingSourceRun,
    sample_materializations: SampleMaterializations,
) -> None:
    run = failing_source_run.run
    assert run["status"] == "FAILURE"
    # One request and CLIENT_RETRIES retries per endpoint, every one answered with HTTP 500.
    assert failing_source_run.requests_per_endpoint == {
        "price": 1 + CLIENT_RETRIES,
        "public_power": 1 + CLIENT_RETRIES,
    }

    events = dagster_ui.graphql(STEP_FAILURES_QUERY, {"runId": run["runId"]})["runOrError"][
        "eventConnection"
    ]["events"]
    failures = {
        event["stepKey"]: event["error"]
        for event in events
        if event["__typename"] == "ExecutionStepFailureEvent"
    }
    assert sorted(failures) == ["energy_charts__price", "energy_charts__public_power"]
    for step, error in failures.items():
        messages = " ".join([error["message"], *(cause["message"] for cause in error["causes"])])
        endpoint = step.removeprefix("energy_charts__")
        assert f"GET /{endpoint}?" in messages and "HTTP 500" in messages, messages
        assert f"persisted through {CLIENT_RETRIES} retries: {SERVER_ERROR_DETAIL}" in messages, messages

    # The day loaded before is untouched, in PostgreSQL and in the asset's history.
    assert len(failing_source_run.prices_before) == 24
    assert failing_source_run.prices_after == failing_source_run.prices_before
    partition_run_id = sample_materializations.partition_run["runId"]
    for asset_path in (DAY_AHEAD_PRICE, PRICE_MART):
        assert (
            latest_materializations(dagster_ui, asset_path, [SINGLE_DAY])[SINGLE_DAY]["runId"]
            == partition_run_id
        )


def test_backfill_of_partition_keys_out_of_range_is_refused(dagster_ui: DagsterUI) -> None:
    by_job = dagster_ui.launch_backfill(
        {
            "selector": {
                "partitionSetName": PARTITION_SET,
                "repositorySelector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY},
            },
            "partitionNames": list(OUT_OF_RANGE_KEYS),
        }
    )
    assert by_job["__typename"] == "PartitionKeysNotFoundError"
    assert sorted(by_job["partitionKeys"]) == sorted(OUT_OF_RANGE_KEYS)
    assert all(key in by_job["message"] for key in OUT_OF_RANGE_KEYS), by_job["message"]

    # An asset backfill is refused too, though Dagster's message names an internal invariant, not the keys.
    by_assets = dagster_ui.launch_backfill(
        {"partitionNames": [OUT_OF_RANGE_KEYS[0]], "assetSelection": [{"path": PRICE_MART}]}
    )
    assert by_assets["__typename"] == "PythonError", by_assets


@pytest.mark.xfail(
    strict=True,
    reason=(
        "launchRun accepts a dagster/partition tag outside the partitions definition (upstream Dagster); the run"
        " then fails in its first step at once, without retries, naming the partitions definition's start"
    ),
)
def test_run_of_a_partition_key_out_of_range_is_refused_at_launch(dagster_ui: DagsterUI) -> None:
    launched = dagster_ui.launch_run(OUT_OF_RANGE_KEYS[0])
    try:
        assert launched["__typename"] != "LaunchRunSuccess", launched
    finally:
        if launched["__typename"] == "LaunchRunSuccess":
            run_id = launched["run"]["runId"]
            dagster_ui.terminate(run_id)  # a queued run is cancelled at once; it must not hold a run slot
            dagster_ui.wait_for_run(run_id, timeout_s=120)
