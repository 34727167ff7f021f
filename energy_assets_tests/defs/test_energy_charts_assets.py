"""Energy-Charts assets materialized into the session's PostgreSQL cluster (verify-full TLS) and a temp lake."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from energy_assets.defs.build import build_defs
from energy_assets.defs.energy_charts import (
    EnergyChartsSource,
    energy_charts_assets,
    freshness_checks,
    materialize_sample,
)
from energy_assets.defs.energy_charts.assets import raw_path as source_raw_path
from energy_assets.defs.energy_charts.checks import FreshnessConfig
from energy_assets.defs.energy_charts.partitions import SAMPLE_PARTITION_KEYS, sample_partition_ranges
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.energy_charts.schedules import energy_charts_schedules
from energy_assets.defs.publishing import ALLOW_SHRINK_TAG
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.sources.energy_charts.errors import EnergyChartsResponseError
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR
from energy_assets.sources.energy_charts.tables import PUBLIC_POWER
from energy_assets.warehouse import ParquetStore
from energy_assets_tests.sources.energy_charts_server import EnergyChartsTestServer, Scripted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy_charts"

# The bundled declaration's assets, built by the product's factory as the component does.
SOURCE = energy_charts_assets(EnergyChartsSource())
public_power_assets, price_assets = SOURCE.public_power, SOURCE.price
ENERGY_CHARTS_ASSETS, MART_ASSETS = SOURCE.sources, SOURCE.marts
daily_production_trend = MART_ASSETS[0]
FRESHNESS_CHECKS = freshness_checks(SOURCE)
energy_charts_daily_schedule = energy_charts_schedules(SOURCE)[0]
PUBLIC_POWER_KEY = dg.AssetKey(["energy_charts", "public_power"])
PUBLIC_POWER_SHARE_KEY = dg.AssetKey(["energy_charts", "public_power_share"])
DAY_AHEAD_PRICE_KEY = dg.AssetKey(["energy_charts", "day_ahead_price"])
RAW_PUBLIC_POWER = dg.AssetKey(["raw", "energy_charts", "public_power"])
RAW_PRICE = dg.AssetKey(["raw", "energy_charts", "price"])


def raw_path(lake: LakeResource, endpoint: str, area: str, name: str) -> Path:
    return source_raw_path(lake, "energy_charts", endpoint, area, name)


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("energy_charts_lake") / "lake"


@pytest.fixture(scope="module")
def resources(data_home: DataHome, pg_settings: PostgresSettings, lake_root: Path) -> dict[str, object]:
    return {
        "energy_charts": EnergyChartsResource(source="sample", snapshot_dirs=[str(FIXTURES)]),
        "lake": LakeResource(path=str(lake_root)),
        "postgres": PostgresResource(data_home=str(data_home.root)),
    }


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def scalar(settings: PostgresSettings, query: str, *params: object) -> object:
    with connect(settings) as connection:
        return connection.execute(query, params).fetchone()[0]


def rows(settings: PostgresSettings, query: str, *params: object) -> list[tuple]:
    with connect(settings) as connection:
        return connection.execute(query, params).fetchall()


def materializations_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> list[dg.AssetMaterialization]:
    return [
        event.event_specific_data.materialization
        for event in result.all_events
        if event.is_step_materialization and event.event_specific_data.materialization.asset_key == key
    ]


def metadata_of(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, object]:
    """The run's metadata of an asset (a single-run range records one identical event per partition)."""
    materializations = materializations_of(result, key)
    assert materializations, f"{key.to_user_string()} was not materialized"
    return {name: value.value for name, value in materializations[-1].metadata.items()}


MARTS = dg.AssetKey(["marts", "daily_production_trend"])


def materialize_range(
    assets: list, first: str, last: str, resources: dict, instance: dg.DagsterInstance, **kwargs
):
    return dg.materialize(
        assets,
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        **kwargs,
    )


def test_definitions_load_with_the_energy_charts_source() -> None:
    defs = build_defs()
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_assets_def(PUBLIC_POWER_KEY)
    assert defs.resolve_job_def("energy_charts_sample_job")
    assert SAMPLE_PARTITION_KEYS == ("2023-12-31", "2025-03-30", "2025-09-30", "2025-10-01", "2025-10-26")
    assert sample_partition_ranges()[2] == ("2025-09-30", "2025-10-01")


