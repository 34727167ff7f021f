"""Meter-file assets: one NEM12 file per run into `meters.meter_readings`, and the daily NMI mart.

Keep dataset logic out of this module: the steps of one file (ledger, parse, quarantine, pseudonymize,
publish, move to `processed/`) are `energy_assets.sources.meters.ingest.ingest_file`; this module wires it
into the table-asset factory (`energy_assets.defs.factories`), which audits, publishes and reports.
"""

from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.defs.factories import (
    AssetOutput,
    MartOutput,
    Publish,
    TableDeclaration,
    TableOutput,
    mart_asset,
    table_asset,
    table_check_specs,
)
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.publishing import table_asset_key
from energy_assets.sources.meters import aggregates
from energy_assets.sources.meters.ingest import ingest_file
from energy_assets.sources.meters.rules import METER_READINGS_RULES
from energy_assets.sources.meters.tables import METER_READINGS, NMI_DAILY_CONSUMPTION
from energy_assets.warehouse.publish import Candidate, read_published

GROUP = "meters"
METER_READINGS_KEY = table_asset_key(METER_READINGS)
NMI_DAILY_KEY = table_asset_key(NMI_DAILY_CONSUMPTION)
READINGS = TableDeclaration(
    METER_READINGS,
    "NEM12 interval readings, one row per NMI, suffix and interval (5/15/30 minutes), with quality, method"
    " and reason from 300/400 records; interval_end is the NEM interval number's end (UTC+10) stored as"
    " timestamptz. Each run loads one inbox file; a later file revising readings updates them and keeps the"
    " superseded values (meters.meter_readings_history). PostgreSQL meters.meter_readings.",
    rules=METER_READINGS_RULES,
    shrink=False,
)
# The run config of one file: where it is and the content hash the sensor saw.
INGEST_CONFIG = {"path": str, "sha256": str}


def _ingest(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput | dg.MaterializeResult:
    config = context.op_execution_context.op_config
    meters: MetersResource = context.resources.meters
    protector = meters.protector()
    ingested = ingest_file(
        Path(config["path"]),
        config["sha256"],
        settings=context.resources.postgres.settings(),
        layout=meters.layout(),
        protector=protector,
        publish=publish,
        log=context.log.info,
    )
    if ingested.readings is None or ingested.request is None or ingested.result is None:
        return _nothing_published(ingested.status)
    readings, moved = ingested.readings, ingested.moved_to
    qualities = pc.value_counts(readings.column("quality")).to_pylist() if readings.num_rows else []
    figures = {
        "file": "[protected]" if protector else Path(config["path"]).name,
        "sha256": config["sha256"],
        "file_rows": readings.num_rows,
        "nmis": len(set(readings.column("nmi").to_pylist())),
        "reads_by_quality": dg.MetadataValue.json({item["values"]: item["counts"] for item in qualities}),
        "moved_to": dg.MetadataValue.path(
            str(moved) if not protector else str(moved.parent if moved else "")
        ),
    }
    return AssetOutput([TableOutput(ingested.request, ingested.result, preview=readings, figures=figures)])


def _nothing_published(status: str) -> dg.MaterializeResult:
    """A run that found its content already handled: no rows written, so no audit ran in this run."""
    checks = [
        dg.AssetCheckResult(
            asset_key=METER_READINGS_KEY,
            check_name=spec.name,
            passed=True,
            description=f"Nothing published by this run: the file's content was {status} (audited then).",
            metadata={"rows_audited": 0},
        )
        for spec in table_check_specs([READINGS])
    ]
    return dg.MaterializeResult(
        asset_key=METER_READINGS_KEY, metadata={"file_status": status, "file_rows": 0}, check_results=checks
    )


meter_readings = table_asset(
    name="meters__meter_readings",
    tables=[READINGS],
    compute=_ingest,
    group_name=GROUP,
    resource_keys=["meters"],
    config_schema=INGEST_CONFIG,
)


def _nmi_daily(context: dg.AssetExecutionContext) -> MartOutput:
    store = context.resources.lake.store()
    readings = read_published(store, METER_READINGS, store.list_partitions(METER_READINGS.qualified_name))
    daily = aggregates.nmi_daily_consumption(readings)
    candidates = []
    if daily.num_rows:
        months = pc.strftime(pc.cast(daily.column("local_date"), pa.timestamp("s")), format="%Y-%m")
        for month in sorted(set(months.to_pylist())):
            year, number = (int(part) for part in month.split("-"))
            first = date(year, number, 1)
            after = date(year + number // 12, number % 12 + 1, 1)
            candidates.append(
                Candidate(
                    {"month": month}, {"local_date": (first, after)}, daily.filter(pc.equal(months, month))
                )
            )
    actual = pc.mean(daily.column("actual_share")).as_py() if daily.num_rows else None
    figures = {
        "nmi_days": daily.num_rows,
        "consumption_kwh": float(
            pc.sum(daily.filter(pc.equal(daily.column("uom"), "kWh")).column("consumption")).as_py() or 0.0
        ),
        "mean_actual_share": float(actual) if actual is not None else 0.0,
    }
    return MartOutput(daily, candidates, figures)


nmi_daily_consumption = mart_asset(
    spec=NMI_DAILY_CONSUMPTION,
    deps=[METER_READINGS_KEY],
    compute=_nmi_daily,
    description=(
        "Per NMI, suffix and local day (Australia/Brisbane): consumption in the channel's energy unit, intervals"
        " read vs expected, and the share of actual (A) versus estimated or substituted (E, F, S) reads."
        " Recomputed from every published reading; months whose figures did not change are not rewritten."
        " marts.nmi_daily_consumption."
    ),
)

METER_ASSETS = [meter_readings, nmi_daily_consumption]
