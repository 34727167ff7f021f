"""Energy-Charts assets: raw responses, normalized tables (Parquet + PostgreSQL) and the three marts.

Keep dataset logic out of this module: fetching, validation, normalization, aggregation and quality rules
live in `energy_assets.sources.energy_charts`; the lake in `ParquetStore`; loading in `WarehouseLoader`.
This module only moves data between them, per partition, and reports what happened.

Data flow (daily partitions are Europe/Berlin local days; a single-run backfill handles a whole range):

    raw_energy_charts__public_power  ->  public_power, public_power_share
    raw_energy_charts__price         ->  day_ahead_price
    raw_energy_charts__installed_power -> installed_power   (not partitioned: the API returns all periods)
    public_power, day_ahead_price, installed_power -> daily_production_trend, daily_price_analysis,
                                                      underperformance_30min   (schema `marts`)

Raw assets ask the API once per series and chunk of consecutive days (`max_days_per_request`), validate
the whole response before anything is written (a bad response names endpoint, partition and field, and
nothing of it is stored), then keep one JSON document per area and day in the API's own shape under
`<raw>/energy_charts/<endpoint>/<area>/<day>.json`. Normalized and mart assets write one Parquet
partition per area and day and merge into PostgreSQL, reporting inserted/updated/unchanged counts.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from energy_assets.defs.energy_charts.checks import (
    INTERVAL_COUNTS,
    PARQUET_MATCHES_POSTGRES,
    PHYSICAL_SIGNS,
    PRICE_BOUNDS,
    UNIQUE_INTERVALS,
    check_specs,
    to_check_result,
)
from energy_assets.defs.energy_charts.partitions import daily_partitions, partition_days
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.defs.schemas import table_schema_from_inferred
from energy_assets.files import write_atomic
from energy_assets.postgres.connection import connect
from energy_assets.sources.energy_charts import aggregates, endpoints
from energy_assets.sources.energy_charts.client import EnergyChartsClient
from energy_assets.sources.energy_charts.local_days import (
    LocalDayWindow,
    contiguous_chunks,
    days_between,
    local_day_of,
    local_day_window,
    local_days_window,
    timezone_for,
)
from energy_assets.sources.energy_charts.quality import (
    QualityResult,
    check_interval_counts,
    check_physical_signs,
    check_price_bounds,
    check_row_counts_match,
    check_unique_intervals,
)
from energy_assets.sources.energy_charts.responses import (
    normalize_installed_power,
    normalize_price,
    normalize_public_power,
    slice_response,
)
from energy_assets.sources.energy_charts.tables import (
    DAILY_PRICE_ANALYSIS,
    DAILY_PRODUCTION_TREND,
    DAY_AHEAD_PRICE,
    INSTALLED_POWER,
    PUBLIC_POWER,
    PUBLIC_POWER_SHARE,
    UNDERPERFORMANCE_30MIN,
    TableSpec,
)
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.loader import LoadResult, WarehouseLoader
from energy_assets.warehouse.parquet_store import SCHEMA_FILE
from energy_assets.warehouse.pg_types import pg_type_for_arrow
from energy_assets.warehouse.schema_inference import ColumnStats, InferredColumn, InferredSchema, infer_arrow
from energy_assets.warehouse.scopes import scope_condition

GROUP = "energy_charts"
MARTS_GROUP = "marts"
RAW_FOLDER = "energy_charts"
PREVIEW_ROWS = 8

RAW_PUBLIC_POWER = "raw_energy_charts__public_power"
RAW_PRICE = "raw_energy_charts__price"
RAW_INSTALLED_POWER = "raw_energy_charts__installed_power"

_single_run = dg.BackfillPolicy.single_run()


# ---------------------------------------------------------------------------------------------------------
# Metadata helpers


def spec_descriptions(spec: TableSpec) -> dict[str, str]:
    return {column.name: column.description for column in spec.columns if column.description}


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """A table spec as Dagster's column schema, typed as in PostgreSQL (before any data is seen)."""
    return table_schema_from_inferred(inferred_schema(spec), spec_descriptions(spec))


def _static_metadata(spec: TableSpec) -> dict[str, Any]:
    return {"dagster/column_schema": table_schema(spec), "dagster/table_name": spec.qualified_name}