def test_daily_schedule_targets_yesterday() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 10, 27, 6, 30, tzinfo=BERLIN))

    request = energy_charts_daily_schedule(context)

    assert request.partition_key == "2025-10-26"
    assert build_defs().resolve_schedule_def("energy_charts_daily_schedule").cron_schedule == "30 6 * * *"


def test_normal_day_end_to_end(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings, lake_root: Path
) -> None:
    result = dg.materialize(
        [*ENERGY_CHARTS_ASSETS, *MART_ASSETS],
        partition_key="2023-12-31",
        resources=resources,
        instance=instance,
    )

    assert result.success
    assert all(evaluation.passed for evaluation in result.get_asset_check_evaluations())
    per_series = rows(
        pg_settings,
        "SELECT production_type, count(*), min(interval_minutes), max(interval_minutes)"
        " FROM energy_charts.public_power WHERE interval_start >= %s AND interval_start < %s GROUP BY 1",
        datetime(2023, 12, 31, tzinfo=BERLIN),
        datetime(2024, 1, 1, tzinfo=BERLIN),
    )
    assert len(per_series) == 18  # 21 series: Nuclear (all null) left out, 2 percentage series apart
    assert {count for _, count, _, _ in per_series} == {96}
    assert {(low, high) for _, _, low, high in per_series} == {(15, 15)}
    onshore_mwh = scalar(
        pg_settings,
        "SELECT sum(value_mw * interval_minutes / 60.0) FROM energy_charts.public_power"
        " WHERE production_type = 'Wind onshore' AND interval_start >= %s AND interval_start < %s",
        datetime(2023, 12, 31, tzinfo=BERLIN),
        datetime(2024, 1, 1, tzinfo=BERLIN),
    )
    assert float(onshore_mwh) == pytest.approx(635_985.5, abs=1e-6)
    share_rows = scalar(
        pg_settings,
        "SELECT count(*) FROM energy_charts.public_power_share WHERE interval_start >= %s AND interval_start < %s",
        datetime(2023, 12, 31, tzinfo=BERLIN),
        datetime(2024, 1, 1, tzinfo=BERLIN),
    )
    assert share_rows == 2 * 96
    assert (
        scalar(
            pg_settings,
            "SELECT count(*) FROM energy_charts.day_ahead_price WHERE interval_start >= %s AND interval_start < %s",
            datetime(2023, 12, 31, tzinfo=BERLIN),
            datetime(2024, 1, 1, tzinfo=BERLIN),
        )
        == 24
    )
    trend = rows(
        pg_settings,
        "SELECT energy_mwh FROM marts.daily_production_trend WHERE local_date = '2023-12-31'"
        " AND production_type = 'Wind onshore'",
    )
    assert [float(value) for (value,) in trend] == [pytest.approx(635_985.5, abs=1e-6)]
    # Each normalized dataset carries its inferred-schema artefact, also shown as the column schema.
    power_metadata = materializations_of(result, PUBLIC_POWER_KEY)[0].metadata
    artefact = ParquetStore(lake_root).read_inferred_schema("energy_charts.public_power")
    assert artefact.primary_key == ["country", "production_type", "interval_start"]
    assert artefact.column("interval_start").pg_type == "timestamptz"
    assert power_metadata["inferred_schema"].value.endswith(
        "energy_charts.public_power/_inferred_schema.json"
    )
    columns = {c.name: c for c in power_metadata["dagster/column_schema"].schema.columns}
    assert columns["value_mw"].type == "float8" and "null" in columns["value_mw"].description
    analysis = rows(
        pg_settings,
        "SELECT negative_price_interval_count, correlation_point_count, price_wind_correlation"
        " FROM marts.daily_price_analysis WHERE local_date = '2023-12-31'",
    )
    assert analysis[0][:2] == (2, 96)
    assert -1 <= analysis[0][2] <= 1
    assert (
        scalar(
            pg_settings, "SELECT count(*) FROM marts.underperformance_30min WHERE local_date = '2023-12-31'"
        )
        == 3 * 48
    )
    assert scalar(pg_settings, "SELECT count(*) FROM energy_charts.installed_power") == 14 * 24 + 14 * 34

    power = metadata_of(result, PUBLIC_POWER_KEY)
    assert power["dagster/row_count"] == 18 * 96
    assert power["all_null_series_left_out"] == ["Nuclear"]
    assert power["dagster/table_name"] == "energy_charts.public_power"
    assert [column.name for column in power["preview"].schema.columns][:2] == ["country", "interval_start"]
    assert len(power["preview"].records) == 12
    raw = json.loads(raw_path(resources["lake"], "public_power", "de", "2023-12-31").read_text())
    assert len(raw["unix_seconds"]) == 96
    assert (
        lake_root / "energy_charts.public_power" / "country=de" / "date=2023-12-31" / "part-0.parquet"
    ).exists()


