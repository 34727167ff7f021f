"""Meter-file assets: one NEM12 file per run into `meters.meter_readings`, and the daily NMI mart.

Keep dataset logic out of this module: parsing lives in `energy_assets.sources.meters.nem12`, the file
moves and quarantine reports in `inbox`, the durable file record in `ledger`, auditing and publishing in
`energy_assets.warehouse.publish`. This module only orders the steps of one file:

1. record the content as `loading` (one more attempt);
2. parse the whole file (a bad file -> `quarantine/` with a JSON report naming line, record and reason);
3. pseudonymize NMIs when identifiers are protected (tokens kept in `meters.protected_nmis`);
4. audit and publish the readings, upserted into monthly lake partitions and PostgreSQL in step, superseded
   values kept in history (a refused audit -> `quarantine/` with the audit report);
5. only after the commit, move the file to `processed/` and record it `processed`.

A process killed anywhere leaves the file in the inbox; the next sensor tick asks for it again and, since
publishing identical content changes nothing, finishes it.
"""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.defs.factories import MartOutput, mart_asset, static_metadata
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.policy import POSTGRES_POOL
from energy_assets.defs.publishing import (
    audit_check_specs,
    make_publisher,
    publish_or_fail,
    published_result,
    table_asset_key,
)
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.postgres.connection import connect
from energy_assets.sources.meters import aggregates, ledger
from energy_assets.sources.meters.errors import Nem12Error
from energy_assets.sources.meters.identifiers import protect_batch
from energy_assets.sources.meters.inbox import (
    QuarantineReport,
    move_to_processed,
    quarantine,
    sha256_of_file,
)
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.quality import METER_READINGS_RULES
from energy_assets.sources.meters.tables import METER_READINGS, NMI_DAILY_CONSUMPTION
from energy_assets.warehouse.audit import AuditFailedError
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.merge import ensure_history_table
from energy_assets.warehouse.publish import (
    Candidate,
    PublishRequest,
    read_published,
)

GROUP = "meters"
METER_READINGS_KEY = table_asset_key(METER_READINGS)
NMI_DAILY_KEY = table_asset_key(NMI_DAILY_CONSUMPTION)
CHECKS = audit_check_specs(METER_READINGS_KEY, METER_READINGS, METER_READINGS_RULES, shrink=False)
HISTORY_VIEW_SQL = aggregates.load_sql("meter_readings_history")


class IngestConfig(dg.Config):
    """The file a run loads: where it is and the content hash the sensor saw."""

    path: str
    sha256: str