def markdown_preview(table: pa.Table, limit: int = PREVIEW_ROWS) -> str:
    """The first rows as a Markdown table."""
    rows = table.slice(0, limit).to_pylist()
    header = "| " + " | ".join(table.column_names) + " |"
    rule = "| " + " | ".join("---" for _ in table.column_names) + " |"
    body = ["| " + " | ".join(_cell(row[name]) for name in table.column_names) + " |" for row in rows]
    more = [f"\n_{table.num_rows - limit} more rows_"] if table.num_rows > limit else []
    return "\n".join([header, rule, *body, *more])


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:,.3f}".rstrip("0").rstrip(".")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value).replace("|", "\\|")


def markdown_bars(labels: Sequence[str], values: Sequence[float | None], unit: str, width: int = 30) -> str:
    """A small horizontal bar chart in Markdown (the UI renders it; no charting dependency needed)."""
    numbers = [abs(value) for value in values if value is not None]
    top = max(numbers) if numbers else 0.0
    lines = []
    for label, value in zip(labels, values, strict=True):
        bar = "" if value is None or top == 0 else "█" * max(1, round(abs(value) / top * width))
        shown = "NULL" if value is None else f"{value:,.1f}"
        lines.append(f"`{label:<34}` {bar} {shown} {unit}")
    return "\n\n".join(lines)


def _load_metadata(
    spec: TableSpec, data: pa.Table, load: LoadResult | None, lake_write: "LakeWrite"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "dagster/row_count": data.num_rows,
        "dagster/column_schema": table_schema_from_inferred(lake_write.schema, spec_descriptions(spec)),
        "dagster/table_name": spec.qualified_name,
        "dagster/uri": dg.MetadataValue.path(lake_write.path),
        "inferred_schema": dg.MetadataValue.path(f"{lake_write.path}/{SCHEMA_FILE}"),
        "preview": dg.MetadataValue.md(markdown_preview(data)),
    }
    if load is not None:
        metadata |= {
            "inserted": load.inserted,
            "updated": load.updated,
            "unchanged": load.unchanged,
            "deleted": load.deleted,
            "load_id": str(load.load_id),
            "merge_strategy": load.strategy,
        }
    return metadata


# ---------------------------------------------------------------------------------------------------------
# Raw JSON files


def raw_path(lake: LakeResource, endpoint: str, area: str, name: str) -> Path:
    """`<raw>/energy_charts/<endpoint>/<area>/<name>.json`."""
    return lake.raw_dir() / RAW_FOLDER / endpoint / area / f"{name}.json"


def _write_json(path: Path, body: Any) -> None:
    """Write atomically: readers see the old document or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(body, separators=(",", ":")).encode("utf-8"))


def read_raw(lake: LakeResource, endpoint: str, area: str, name: str, *, raw_asset: str) -> Any:
    path = raw_path(lake, endpoint, area, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"No raw /{endpoint} response for {area} {name} at {path}; materialize {raw_asset} for it first."
        ) from exc


# ---------------------------------------------------------------------------------------------------------
# Lake and warehouse


def inferred_schema(spec: TableSpec) -> InferredSchema:
    """The PostgreSQL table of a spec: its types, NOT NULL columns and primary key (no inference from data)."""
    return InferredSchema(
        columns=[
            InferredColumn(
                name=column.name,
                arrow_type=str(column.arrow_type),
                pg_type=str(pg_type_for_arrow(column.arrow_type)),
                nullable=column.nullable,
                stats=ColumnStats(null_fraction=0.0),
            )
            for column in spec.columns
        ],
        primary_key=list(spec.primary_key),
        primary_key_origin="declared",
        source=spec.qualified_name,
    )


def merge_into_postgres(
    postgres: PostgresResource, spec: TableSpec, data: pa.Table, partitions: Sequence["LakePartition"]
) -> LoadResult:
    """Upsert `data` on the spec's key; the partitions' rows the source no longer has are deleted.

    Each lake partition is the whole truth for its rows (a re-fetched day), so a series that vanished
    from a day does not linger in PostgreSQL. Counts say what changed.
    """
    loader = WarehouseLoader(postgres.settings())
    return loader.merge(
        TableName(spec.schema, spec.name),
        spec.conform(data),
        key=list(spec.primary_key),
        schema=inferred_schema(spec),
        delete_missing_in=[part.where for part in partitions],
    )


@dataclass(frozen=True)
class LakePartition:
    """One Parquet partition of a table: which rows of the table it holds, for the row-count check."""

    partition: dict[str, str]
    rows: int
    where: dict[str, Any]  # column -> value, or column -> (lower, upper) for a half-open range
    label: str


@dataclass(frozen=True)
class LakeWrite:
    """What one asset wrote to the lake: its partitions, the dataset folder and its inferred schema."""

    partitions: list[LakePartition]
    path: str
    schema: InferredSchema


def write_lake_partitions(
    lake: LakeResource, spec: TableSpec, parts: Sequence[tuple[dict[str, str], pa.Table, dict[str, Any]]]
) -> LakeWrite:
    """Write the partitions, then the dataset's inferred-schema artefact (types, key, statistics)."""
    store = lake.store()
    written = []
    conformed = []
    for partition, table, where in parts:
        conformed.append(spec.conform(table))
        store.write_partition(spec.qualified_name, partition, conformed[-1])
        label = "/".join(f"{key}={value}" for key, value in partition.items())
        written.append(LakePartition(partition, table.num_rows, where, label))
    schema = infer_arrow(
        pa.concat_tables(conformed) if conformed else spec.empty(),
        primary_key=list(spec.primary_key),
        source=spec.qualified_name,
        detect_primary_key=False,
    )
    store.write_inferred_schema(spec.qualified_name, schema)
    return LakeWrite(written, store.dataset_path(spec.qualified_name), schema)