def test_mixed_price_days_as_one_single_run_backfill(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings
) -> None:
    result = materialize_range(
        [public_power_assets, price_assets],
        "2025-09-30",
        "2025-10-01",
        resources,
        instance,
    )

    assert result.success
    # One request per series and chunk of days, not one per day.
    assert metadata_of(result, RAW_PRICE)["requests"] == 1
    assert metadata_of(result, RAW_PUBLIC_POWER)["requests"] == 1
    assert len(materializations_of(result, DAY_AHEAD_PRICE_KEY)) == 2  # one event per partition
    by_minutes = rows(
        pg_settings,
        "SELECT interval_minutes, count(*) FROM energy_charts.day_ahead_price"
        " WHERE interval_start >= %s AND interval_start < %s GROUP BY 1 ORDER BY 1",
        datetime(2025, 9, 30, tzinfo=BERLIN),
        datetime(2025, 10, 2, tzinfo=BERLIN),
    )
    assert by_minutes == [(15, 96), (60, 24)]
    price_meta = metadata_of(result, DAY_AHEAD_PRICE_KEY)
    assert price_meta["intervals_by_minutes"] == {"60": 24, "15": 96}
    assert price_meta["units_seen"] == ["EUR / MWh"]
    materialized = instance.get_materialized_partitions(DAY_AHEAD_PRICE_KEY)
    assert {"2025-09-30", "2025-10-01"} <= materialized


def test_dst_days_load_92_and_100_quarter_hours(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings
) -> None:
    for key, expected in (("2025-03-30", 92), ("2025-10-26", 100)):
        result = dg.materialize(
            [public_power_assets],
            partition_key=key,
            resources=resources,
            instance=instance,
        )
        assert result.success
        [interval_check] = [
            e
            for e in result.get_asset_check_evaluations()
            if e.check_name == "complete_local_days" and e.asset_key == PUBLIC_POWER_KEY
        ]
        assert interval_check.passed
        counts = rows(
            pg_settings,
            "SELECT DISTINCT count(*) FROM energy_charts.public_power"
            " WHERE (interval_start AT TIME ZONE 'Europe/Berlin')::date = %s GROUP BY production_type",
            datetime.fromisoformat(key).date(),
        )
        assert counts == [(expected,)]


def revised_snapshot(resources: dict, folder: Path, endpoint: str, params: dict, body: dict) -> dict:
    """Resources whose snapshot client answers `endpoint` with `params` by `body` (a revised response)."""
    (folder / "revised.json").write_text(json.dumps(body))
    (folder / "index.json").write_text(
        json.dumps({"responses": [{"endpoint": endpoint, "params": params, "file": "revised.json"}]})
    )
    return {**resources, "energy_charts": EnergyChartsResource(source="sample", snapshot_dirs=[str(folder)])}


