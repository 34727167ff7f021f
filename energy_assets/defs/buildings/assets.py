"""Buildings assets: the BDG2 archive from Zenodo, its tables in long form, and the building marts.

Keep dataset logic out of this module: the Zenodo client, the download cache, the zip members, the
wide-to-long conversion and the publish requests (`ingest`), the audit rules and the mart SQL live in
`energy_assets.sources.buildings`; every table asset is built by the table-asset factory
(`energy_assets.defs.factories`), which audits, publishes and reports.

    Zenodo record -> raw/buildings/bdg2_archive (verified zip in the download cache)
                  -> buildings/metadata, buildings/weather        (one step: both read the archive)
                  -> buildings/meter_readings                     (static partitions: one per meter)
    -> marts/building_daily_consumption -> marts/site_usage_daily_consumption,
       marts/building_energy_use_intensity, marts/building_daily_weather
"""

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from energy_assets.defs.buildings.partitions import meter_partitions
from energy_assets.defs.buildings.resources import ZenodoResource
from energy_assets.defs.factories import (
    AssetOutput,
    MartOutput,
    Publish,
    TableDeclaration,
    TableOutput,
    failures_by_kind,
    mart_asset,
    table_asset,
)
from energy_assets.defs.policy import NETWORK_RETRY
from energy_assets.defs.publishing import table_asset_key
from energy_assets.defs.resources import LakeResource
from energy_assets.sources.buildings import Bdg2Archive, CachedFile, fetch_file
from energy_assets.sources.buildings.aggregates import (
    building_daily_consumption as daily_consumption_sql,
)
from energy_assets.sources.buildings.aggregates import (
    building_daily_weather as daily_weather_sql,
)
from energy_assets.sources.buildings.aggregates import (
    building_energy_use_intensity as energy_use_intensity_sql,
)
from energy_assets.sources.buildings.aggregates import (
    site_usage_daily_consumption as site_usage_sql,
)
from energy_assets.sources.buildings.ingest import meter_requests, reference_requests
from energy_assets.sources.buildings.rules import METADATA_RULES, METER_READINGS_RULES, WEATHER_RULES
from energy_assets.sources.buildings.tables import (
    BUILDING_DAILY_CONSUMPTION,
    BUILDING_DAILY_WEATHER,
    BUILDING_ENERGY_USE_INTENSITY,
    METADATA,
    METER_READINGS,
    SITE_USAGE_DAILY_CONSUMPTION,
    WEATHER,
)
from energy_assets.sources.buildings.timestamps import clock_offsets, site_clock_table
from energy_assets.warehouse.publish import Candidate, read_published
from energy_assets.warehouse.table_spec import TableSpec

GROUP = "buildings"
ARCHIVE_KEY = dg.AssetKey(["raw", "buildings", "bdg2_archive"])


METADATA_KEY, WEATHER_KEY, READINGS_KEY = (
    table_asset_key(METADATA),
    table_asset_key(WEATHER),
    table_asset_key(METER_READINGS),
)


def fetch_archive(zenodo: ZenodoResource) -> CachedFile:
    """The record's zip from the download cache (downloaded, size- and md5-verified on first use)."""
    client = zenodo.client()
    record = client.record(zenodo.settings().record)
    zips = [file for file in record.files if file.key.endswith(".zip")]
    if len(zips) != 1:
        keys = ", ".join(file.key for file in record.files) or "none"
        raise dg.Failure(
            f"Zenodo record {record.record_id} should hold exactly one .zip (the BDG2 snapshot); it holds: {keys}."
            " Set BDG2_ZENODO_RECORD to a BDG2 record.",
            allow_retries=False,
        )
    return fetch_file(client, record.record_id, zips[0].key, zenodo.cache(client))


def published_metadata(lake: LakeResource) -> pa.Table:
    store = lake.store()
    return read_published(store, METADATA, store.list_partitions(METADATA.qualified_name))