def read_lake_partition(lake: LakeResource, spec: TableSpec, partition: dict[str, str]) -> pa.Table | None:
    """A partition with its partition-key columns restored; None when it was never written."""
    store = lake.store()
    if not store.has_partition(spec.qualified_name, partition):
        return None
    table = store.read_partition(spec.qualified_name, partition)
    for key, value in partition.items():
        if key in spec.column_names and key not in table.column_names:
            table = table.append_column(key, pa.array([value] * table.num_rows, pa.string()))
    return table.select(spec.column_names).cast(spec.arrow_schema)


_PARTITION_ROW_COUNT = "SELECT count(*) FROM {table} WHERE {conditions}"


def postgres_row_counts(
    postgres: PostgresResource, spec: TableSpec, partitions: Iterable[LakePartition]
) -> dict[str, int]:
    """Rows PostgreSQL holds for each lake partition (same filter the partition's rows satisfy)."""
    counts = {}
    with connect(postgres.settings()) as connection:
        for part in partitions:
            condition, params = scope_condition(part.where)
            query = sql.SQL(_PARTITION_ROW_COUNT).format(
                table=TableName(spec.schema, spec.name).sql(), conditions=condition
            )
            counts[part.label] = connection.execute(query, params).fetchone()[0]
    return counts


def row_count_check(partitions: Sequence[LakePartition], postgres_counts: dict[str, int]) -> QualityResult:
    results = [
        check_row_counts_match(part.rows, postgres_counts[part.label], label=part.label)
        for part in partitions
    ]
    failed = [result for result in results if not result.passed]
    details = {
        part.label: {"parquet_rows": part.rows, "postgres_rows": postgres_counts[part.label]}
        for part in partitions
    }
    if failed:
        return QualityResult(
            PARQUET_MATCHES_POSTGRES, False, "; ".join(result.summary for result in failed), details
        )
    total = sum(part.rows for part in partitions)
    summary = f"{total} rows in {len(partitions)} partition(s), the same in Parquet and PostgreSQL"
    return QualityResult(PARQUET_MATCHES_POSTGRES, True, summary, details)


def load_daily_table(
    lake: LakeResource,
    postgres: PostgresResource,
    spec: TableSpec,
    area_column: str,
    parts: Sequence[tuple[str, date, pa.Table]],
) -> tuple[pa.Table, LoadResult | None, QualityResult, str]:
    """Write one Parquet partition per (area, day), merge all rows into PostgreSQL, compare the counts."""
    lake_parts = []
    for area, day, table in parts:
        window = local_day_window(day, timezone_for(area))
        lake_parts.append(
            (
                {area_column: area, "date": day.isoformat()},
                table,
                {area_column: area, "interval_start": (window.start_utc, window.end_utc)},
            )
        )
    data = pa.concat_tables([table for _, _, table in parts]) if parts else spec.empty()
    lake_write = write_lake_partitions(lake, spec, lake_parts)
    load = merge_into_postgres(postgres, spec, data, lake_write.partitions) if data.num_rows else None
    counts = postgres_row_counts(postgres, spec, lake_write.partitions)
    return data, load, row_count_check(lake_write.partitions, counts), lake_write