def test_rematerializing_a_changed_day_reports_updates(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    first = dg.materialize(
        [price_assets],
        partition_key="2025-10-26",
        resources=resources,
        instance=instance,
    )
    assert first.success
    # A revised response: the same day with three prices changed.
    revised = json.loads((SAMPLE_DIR / "price_DE-LU_2025-10-26.json").read_text())
    for index in (10, 11, 12):
        revised["price"][index] += 1.0
    revised_resources = revised_snapshot(
        resources, tmp_path, "price", {"bzn": "DE-LU", "start": "2025-10-26", "end": "2025-10-26"}, revised
    )

    second = dg.materialize(
        [price_assets],
        partition_key="2025-10-26",
        resources=revised_resources,
        instance=instance,
    )

    assert second.success
    counts = metadata_of(second, DAY_AHEAD_PRICE_KEY)
    assert (counts["inserted"], counts["updated"], counts["unchanged"]) == (0, 3, 97)
    stored = scalar(
        pg_settings,
        "SELECT price_eur_per_mwh FROM energy_charts.day_ahead_price WHERE bidding_zone = 'DE-LU' AND interval_start = %s",
        datetime.fromtimestamp(revised["unix_seconds"][10], tz=BERLIN),
    )
    assert stored == pytest.approx(revised["price"][10])


def test_refetched_day_without_a_series_deletes_its_rows(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    first = dg.materialize(
        [public_power_assets],
        partition_key="2025-10-26",
        resources=resources,
        instance=instance,
    )
    assert first.success
    revised = json.loads((SAMPLE_DIR / "public_power_de_2025-10-26.json").read_text())
    revised["production_types"] = [s for s in revised["production_types"] if s["name"] != "Geothermal"]
    revised_resources = revised_snapshot(
        resources,
        tmp_path,
        "public_power",
        {"country": "de", "start": "2025-10-26", "end": "2025-10-26"},
        revised,
    )

    refused = dg.materialize(
        [public_power_assets],
        partition_key="2025-10-26",
        resources=revised_resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not refused.success
    shrink = [e for e in refused.get_asset_check_evaluations() if e.check_name == "no_shrinking_partition"]
    assert [e.passed for e in shrink if e.asset_key == PUBLIC_POWER_KEY] == [False]

    second = dg.materialize(
        [public_power_assets],
        partition_key="2025-10-26",
        resources=revised_resources,
        instance=instance,
        tags={ALLOW_SHRINK_TAG: "true"},
    )

    assert second.success
    counts = metadata_of(second, PUBLIC_POWER_KEY)
    assert (counts["inserted"], counts["updated"], counts["deleted"]) == (0, 0, 100)
    assert all(evaluation.passed for evaluation in second.get_asset_check_evaluations())
    left = scalar(
        pg_settings,
        "SELECT count(*) FROM energy_charts.public_power WHERE production_type = 'Geothermal'"
        " AND interval_start >= %s AND interval_start < %s",
        datetime(2025, 10, 26, tzinfo=BERLIN),
        datetime(2025, 10, 27, tzinfo=BERLIN),
    )
    assert left == 0


def test_bad_response_names_endpoint_partition_and_field_and_loads_nothing(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings
) -> None:
    result = dg.materialize(
        [public_power_assets],
        partition_key="2024-06-17",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    cause = failure.step_failure_data.error.cause
    message = cause.message
    assert cause.cls_name == EnergyChartsResponseError.__name__
    assert (
        "/public_power response for partition 2024-06-17 (de), field production_types[1].data ('Wind onshore')"
        in message
    )
    assert not raw_path(resources["lake"], "public_power", "de", "2024-06-17").exists()
    assert (
        scalar(
            pg_settings,
            "SELECT count(*) FROM energy_charts.public_power WHERE interval_start >= %s AND interval_start < %s",
            datetime(2024, 6, 17, tzinfo=BERLIN),
            datetime(2024, 6, 18, tzinfo=BERLIN),
        )
        == 0
    )


def test_blocking_interval_check_keeps_a_short_day_out_of_the_marts(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings
) -> None:
    result = dg.materialize(
        [public_power_assets, daily_production_trend],
        partition_key="2024-06-18",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    evaluations = {
        evaluation.check_name: evaluation
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.asset_key == PUBLIC_POWER_KEY
    }
    assert evaluations["complete_local_days"].passed is False
    assert evaluations["complete_local_days"].metadata["failed_partitions"].value == [
        "country=de/date=2024-06-18"
    ]
    assert evaluations["unique_key"].passed is True
    assert materializations_of(result, MARTS) == []
    assert (
        scalar(
            pg_settings, "SELECT count(*) FROM marts.daily_production_trend WHERE local_date = '2024-06-18'"
        )
        == 0
    )


def test_live_source_against_the_local_api_server_with_a_429(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings
) -> None:
    server = EnergyChartsTestServer().start()
    try:
        server.script("price", [Scripted(429, "Too Many Requests", headers={"Retry-After": "1"})])
        live = EnergyChartsResource(
            source="live", base_url=server.base_url, min_seconds_between_requests=0.0, backoff_factor_s=0.05
        )
        result = dg.materialize(
            [price_assets],
            partition_key="2025-03-30",
            resources={**resources, "energy_charts": live},
            instance=instance,
        )
    finally:
        server.stop()

    assert result.success
    assert len(server.requests_to("price")) == 2
    assert server.requests[0].headers["User-Agent"].startswith("energy_assets/")
    prices = rows(
        pg_settings,
        "SELECT price_eur_per_mwh FROM energy_charts.day_ahead_price WHERE interval_start >= %s AND interval_start < %s"
        " ORDER BY interval_start",
        datetime(2025, 3, 30, tzinfo=BERLIN),
        datetime(2025, 3, 31, tzinfo=BERLIN),
    )
    assert len(prices) == 23
    assert prices[0][0] == 46.31


def test_raw_dir_layout(resources: dict) -> None:
    assert raw_path(resources["lake"], "price", "DE-LU", "2025-03-30").parts[-4:] == (
        "energy_charts",
        "price",
        "DE-LU",
        "2025-03-30.json",
    )


def test_materialize_sample_runs_every_sample_day_offline(
    data_home: DataHome, pg_settings: PostgresSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Even with the live source configured, the sample never touches the network.
    monkeypatch.setenv("ENERGY_ASSETS_SOURCE", "live")
    monkeypatch.setenv("ENERGY_CHARTS_BASE_URL", "http://127.0.0.1:9")
    lake = LakeResource(path=str(tmp_path / "lake"))
    defs = build_defs(
        resource_overrides={"postgres": PostgresResource(data_home=str(data_home.root)), "lake": lake}
    )

    results = materialize_sample(defs, dg.DagsterInstance.ephemeral())

    assert [result.success for result in results] == [True] * 5
    per_day = dict(
        rows(
            pg_settings,
            "SELECT (interval_start AT TIME ZONE 'Europe/Berlin')::date, count(*) FROM energy_charts.public_power"
            " WHERE (interval_start AT TIME ZONE 'Europe/Berlin')::date = ANY(%s::date[]) GROUP BY 1",
            list(SAMPLE_PARTITION_KEYS),
        )
    )
    assert {day.isoformat(): count for day, count in per_day.items()} == {
        "2023-12-31": 18 * 96,
        "2025-03-30": 19 * 92,
        "2025-09-30": 19 * 96,
        "2025-10-01": 19 * 96,
        "2025-10-26": 19 * 100,
    }
    assert (
        scalar(
            pg_settings,
            "SELECT count(*) FROM marts.daily_price_analysis WHERE local_date = ANY(%s::date[])",
            list(SAMPLE_PARTITION_KEYS),
        )
        == 5
    )
    baseline = rows(
        pg_settings,
        "SELECT DISTINCT baseline_day_count FROM marts.underperformance_30min"
        " WHERE local_date = '2025-10-26' AND production_type = 'Wind onshore'",
    )
    assert baseline == [(2,)]  # 2025-09-30 and 2025-10-01 lie within the 28-day lookback
    assert (
        tmp_path / "lake" / "marts.underperformance_30min" / "date=2025-10-26" / "part-0.parquet"
    ).exists()


def test_freshness_check_reads_the_newest_lake_partition(tmp_path: Path) -> None:
    lake = LakeResource(path=str(tmp_path / "lake"))
    lake.store().write_partition(
        "energy_charts.public_power", {"country": "de", "date": "2025-10-26"}, PUBLIC_POWER.empty()
    )
    [public_power_fresh, _] = FRESHNESS_CHECKS

    lenient = public_power_fresh(config=FreshnessConfig(max_lag_days=100_000), lake=lake)
    strict = public_power_fresh(config=FreshnessConfig(max_lag_days=1), lake=lake)

    assert lenient.passed
    assert not strict.passed
    assert strict.severity == dg.AssetCheckSeverity.WARN
    assert strict.metadata["details"].value["latest_partition"] == "2025-10-26"


# ---------------------------------------------------------------------------------------------------------
# The publish path: nothing is published before it is audited


def _drop_last_quarter_hours(body: dict) -> None:
    body["unix_seconds"] = body["unix_seconds"][:-8]
    for series in body["production_types"]:
        series["data"] = series["data"][:-8]


def _shift_off_grid(body: dict) -> None:
    body["unix_seconds"] = [ts + 7 * 60 for ts in body["unix_seconds"]]


def _duplicate_timestamp(body: dict) -> None:
    body["unix_seconds"][5] = body["unix_seconds"][4]


def _price_1e308(body: dict) -> None:
    body["price"][7] = 1e308


def _power_1e308(body: dict) -> None:
    next(s for s in body["production_types"] if s["name"] == "Wind onshore")["data"][7] = 1e308


def _power_nan(body: dict) -> None:
    next(s for s in body["production_types"] if s["name"] == "Solar")["data"][7] = float("nan")


BAD_REFETCHES = {
    "missing quarter hours": ("public_power", _drop_last_quarter_hours, "complete_local_days"),
    "timestamp off the grid": ("public_power", _shift_off_grid, "interval_grid"),
    "duplicated timestamp": ("price", _duplicate_timestamp, None),
    "price of 1e308": ("price", _price_1e308, "bounds"),
    "power of 1e308": ("public_power", _power_1e308, "bounds"),
    "NaN": ("public_power", _power_nan, None),  # the response parser refuses non-finite numbers itself
}


def _state(settings: PostgresSettings, lake_root: Path, raw_root: Path) -> dict[str, object]:
    """Everything a refused re-fetch must leave as it was: raw files, lake files, tables and marts."""
    files = {
        str(path.relative_to(root)): path.read_bytes()
        for root in (lake_root, raw_root)
        for path in sorted(root.rglob("*"))
        if path.is_file() and "2025-10-01" in str(path)
    }
    tables = {
        table: rows(
            settings,
            f"SELECT * FROM {table} WHERE {column} >= %s AND {column} < %s ORDER BY 1, 2, 3",
            low,
            high,
        )
        for table, column, low, high in (
            (
                "energy_charts.public_power",
                "interval_start",
                datetime(2025, 10, 1, tzinfo=BERLIN),
                datetime(2025, 10, 2, tzinfo=BERLIN),
            ),
            (
                "energy_charts.day_ahead_price",
                "interval_start",
                datetime(2025, 10, 1, tzinfo=BERLIN),
                datetime(2025, 10, 2, tzinfo=BERLIN),
            ),
            (
                "marts.daily_production_trend",
                "local_date",
                datetime(2025, 10, 1).date(),
                datetime(2025, 10, 2).date(),
            ),
            (
                "marts.daily_price_analysis",
                "local_date",
                datetime(2025, 10, 1).date(),
                datetime(2025, 10, 2).date(),
            ),
        )
    }
    return {"files": files, "tables": tables}


@pytest.mark.parametrize("case", list(BAD_REFETCHES))
def test_a_bad_refetch_fails_the_run_and_changes_nothing(
    case: str,
    resources: dict,
    instance: dg.DagsterInstance,
    pg_settings: PostgresSettings,
    lake_root: Path,
    tmp_path: Path,
) -> None:
    assets = [public_power_assets, price_assets, *MART_ASSETS[:2]]
    assert dg.materialize(assets, partition_key="2025-10-01", resources=resources, instance=instance).success
    raw_root = resources["lake"].raw_dir()
    before = _state(pg_settings, lake_root, raw_root)
    endpoint, damage, rule = BAD_REFETCHES[case]
    name = "public_power_de_2025-10-01.json" if endpoint == "public_power" else "price_DE-LU_2025-10-01.json"
    body = json.loads((SAMPLE_DIR / name).read_text())
    damage(body)
    area = {"country": "de"} if endpoint == "public_power" else {"bzn": "DE-LU"}
    bad = revised_snapshot(
        resources, tmp_path, endpoint, {**area, "start": "2025-10-01", "end": "2025-10-01"}, body
    )

    result = dg.materialize(
        assets, partition_key="2025-10-01", resources=bad, instance=instance, raise_on_error=False
    )

    assert not result.success
    assert _state(pg_settings, lake_root, raw_root) == before
    downstream = MARTS if endpoint == "public_power" else dg.AssetKey(["marts", "daily_price_analysis"])
    assert materializations_of(result, downstream) == []
    if rule is not None:
        failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
        assert rule in {e.check_name for e in failed}
        table = PUBLIC_POWER_KEY if endpoint == "public_power" else DAY_AHEAD_PRICE_KEY
        [evaluation] = [e for e in failed if e.check_name == rule and e.asset_key == table]
        assert "2025-10-01" in evaluation.metadata["failed_partitions"].value[0]
        assert evaluation.metadata["offending_rows"].value >= 1
        reports = sorted(
            resources["lake"].rejected_dir().rglob("report.json"), key=lambda p: p.stat().st_mtime
        )
        report = json.loads(reports[-1].read_text())
        assert any(
            outcome["rule"].startswith(rule) and not outcome["passed"] for outcome in report["outcomes"]
        )
        assert list(reports[-1].parent.glob("*.parquet"))


def test_an_unchanged_rerun_reports_unchanged_and_rewrites_nothing(
    resources: dict, instance: dg.DagsterInstance, lake_root: Path
) -> None:
    assets = [public_power_assets, price_assets, *MART_ASSETS]
    assert dg.materialize(assets, partition_key="2023-12-31", resources=resources, instance=instance).success
    mart_file = lake_root / "marts.daily_price_analysis" / "date=2023-12-31" / "part-0.parquet"
    before = (mart_file.read_bytes(), mart_file.stat().st_mtime_ns)

    again = dg.materialize(assets, partition_key="2023-12-31", resources=resources, instance=instance)

    assert again.success
    for key in (PUBLIC_POWER_KEY, PUBLIC_POWER_SHARE_KEY, DAY_AHEAD_PRICE_KEY, MARTS):
        metadata = metadata_of(again, key)
        assert (metadata["partitions_unchanged"], metadata["inserted"], metadata["updated"]) == (1, 0, 0), key
    assert (mart_file.read_bytes(), mart_file.stat().st_mtime_ns) == before


def test_a_40_day_backfill_makes_the_same_database_round_trips_as_a_5_day_one(
    data_home: DataHome, pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    from benchmarks.energy_charts_replay import ReplayServer, SyntheticYear

    def stats() -> tuple[int, int]:
        with connect(pg_settings) as connection:
            sessions, commits = connection.execute(
                "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        return sessions, commits

    def quiet_autovacuum() -> None:
        """Autovacuum and autoanalyze run transactions in the same database: keep them out of the count."""
        with connect(pg_settings) as connection:
            tables = connection.execute(
                "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
            ).fetchall()
            for (table,) in tables:
                connection.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
            connection.commit()

    quiet_autovacuum()
    year = SyntheticYear(datetime(2024, 1, 30).date(), datetime(2024, 4, 30).date())
    used = {}
    with ReplayServer(year) as server:
        live = EnergyChartsResource(source="live", base_url=server.base_url, min_seconds_between_requests=0.0)
        for label, first, last in (
            ("warm-up", "2024-01-30", "2024-01-31"),  # every table exists, so both measured runs merge
            ("5 days", "2024-02-01", "2024-02-05"),
            ("40 days", "2024-03-01", "2024-04-09"),
        ):
            lake = LakeResource(path=str(tmp_path / label / "lake"))
            run_resources = {
                "energy_charts": live,
                "lake": lake,
                "postgres": PostgresResource(data_home=str(data_home.root)),
            }
            run_resources["postgres"].settings()  # the cluster check is not part of the run's work
            before = stats()
            result = materialize_range(
                [public_power_assets, price_assets, *MART_ASSETS[:2]],
                first,
                last,
                run_resources,
                dg.DagsterInstance.ephemeral(),
            )
            after = stats()
            quiet_autovacuum()
            assert result.success
            used[label] = (after[0] - before[0] - 1, after[1] - before[1] - 1)  # minus the stats query itself
    assert used["40 days"][0] == used["5 days"][0], used  # sessions (connections) do not grow with the range
    assert used["40 days"][1] <= used["5 days"][1] + 2, used  # nor do transactions
    assert used["40 days"][0] <= 40, used


def _published_record(settings: PostgresSettings, table: str, label: str) -> tuple:
    return tuple(
        rows(
            settings,
            "SELECT content_sha256, row_count, series_count, load_id FROM energy_meta.published_partitions"
            " WHERE table_schema || '.' || table_name = %s AND lake_partition = %s",
            table,
            label,
        )[0]
    )


def test_a_refetch_that_nulls_published_values_is_refused_unless_the_run_carries_the_tag(
    resources: dict, instance: dg.DagsterInstance, pg_settings: PostgresSettings, lake_root: Path
) -> None:
    """The same timestamps with Solar 40-49 as null: nothing changes (raw, lake, PostgreSQL, publish record,
    marts) unless the run carries the documented tag, written out here as the README names it."""
    assets = [public_power_assets, price_assets, *MART_ASSETS[:2]]
    raw_root = resources["lake"].raw_dir()
    label = "country=de/date=2025-10-01"
    server = EnergyChartsTestServer().start()
    try:
        live = {
            **resources,
            "energy_charts": EnergyChartsResource(
                source="live", base_url=server.base_url, min_seconds_between_requests=0.0
            ),
        }
        assert dg.materialize(assets, partition_key="2025-10-01", resources=live, instance=instance).success
        before = _state(pg_settings, lake_root, raw_root)
        record = _published_record(pg_settings, "energy_charts.public_power", label)
        body = json.loads((SAMPLE_DIR / "public_power_de_2025-10-01.json").read_text())
        solar = next(series for series in body["production_types"] if series["name"] == "Solar")
        assert solar["data"][40] == 15192.7 and None not in solar["data"]
        solar["data"][40:50] = [None] * 10

        server.script("public_power", [Scripted(200, body)])
        refused = dg.materialize(
            assets, partition_key="2025-10-01", resources=live, instance=instance, raise_on_error=False
        )

        assert not refused.success
        assert _state(pg_settings, lake_root, raw_root) == before
        assert _published_record(pg_settings, "energy_charts.public_power", label) == record
        assert materializations_of(refused, MARTS) == []
        [shrink] = [
            e
            for e in refused.get_asset_check_evaluations()
            if e.check_name == "no_shrinking_partition" and e.asset_key == PUBLIC_POWER_KEY
        ]
        assert not shrink.passed
        assert shrink.metadata["failed_partitions"].value == [label]
        assert shrink.metadata["first_offending_rows"].value == {
            "no_shrinking_partition:values": [
                {
                    "lake_partition": label,
                    "series": "country=de/production_type=Solar",
                    "value_column": "value_mw",
                    "published_values": 96,
                    "candidate_values": 86,
                    "lost_values": 10,
                }
            ]
        }
        [failure] = [event for event in refused.all_events if event.is_step_failure]
        message = failure.step_failure_data.error.cause.message
        assert (
            label in message
            and "country=de/production_type=Solar" in message
            and '"lost_values": 10' in message
        )
        assert "rule no_shrinking_partition:values failed for 1 series and column(s) losing values" in message
        assert (
            "re-run with the tag energy_assets/allow_shrink=true." in failure.step_failure_data.error.message
        )

        server.script("public_power", [Scripted(200, body)])
        accepted = dg.materialize(
            assets,
            partition_key="2025-10-01",
            resources=live,
            instance=instance,
            tags={"energy_assets/allow_shrink": "true"},
        )
    finally:
        server.stop()

    assert accepted.success
    assert all(evaluation.passed for evaluation in accepted.get_asset_check_evaluations())
    assert metadata_of(accepted, PUBLIC_POWER_KEY)["updated"] == 10
    solar_values = rows(
        pg_settings,
        "SELECT count(*), count(value_mw) FROM energy_charts.public_power WHERE production_type = 'Solar'"
        " AND interval_start >= %s AND interval_start < %s",
        datetime(2025, 10, 1, tzinfo=BERLIN),
        datetime(2025, 10, 2, tzinfo=BERLIN),
    )
    assert solar_values == [(96, 86)]
    assert rows(
        pg_settings,
        "SELECT interval_count FROM marts.daily_production_trend WHERE local_date = '2025-10-01'"
        " AND production_type = 'Solar'",
    ) == [(86,)]
    raw = json.loads(raw_path(resources["lake"], "public_power", "de", "2025-10-01").read_text())
    assert next(s for s in raw["production_types"] if s["name"] == "Solar")["data"][40:50] == [None] * 10
    assert _published_record(pg_settings, "energy_charts.public_power", label)[0] != record[0]