def month_partitions(readings: pa.Table) -> list[tuple[dict[str, str], dict[str, Any], pa.Table]]:
    """Split readings by NEM month of `interval_end` (UTC+10, no DST): lake partition, scope, rows."""
    if readings.num_rows == 0:
        return []
    nem = pc.add(readings.column("interval_end"), pa.scalar(10 * 3600 * 1_000_000, pa.duration("us")))
    months = pc.strftime(pc.cast(nem, pa.timestamp("us")), format="%Y-%m")
    parts = []
    for month in sorted(set(months.to_pylist())):
        rows = readings.filter(pc.equal(months, month))
        year, number = (int(part) for part in month.split("-"))
        start = _nem_month_start(year, number)
        end = _nem_month_start(year + number // 12, number % 12 + 1)
        parts.append(({"month": month}, {"interval_end": (start, end)}, rows))
    return parts


def _nem_month_start(year: int, month: int) -> Any:
    from datetime import datetime, timedelta, timezone

    return datetime(year, month, 1, tzinfo=timezone(timedelta(hours=10)))


@dg.asset(
    key=METER_READINGS_KEY,
    group_name=GROUP,
    kinds={"python", "parquet", "postgres"},
    metadata=static_metadata(METER_READINGS),
    check_specs=CHECKS,
    pool=POSTGRES_POOL,
    description=(
        "NEM12 interval readings, one row per NMI, suffix and interval (5/15/30 minutes), with quality, method"
        " and reason from 300/400 records; interval_end is the NEM interval number's end (UTC+10) stored as"
        " timestamptz. Each run loads one inbox file; a later file revising readings updates them and keeps the"
        " superseded values (meters.meter_readings_history). PostgreSQL meters.meter_readings."
    ),
)
def meter_readings(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    meters: MetersResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> Iterator[Any]:
    layout = meters.layout()
    path = Path(config.path)
    settings = postgres.settings()
    protector = meters.protector()
    with connect(settings) as conn:
        ledger.ensure_tables(conn)
        record = ledger.lookup(conn, [config.sha256]).get(config.sha256)
        if record is not None and record.status in ("processed", "quarantined") and not path.exists():
            context.log.info(f"Content {config.sha256[:12]} was already {record.status}; nothing to do.")
            yield _nothing_published(record.status)
            return
        if not path.exists():
            raise dg.Failure(
                f"{path} is not in the inbox any more; drop the file again.", allow_retries=False
            )
        actual = sha256_of_file(path)
        if actual != config.sha256:
            raise dg.Failure(
                f"{path.name} changed since the sensor saw it (sha256 {actual[:12]}, expected {config.sha256[:12]});"
                " the next sensor tick picks up the new content.",
                allow_retries=False,
            )
        size = path.stat().st_size
        if record is not None and record.status == "committed":
            # An earlier run published this content and died before moving the file: only finish it.
            moved = move_to_processed(layout, path, config.sha256)
            ledger.finish(conn, config.sha256, "processed", rows=record.rows, moved_to=str(moved))
            context.log.info(
                f"Content {config.sha256[:12]} was committed by an earlier run; moved to processed/."
            )
            yield _nothing_published("committed by an earlier run")
            return
        attempt = ledger.start_loading(conn, config.sha256, path.name, size)
    shown_name = "[protected]" if protector else path.name
    context.log.info(f"Loading {shown_name} (sha256 {config.sha256[:12]}, {size} bytes, attempt {attempt}).")
    try:
        readings = read_nem12_table(path, source_file=path.name, protect_nmi=protector is not None)
    except Nem12Error as error:
        report = QuarantineReport.from_error(shown_name, config.sha256, size, error)
        _quarantine(settings, layout, path, config.sha256, report, str(error))
        raise dg.Failure(description=f"Quarantined: {error}", allow_retries=False) from error
    if protector is not None:
        batches: list[pa.RecordBatch] = []
        tokens: dict[str, str] = {}
        for batch in readings.to_batches():
            protected, batch_tokens = protect_batch(batch, protector)
            batches.append(protected)
            tokens |= batch_tokens
        readings = pa.Table.from_batches(batches, schema=readings.schema)
        with connect(settings) as conn:
            ledger.store_tokens(conn, tokens)
    candidates = [Candidate(partition, scope, rows) for partition, scope, rows in month_partitions(readings)]
    rows = readings.num_rows
    request = PublishRequest(
        METER_READINGS,
        candidates,
        rules=METER_READINGS_RULES,
        mode="upsert",
        keep_history=True,
        before_commit=lambda cur: ledger.mark_committed(cur, config.sha256, rows),
    )
    publisher = make_publisher(lake, postgres)
    try:
        results = yield from publish_or_fail(
            context.op_execution_context, publisher, [request], [METER_READINGS_KEY]
        )
    except dg.Failure as failure:
        if isinstance(failure.__cause__, AuditFailedError):
            audit = failure.__cause__
            reasons = "; ".join(outcome.summary(audit.report.table) for outcome in audit.report.failures)
            report = QuarantineReport.from_reason(
                shown_name, config.sha256, size, f"audit refused: {reasons}"
            )
            _quarantine(settings, layout, path, config.sha256, report, reasons[:2000])
        raise
    with connect(settings) as conn, conn.cursor() as cur:
        ensure_history_table(cur, TableName(METER_READINGS.schema, METER_READINGS.name))
        cur.execute(HISTORY_VIEW_SQL)  # idempotent: the view over the history the merge keeps
        conn.commit()
    moved = move_to_processed(layout, path, config.sha256)
    with connect(settings) as conn:
        ledger.finish(conn, config.sha256, "processed", rows=readings.num_rows, moved_to=str(moved))
    qualities = pc.value_counts(readings.column("quality")).to_pylist() if readings.num_rows else []
    yield published_result(
        METER_READINGS_KEY,
        request,
        results[0],
        CHECKS,
        lake=lake,
        postgres=postgres,
        preview=readings,
        metadata={
            "file": shown_name,
            "sha256": config.sha256,
            "file_rows": readings.num_rows,
            "nmis": len(set(readings.column("nmi").to_pylist())),
            "reads_by_quality": dg.MetadataValue.json({item["values"]: item["counts"] for item in qualities}),
            "moved_to": dg.MetadataValue.path(str(moved) if not protector else str(moved.parent)),
        },
    )


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
        for spec in CHECKS
    ]
    return dg.MaterializeResult(
        asset_key=METER_READINGS_KEY, metadata={"file_status": status, "file_rows": 0}, check_results=checks
    )


def _quarantine(
    settings: Any, layout: Any, path: Path, sha: str, report: QuarantineReport, error: str
) -> None:
    target, _ = quarantine(layout, path, report)
    with connect(settings) as conn:
        ledger.finish(conn, sha, "quarantined", error=error, moved_to=str(target))


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