# ---------------------------------------------------------------------------------------------------------
# Raw assets


@dataclass(frozen=True)
class DailyEndpoint:
    """How a daily endpoint is asked for a range of days and how its response is validated."""

    endpoint: str
    fetch: Callable[[EnergyChartsClient, str, date, date], dict[str, Any]]
    validate: Callable[[dict[str, Any], str, LocalDayWindow], object]


PUBLIC_POWER_ENDPOINT = DailyEndpoint(
    endpoint=endpoints.PUBLIC_POWER,
    fetch=lambda client, area, first, last: client.public_power(area, first, last),
    validate=lambda body, area, window: normalize_public_power(body, country=area, window=window),
)
PRICE_ENDPOINT = DailyEndpoint(
    endpoint=endpoints.PRICE,
    fetch=lambda client, area, first, last: client.price(area, first, last),
    validate=lambda body, area, window: normalize_price(body, bidding_zone=area, window=window),
)


def fetch_daily_raw(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    endpoint: DailyEndpoint,
    areas: Sequence[str],
) -> dg.MaterializeResult:
    """One request per area and chunk of consecutive days; all validated before any file is written."""
    days = partition_days(context.partition_keys)
    client = energy_charts.client()
    first_request = len(client.requests_made)
    chunks = contiguous_chunks(days, energy_charts.max_days_per_request)
    fetched = []
    for area in areas:
        for first, last in chunks:
            body = endpoint.fetch(client, area, first, last)
            endpoint.validate(body, area, local_days_window(first, last, timezone_for(area)))
            fetched.append((area, first, last, body))
    intervals: dict[str, int] = {}
    for area, first, last, body in fetched:
        for day in days_between(first, last):
            window = local_day_window(day, timezone_for(area))
            day_body = slice_response(body, start_unix=window.start_unix, end_unix=window.end_unix)
            _write_json(raw_path(lake, endpoint.endpoint, area, day.isoformat()), day_body)
            intervals[f"{area} {day.isoformat()}"] = len(day_body.get("unix_seconds") or [])
    requests = client.requests_made[first_request:]
    context.log.info(
        f"{len(requests)} request(s) to /{endpoint.endpoint} for {len(days)} day(s) via {client.describe()}"
    )
    return dg.MaterializeResult(
        metadata={
            "requests": len(requests),
            "request_params": dg.MetadataValue.json([request.params for request in requests]),
            "days": len(days),
            "chunks": len(chunks),
            "intervals_per_day": dg.MetadataValue.json(intervals),
            "client": client.describe(),
            "dagster/uri": dg.MetadataValue.path(str(lake.raw_dir() / RAW_FOLDER / endpoint.endpoint)),
        }
    )