@dg.asset(
    key=ARCHIVE_KEY,
    group_name=GROUP,
    kinds={"python", "zip"},
    retry_policy=NETWORK_RETRY,
    description=(
        "The Building Data Genome 2 archive (Zenodo record BDG2_ZENODO_RECORD, default 3887306, DOI"
        " 10.5281/zenodo.3887306) in the download cache, keyed by record id and file key: streamed, resumed"
        " with Range/If-Range after an interruption, size and md5 verified before it is published."
    ),
)
def bdg2_archive(context: dg.AssetExecutionContext, zenodo: ZenodoResource) -> dg.MaterializeResult:
    with failures_by_kind(""):
        cached = fetch_archive(zenodo)
        with Bdg2Archive(cached.path) as archive:
            meters = archive.available_meters(zenodo.kind())
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(str(cached.path)),
            "record_id": cached.file.record_id,
            "file_key": cached.file.key,
            "bytes": cached.file.size,
            "md5": cached.file.md5,
            "downloaded_now": cached.downloaded,
            "resumed_from_bytes": cached.resumed_from_bytes,
            "meters_in_archive": dg.MetadataValue.json(meters),
        }
    )


def _reference(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput:
    zenodo: ZenodoResource = context.resources.zenodo
    with Bdg2Archive(fetch_archive(zenodo).path) as archive:
        reference = reference_requests(archive, zenodo.settings().timestamp_convention)
    results = publish(reference.requests)
    previews = (reference.metadata, reference.weather)
    return AssetOutput(
        [
            TableOutput(request, result, preview=preview, figures={"sites": len(request.candidates)})
            for request, result, preview in zip(reference.requests, results, previews, strict=True)
        ]
    )


buildings__reference = table_asset(
    name="buildings__reference",
    tables=[
        TableDeclaration(
            METADATA,
            "One row per building (site, primary space usage, floor area, time zone, meters): buildings.metadata.",
            rules=METADATA_RULES,
            deps=[ARCHIVE_KEY],
        ),
        TableDeclaration(
            WEATHER,
            "Hourly weather per site (air temperature, dew point, wind, pressure, precipitation): buildings.weather.",
            rules=WEATHER_RULES,
            deps=[ARCHIVE_KEY],
        ),
    ],
    compute=_reference,
    group_name=GROUP,
    resource_keys=["zenodo"],
)


def _meter_readings(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput:
    zenodo: ZenodoResource = context.resources.zenodo
    lake: LakeResource = context.resources.lake
    metadata = published_metadata(lake)
    if metadata.num_rows == 0:
        raise dg.Failure(
            "No buildings.metadata published yet: materialize buildings/metadata first.", allow_retries=False
        )
    workdir = Path(
        tempfile.mkdtemp(prefix="bdg2_", dir=lake.root().parent if lake.root().parent.exists() else None)
    )
    try:
        with Bdg2Archive(fetch_archive(zenodo).path) as archive:
            readings = meter_requests(
                archive,
                context.partition_keys,
                kind=zenodo.kind(),
                metadata=metadata,
                convention=zenodo.settings().timestamp_convention,
                workdir=workdir,
            )
        [result] = publish([readings.request])
        candidates = readings.request.candidates
        preview = pq.read_table(candidates[0].data).slice(0, 5000) if candidates else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stats = readings.stats.values()
    figures = {
        "values": sum(s.values for s in stats),
        "empty_cells": sum(s.empty_cells for s in stats),
        "buildings": sum(s.buildings for s in stats),
        "conversion_seconds": round(sum(s.seconds for s in stats), 3),
    }
    return AssetOutput(
        [TableOutput(readings.request, result, preview=preview, figures=figures)],
        partitions_in_run=len(candidates),
    )


def meter_readings_asset(partitions: dg.StaticPartitionsDefinition) -> dg.AssetsDefinition:
    """buildings.meter_readings, one partition per declared meter."""
    return table_asset(
        name="buildings__meter_readings",
        tables=[
            TableDeclaration(
                METER_READINGS,
                "Hourly meter readings in long form, one row per non-empty cell of the wide BDG2 meter files"
                " (`cleaned` by default): building_id, site_id, meter, timestamp (UTC, see BDG2_TIMESTAMP_CONVENTION),"
                " reading and unit (kWh; water and irrigation in litres). One partition per meter:"
                " buildings.meter_readings.",
                rules=METER_READINGS_RULES,
                deps=[ARCHIVE_KEY, METADATA_KEY],
            )
        ],
        compute=_meter_readings,
        group_name=GROUP,
        partitions_def=partitions,
        resource_keys=["zenodo"],
    )


# ---------------------------------------------------------------------------------------------------------
# Marts (not partitioned: each recomputes from everything published; unchanged partitions are not rewritten)


def _site_clock(context: dg.AssetExecutionContext) -> pa.Table:
    convention = context.resources.zenodo.settings().timestamp_convention
    return site_clock_table(clock_offsets(published_metadata(context.resources.lake), convention))


def _all(lake: LakeResource, spec: TableSpec) -> pa.Table:
    store = lake.store()
    return read_published(store, spec, store.list_partitions(spec.qualified_name))


def _per_meter(table: pa.Table) -> list[Candidate]:
    meters = sorted(set(table.column("meter").to_pylist()))
    return [
        Candidate({"meter": m}, {"meter": m}, table.filter(pc.equal(table.column("meter"), m)))
        for m in meters
    ]


def _building_daily(context: dg.AssetExecutionContext) -> MartOutput:
    readings = _all(context.resources.lake, METER_READINGS)
    daily = daily_consumption_sql(readings, _site_clock(context))
    electricity = daily.filter(pc.equal(daily.column("meter"), "electricity"))
    figures = {
        "building_days": daily.num_rows,
        "electricity_kwh": float(pc.sum(electricity.column("consumption")).as_py() or 0.0),
    }
    return MartOutput(daily, _per_meter(daily), figures)


def _site_usage(context: dg.AssetExecutionContext) -> MartOutput:
    lake = context.resources.lake
    table = site_usage_sql(_all(lake, BUILDING_DAILY_CONSUMPTION), published_metadata(lake))
    return MartOutput(table, _per_meter(table), {"site_usage_days": table.num_rows})


def _energy_use_intensity(context: dg.AssetExecutionContext) -> MartOutput:
    lake = context.resources.lake
    table = energy_use_intensity_sql(_all(lake, BUILDING_DAILY_CONSUMPTION), published_metadata(lake))
    years = sorted(set(table.column("year").to_pylist()))
    candidates = [
        Candidate({"year": str(year)}, {"year": year}, table.filter(pc.equal(table.column("year"), year)))
        for year in years
    ]
    eui = pc.mean(table.column("eui_kwh_per_m2")).as_py() if table.num_rows else None
    return MartOutput(
        table, candidates, {"buildings": table.num_rows, "mean_eui_kwh_per_m2": float(eui or 0.0)}
    )


def _daily_weather(context: dg.AssetExecutionContext) -> MartOutput:
    lake = context.resources.lake
    table = daily_weather_sql(
        _all(lake, BUILDING_DAILY_CONSUMPTION), _all(lake, WEATHER), _site_clock(context)
    )
    return MartOutput(table, _per_meter(table), {"building_days": table.num_rows})


building_daily_consumption = mart_asset(
    spec=BUILDING_DAILY_CONSUMPTION,
    deps=[READINGS_KEY, METADATA_KEY],
    compute=_building_daily,
    resource_keys=["zenodo"],
    description="Per building, meter and day (the date written in the files): consumption, readings, min/max hourly reading. marts.building_daily_consumption.",
)
site_usage_daily_consumption = mart_asset(
    spec=SITE_USAGE_DAILY_CONSUMPTION,
    deps=[building_daily_consumption.key, METADATA_KEY],
    compute=_site_usage,
    description="Per site, primary space usage, meter and day: consumption and buildings reporting. marts.site_usage_daily_consumption.",
)
building_energy_use_intensity = mart_asset(
    spec=BUILDING_ENERGY_USE_INTENSITY,
    deps=[building_daily_consumption.key, METADATA_KEY],
    compute=_energy_use_intensity,
    description=(
        "Per building and year: energy of the consumption meters (electricity, chilled water, steam, hot water,"
        " gas) in kWh and the energy use intensity in kWh/m2 of floor area (sqm). marts.building_energy_use_intensity."
    ),
)
building_daily_weather = mart_asset(
    spec=BUILDING_DAILY_WEATHER,
    deps=[building_daily_consumption.key, WEATHER_KEY],
    compute=_daily_weather,
    resource_keys=["zenodo"],
    description=(
        "Daily consumption beside the site's mean air temperature and heating/cooling degree days (base 18 °C)."
        " marts.building_daily_weather."
    ),
)


def building_assets(meters: Sequence[str]) -> list[dg.AssetsDefinition]:
    """The archive, the reference tables and the readings of the declared `meters`."""
    return [bdg2_archive, buildings__reference, meter_readings_asset(meter_partitions(meters))]


BUILDING_MARTS = [
    building_daily_consumption,
    site_usage_daily_consumption,
    building_energy_use_intensity,
    building_daily_weather,
]