@dg.asset(
    key=RAW_PUBLIC_POWER,
    group_name=GROUP,
    kinds={"python", "json"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    description=(
        "Raw /public_power responses (MW per interval and series, 15-minute for Germany), one JSON document per"
        " country and local day, in the API's shape. One request per country and chunk of days."
    ),
)
def raw_energy_charts__public_power(
    context: dg.AssetExecutionContext, energy_charts: EnergyChartsResource, lake: LakeResource
) -> dg.MaterializeResult:
    return fetch_daily_raw(context, energy_charts, lake, PUBLIC_POWER_ENDPOINT, energy_charts.countries)


@dg.asset(
    key=RAW_PRICE,
    group_name=GROUP,
    kinds={"python", "json"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    description=(
        "Raw /price (day-ahead) responses, one JSON document per bidding zone and local day: hourly to"
        " 2025-09-30, quarter-hourly from 2025-10-01. One request per zone and chunk of days."
    ),
)
def raw_energy_charts__price(
    context: dg.AssetExecutionContext, energy_charts: EnergyChartsResource, lake: LakeResource
) -> dg.MaterializeResult:
    return fetch_daily_raw(context, energy_charts, lake, PRICE_ENDPOINT, energy_charts.bidding_zones)


@dg.asset(
    key=RAW_INSTALLED_POWER,
    group_name=GROUP,
    kinds={"python", "json"},
    description="Raw /installed_power responses, yearly and monthly, for the configured country (all periods).",
)
def raw_energy_charts__installed_power(
    context: dg.AssetExecutionContext, energy_charts: EnergyChartsResource, lake: LakeResource
) -> dg.MaterializeResult:
    client = energy_charts.client()
    country = energy_charts.installed_power_country
    periods = {}
    for time_step in endpoints.TIME_STEPS:
        body = client.installed_power(country, time_step)
        normalize_installed_power(body, country=country, time_step=time_step)  # validate before storing
        _write_json(raw_path(lake, endpoints.INSTALLED_POWER, country, time_step), body)
        periods[time_step] = len(body.get("time") or [])
    return dg.MaterializeResult(
        metadata={
            "requests": len(endpoints.TIME_STEPS),
            "periods": dg.MetadataValue.json(periods),
            "client": client.describe(),
            "dagster/uri": dg.MetadataValue.path(
                str(lake.raw_dir() / RAW_FOLDER / endpoints.INSTALLED_POWER)
            ),
        }
    )


# ---------------------------------------------------------------------------------------------------------
# Normalized tables


def _normalized_public_power(
    context: dg.AssetExecutionContext, energy_charts: EnergyChartsResource, lake: LakeResource, part: str
) -> tuple[list[tuple[str, date, pa.Table]], list[str]]:
    parts, all_null = [], set()
    for day in partition_days(context.partition_keys):
        for country in energy_charts.countries:
            body = read_raw(
                lake, endpoints.PUBLIC_POWER, country, day.isoformat(), raw_asset=RAW_PUBLIC_POWER
            )
            result = normalize_public_power(
                body, country=country, window=local_day_window(day, timezone_for(country))
            )
            parts.append((country, day, result.power if part == "power" else result.share))
            all_null.update(result.all_null_series)
    return parts, sorted(all_null)


def _interval_checks(
    data: pa.Table, spec: TableSpec, area_column: str, days: list[date]
) -> list[QualityResult]:
    series = [area_column] if spec is DAY_AHEAD_PRICE else [area_column, "production_type"]
    return [
        check_interval_counts(data, series_columns=series, days=days),
        check_unique_intervals(data, key_columns=list(spec.primary_key)),
    ]


@dg.asset(
    key="public_power",
    deps=[RAW_PUBLIC_POWER],
    group_name=GROUP,
    kinds={"python", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(PUBLIC_POWER),
    check_specs=check_specs(
        "public_power", [INTERVAL_COUNTS, UNIQUE_INTERVALS, PHYSICAL_SIGNS, PARQUET_MATCHES_POSTGRES]
    ),
    description=(
        "Public net production, load and trade in MW per interval, long format: one row per country, series"
        " and interval start (UTC). Series are matched by name (case-insensitive, new names kept); percentage"
        " series go to public_power_share; series null at every timestamp (Nuclear since 2023) are left out."
        " Parquet per country and local day; merged into PostgreSQL energy_charts.public_power."
    ),
)
def public_power(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    parts, all_null = _normalized_public_power(context, energy_charts, lake, "power")
    data, load, row_counts, lake_write = load_daily_table(lake, postgres, PUBLIC_POWER, "country", parts)
    results = [*_interval_checks(data, PUBLIC_POWER, "country", days), check_physical_signs(data), row_counts]
    metadata = _load_metadata(PUBLIC_POWER, data, load, lake_write) | {
        "all_null_series_left_out": dg.MetadataValue.json(all_null),
        "series": len(set(data.column("production_type").to_pylist())),
    }
    return dg.MaterializeResult(
        metadata=metadata, check_results=[to_check_result(result) for result in results]
    )


@dg.asset(
    key="public_power_share",
    deps=[RAW_PUBLIC_POWER],
    group_name=GROUP,
    kinds={"python", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(PUBLIC_POWER_SHARE),
    check_specs=check_specs(
        "public_power_share", [INTERVAL_COUNTS, UNIQUE_INTERVALS, PARQUET_MATCHES_POSTGRES]
    ),
    description=(
        "The percentage series of /public_power (`Renewable share of generation`, `Renewable share of load`),"
        " kept apart from the MW series: energy_charts.public_power_share."
    ),
)
def public_power_share(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    parts, _ = _normalized_public_power(context, energy_charts, lake, "share")
    data, load, row_counts, lake_write = load_daily_table(
        lake, postgres, PUBLIC_POWER_SHARE, "country", parts
    )
    results = [*_interval_checks(data, PUBLIC_POWER_SHARE, "country", days), row_counts]
    return dg.MaterializeResult(
        metadata=_load_metadata(PUBLIC_POWER_SHARE, data, load, lake_write),
        check_results=[to_check_result(result) for result in results],
    )


@dg.asset(
    key="day_ahead_price",
    deps=[RAW_PRICE],
    group_name=GROUP,
    kinds={"python", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(DAY_AHEAD_PRICE),
    check_specs=check_specs(
        "day_ahead_price", [INTERVAL_COUNTS, UNIQUE_INTERVALS, PRICE_BOUNDS, PARQUET_MATCHES_POSTGRES]
    ),
    description=(
        "Day-ahead prices in EUR/MWh per bidding zone and interval; interval_minutes is 60 for hourly days (to"
        " 2025-09-30) and 15 from 2025-10-01. Both unit spellings (`EUR / MWh`, `EUR / megawatt_hour`) accepted."
        " Parquet per zone and local day; merged into PostgreSQL energy_charts.day_ahead_price."
    ),
)
def day_ahead_price(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    parts, units = [], set()
    for day in days:
        for zone in energy_charts.bidding_zones:
            body = read_raw(lake, endpoints.PRICE, zone, day.isoformat(), raw_asset=RAW_PRICE)
            result = normalize_price(
                body, bidding_zone=zone, window=local_day_window(day, timezone_for(zone))
            )
            parts.append((zone, day, result.table))
            units.add(result.unit)
    data, load, row_counts, lake_write = load_daily_table(
        lake, postgres, DAY_AHEAD_PRICE, "bidding_zone", parts
    )
    results = [
        *_interval_checks(data, DAY_AHEAD_PRICE, "bidding_zone", days),
        check_price_bounds(data),
        row_counts,
    ]
    minutes = pc.value_counts(data.column("interval_minutes")).to_pylist() if data.num_rows else []
    metadata = _load_metadata(DAY_AHEAD_PRICE, data, load, lake_write) | {
        "units_seen": dg.MetadataValue.json(sorted(units)),
        "intervals_by_minutes": dg.MetadataValue.json(
            {str(item["values"]): item["counts"] for item in minutes}
        ),
        "negative_price_intervals": int(pc.sum(pc.less(data.column("price_eur_per_mwh"), 0)).as_py() or 0),
    }
    return dg.MaterializeResult(
        metadata=metadata, check_results=[to_check_result(result) for result in results]
    )


@dg.asset(
    key="installed_power",
    deps=[RAW_INSTALLED_POWER],
    group_name=GROUP,
    kinds={"python", "parquet", "postgres"},
    metadata=_static_metadata(INSTALLED_POWER),
    check_specs=check_specs("installed_power", [UNIQUE_INTERVALS, PARQUET_MATCHES_POSTGRES]),
    description=(
        "Installed capacity in GW per production type, monthly (`MM.YYYY`) and yearly (`YYYY`) periods;"
        " period_start is the first day of the labelled period. Merged into energy_charts.installed_power."
    ),
)
def installed_power(
    energy_charts: EnergyChartsResource, lake: LakeResource, postgres: PostgresResource
) -> dg.MaterializeResult:
    country = energy_charts.installed_power_country
    lake_parts, tables = [], []
    for time_step in endpoints.TIME_STEPS:
        body = read_raw(lake, endpoints.INSTALLED_POWER, country, time_step, raw_asset=RAW_INSTALLED_POWER)
        table = normalize_installed_power(body, country=country, time_step=time_step).table
        tables.append(table)
        lake_parts.append(
            (
                {"country": country, "time_step": time_step},
                table,
                {"country": country, "time_step": time_step},
            )
        )
    data = pa.concat_tables(tables)
    lake_write = write_lake_partitions(lake, INSTALLED_POWER, lake_parts)
    load = merge_into_postgres(postgres, INSTALLED_POWER, data, lake_write.partitions)
    written = lake_write.partitions
    row_counts = row_count_check(written, postgres_row_counts(postgres, INSTALLED_POWER, written))
    unique = check_unique_intervals(data, key_columns=list(INSTALLED_POWER.primary_key))
    return dg.MaterializeResult(
        metadata=_load_metadata(INSTALLED_POWER, data, load, lake_write),
        check_results=[to_check_result(unique), to_check_result(row_counts)],
    )


# ---------------------------------------------------------------------------------------------------------
# Marts


def read_daily(
    lake: LakeResource, spec: TableSpec, area_column: str, areas: Iterable[str], days: Iterable[date]
) -> pa.Table:
    """The lake partitions of `spec` for every area and day that exists, as one table."""
    tables = []
    for day in days:
        for area in areas:
            table = read_lake_partition(lake, spec, {area_column: area, "date": day.isoformat()})
            if table is not None:
                tables.append(table)
    return pa.concat_tables(tables) if tables else spec.empty()


def load_mart(
    lake: LakeResource, postgres: PostgresResource, spec: TableSpec, data: pa.Table, days: Sequence[date]
) -> tuple[LoadResult | None, QualityResult, str]:
    """One Parquet partition per local day (all areas), merged into `marts.<name>`, counts compared."""
    parts = []
    for day in days:
        rows = data.filter(pc.equal(data.column("local_date"), pa.scalar(day, pa.date32())))
        parts.append(({"date": day.isoformat()}, rows, {"local_date": day}))
    lake_write = write_lake_partitions(lake, spec, parts)
    load = merge_into_postgres(postgres, spec, data, lake_write.partitions) if data.num_rows else None
    written = lake_write.partitions
    return load, row_count_check(written, postgres_row_counts(postgres, spec, written)), lake_write


def _mart_check_specs(asset_key: str) -> list[dg.AssetCheckSpec]:
    return check_specs(asset_key, [PARQUET_MATCHES_POSTGRES], blocking=False)


@dg.asset(
    key="daily_production_trend",
    deps=["public_power"],
    group_name=MARTS_GROUP,
    kinds={"python", "duckdb", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(DAILY_PRODUCTION_TREND),
    check_specs=_mart_check_specs("daily_production_trend"),
    description=(
        "Per local day (Europe/Berlin), country and production type: energy in MWh (MW x interval hours),"
        " mean/min/max MW, share of the day's generation, and the day's renewable share. marts.daily_production_trend."
    ),
)
def daily_production_trend(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    power = read_daily(lake, PUBLIC_POWER, "country", energy_charts.countries, days)
    trend = aggregates.daily_production_trend(power)
    load, row_counts, lake_write = load_mart(lake, postgres, DAILY_PRODUCTION_TREND, trend, days)
    country = energy_charts.countries[0]
    latest = trend.filter(
        pc.and_(
            pc.and_(
                pc.equal(trend.column("local_date"), pa.scalar(days[-1], pa.date32())),
                trend.column("is_generation"),
            ),
            pc.equal(trend.column("country"), country),
        )
    )
    latest = latest.sort_by([("energy_mwh", "descending")])
    chart = markdown_bars(
        latest.column("production_type").to_pylist(), latest.column("energy_mwh").to_pylist(), "MWh"
    )
    metadata = _load_metadata(DAILY_PRODUCTION_TREND, trend, load, lake_write) | {
        "generation_by_type": dg.MetadataValue.md(f"Generation on {days[-1]} ({country}):\n\n{chart}"),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=[to_check_result(row_counts)])


@dg.asset(
    key="daily_price_analysis",
    deps=["day_ahead_price", "public_power"],
    group_name=MARTS_GROUP,
    kinds={"python", "duckdb", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(DAILY_PRICE_ANALYSIS),
    check_specs=_mart_check_specs("daily_price_analysis"),
    description=(
        "Per local day and bidding zone: time-weighted mean, min and max price, negative-price intervals,"
        " onshore and offshore wind energy, and the Pearson correlation of price and wind power on a common"
        " 15-minute grid (hourly prices expanded to quarter hours), NULL where undefined. marts.daily_price_analysis."
    ),
)
def daily_price_analysis(
    context: dg.AssetExecutionContext,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    prices = read_daily(lake, DAY_AHEAD_PRICE, "bidding_zone", energy_charts.bidding_zones, days)
    countries = sorted(
        {aggregates.BIDDING_ZONE_COUNTRIES.get(zone, zone.lower()) for zone in energy_charts.bidding_zones}
    )
    power = read_daily(lake, PUBLIC_POWER, "country", countries, days)
    analysis = aggregates.daily_price_analysis(prices, power)
    load, row_counts, lake_write = load_mart(lake, postgres, DAILY_PRICE_ANALYSIS, analysis, days)
    labels = [f"{row['local_date']} {row['bidding_zone']}" for row in analysis.to_pylist()]
    chart = markdown_bars(labels, analysis.column("mean_price_eur_per_mwh").to_pylist(), "EUR/MWh")
    metadata = _load_metadata(DAILY_PRICE_ANALYSIS, analysis, load, lake_write) | {
        "mean_price": dg.MetadataValue.md(chart),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=[to_check_result(row_counts)])


class UnderperformanceConfig(dg.Config):
    """The underperformance rule: flag when output < threshold_fraction x the trailing median of the slot."""

    threshold_fraction: float = aggregates.DEFAULT_THRESHOLD_FRACTION
    trailing_days: int = aggregates.DEFAULT_TRAILING_DAYS
    max_lookback_days: int = aggregates.DEFAULT_MAX_LOOKBACK_DAYS


@dg.asset(
    key="underperformance_30min",
    deps=["public_power", "installed_power"],
    group_name=MARTS_GROUP,
    kinds={"python", "duckdb", "parquet", "postgres"},
    partitions_def=daily_partitions,
    backfill_policy=_single_run,
    metadata=_static_metadata(UNDERPERFORMANCE_30MIN),
    check_specs=_mart_check_specs("underperformance_30min"),
    description=(
        "Wind onshore, wind offshore and solar in 30-minute buckets (mean of the quarter hours), capacity factor"
        " against installed power (monthly figure of the month, else the latest yearly one), and a flag when"
        " output falls below threshold_fraction (default 0.5) of the expected level: the median of the same"
        " local half-hour slot over the previous trailing_days (7) days available, none older than"
        " max_lookback_days (28). marts.underperformance_30min."
    ),
)
def underperformance_30min(
    context: dg.AssetExecutionContext,
    config: UnderperformanceConfig,
    energy_charts: EnergyChartsResource,
    lake: LakeResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    days = partition_days(context.partition_keys)
    history = days_between(days[0] - timedelta(days=config.max_lookback_days), days[-1])
    power = read_daily(lake, PUBLIC_POWER, "country", energy_charts.countries, history)
    capacity_tables = [
        read_lake_partition(
            lake, INSTALLED_POWER, {"country": energy_charts.installed_power_country, "time_step": step}
        )
        for step in endpoints.TIME_STEPS
    ]
    capacity = pa.concat_tables(
        [table for table in capacity_tables if table is not None] or [INSTALLED_POWER.empty()]
    )
    if capacity.num_rows == 0:
        context.log.warning("No installed_power in the lake: capacity factors will be NULL.")
    result = aggregates.underperformance_30min(
        power,
        capacity,
        threshold_fraction=config.threshold_fraction,
        trailing_days=config.trailing_days,
        max_lookback_days=config.max_lookback_days,
        output_days=days,
    )
    load, row_counts, lake_write = load_mart(lake, postgres, UNDERPERFORMANCE_30MIN, result, days)
    flagged = result.filter(pc.fill_null(result.column("is_underperforming"), False))
    by_type = {name: 0 for name in aggregates.DEFAULT_MONITORED_TYPES}
    for name in flagged.column("production_type").to_pylist():
        by_type[name] = by_type.get(name, 0) + 1
    metadata = _load_metadata(UNDERPERFORMANCE_30MIN, result, load, lake_write) | {
        "underperforming_buckets": flagged.num_rows,
        "underperforming_by_type": dg.MetadataValue.md(
            markdown_bars(list(by_type), list(by_type.values()), "buckets")
        ),
        "history_days_loaded": len(local_days_present(power)),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=[to_check_result(row_counts)])


def local_days_present(table: pa.Table) -> list[date]:
    """The local days (Europe/Berlin) a table with `interval_start` has rows for."""
    return sorted({local_day_of(value) for value in pc.unique(table.column("interval_start")).to_pylist()})


ENERGY_CHARTS_ASSETS = [
    raw_energy_charts__public_power,
    raw_energy_charts__price,
    raw_energy_charts__installed_power,
    public_power,
    public_power_share,
    day_ahead_price,
    installed_power,
]
MART_ASSETS = [daily_production_trend, daily_price_analysis, underperformance_30min]
