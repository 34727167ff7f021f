"""Energy-Charts assets: each endpoint's raw responses with the tables parsed from them, and the marts.

Keep dataset logic out of this module: fetching, validation, normalization, aggregation and the audit rules
live in `energy_assets.sources.energy_charts`; auditing and publishing in `energy_assets.warehouse.publish`;
checks and metadata in `energy_assets.defs.publishing`; the mart factory in `energy_assets.defs.factories`.
This module only declares the assets.

Data flow (daily partitions are local days; a single-run backfill handles a whole range in one step):

    /public_power -> raw/energy_charts/public_power + energy_charts/public_power + energy_charts/public_power_share
    /price        -> raw/energy_charts/price + energy_charts/day_ahead_price
    /installed_power -> raw/energy_charts/installed_power + energy_charts/installed_power (all periods)
    energy_charts/* -> marts/daily_production_trend, marts/daily_price_analysis, marts/underperformance_30min

Each endpoint is one multi-asset: its response is fetched once per area and chunk of days, parsed once,
audited for every table it feeds, and only then published (raw JSON, lake, PostgreSQL, in step).
Asset keys mirror where the data lives: `raw/<source>/<endpoint>`, `<schema>/<table>`. Everything is built
by `energy_charts_assets(source)` from a declared `EnergyChartsSource` (its name, areas and partitions), so
two declared instances build two independent sets of assets.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import requests

from energy_assets.defs.energy_charts.component import EnergyChartsSource
from energy_assets.defs.energy_charts.partitions import daily_partitions_for, partition_days
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.factories import MartOutput, mart_asset, static_metadata
from energy_assets.defs.policy import NETWORK_RETRY, POSTGRES_POOL
from energy_assets.defs.publishing import (
    allow_shrink,
    audit_check_specs,
    make_publisher,
    publish_or_fail,
    published_result,
    table_asset_key,
)
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.sources.energy_charts import aggregates, endpoints
from energy_assets.sources.energy_charts.audit_rules import LOCAL_DAYS, interval_rules, local_days_relation
from energy_assets.sources.energy_charts.client import EnergyChartsClient
from energy_assets.sources.energy_charts.errors import EnergyChartsApiError, SnapshotNotRecordedError
from energy_assets.sources.energy_charts.local_days import (
    contiguous_chunks,
    days_between,
    local_day_of,
    local_day_window,
    local_days_window,
    timezone_for,
)
from energy_assets.sources.energy_charts.quality import check_physical_signs
from energy_assets.sources.energy_charts.responses import (
    documented_fields,
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
)
from energy_assets.warehouse.lake_sql import partition_label
from energy_assets.warehouse.publish import Candidate, PublishRequest, read_published
from energy_assets.warehouse.table_spec import TableSpec

PHYSICAL_SIGNS = "physical_signs"


@dataclass(frozen=True)
class EnergyChartsTables:
    """The tables of one declared source: the package's table specs in the source's own schema."""

    source: EnergyChartsSource
    public_power: TableSpec
    public_power_share: TableSpec
    day_ahead_price: TableSpec
    installed_power: TableSpec
    daily_production_trend: TableSpec
    daily_price_analysis: TableSpec
    underperformance_30min: TableSpec

    @classmethod
    def of(cls, source: EnergyChartsSource) -> "EnergyChartsTables":
        def own(spec: TableSpec) -> TableSpec:
            return replace(spec, schema=source.name)

        def mart(spec: TableSpec) -> TableSpec:
            return replace(spec, name=f"{source.mart_prefix}{spec.name}")

        return cls(
            source,
            own(PUBLIC_POWER),
            own(PUBLIC_POWER_SHARE),
            own(DAY_AHEAD_PRICE),
            own(INSTALLED_POWER),
            mart(DAILY_PRODUCTION_TREND),
            mart(DAILY_PRICE_ANALYSIS),
            mart(UNDERPERFORMANCE_30MIN),
        )

    def raw_key(self, endpoint: str) -> dg.AssetKey:
        """`raw/<source>/<endpoint>`."""
        return dg.AssetKey(["raw", self.source.name, endpoint])


# ---------------------------------------------------------------------------------------------------------
# Raw files


def raw_path(lake: LakeResource, source: str, endpoint: str, area: str, name: str) -> Path:
    """`<raw>/<source>/<endpoint>/<area>/<name>.json` (area codes are validated before they get here)."""
    return lake.raw_dir() / source / endpoint / area / f"{name}.json"


def raw_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# Which failures a retry can cure


def is_transient(error: BaseException) -> bool:
    """A failure worth retrying: no answer, a deadline, rate limiting or a server error.

    Everything else (bad data, bad configuration, a bug) fails at once: a retry would meet it again.
    """
    if isinstance(error, SnapshotNotRecordedError):
        return False
    if isinstance(error, EnergyChartsApiError):
        return error.status is None or error.status == 429 or error.status >= 500
    return isinstance(error, ConnectionError | TimeoutError | requests.RequestException)


@contextmanager
def retry_only_transient() -> Iterator[None]:
    """Let the step's RetryPolicy retry transient failures; fail at once (with the same message) on the rest."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        if is_transient(error):
            raise
        raise dg.Failure(description=f"{type(error).__name__}: {error}", allow_retries=False) from error


# ---------------------------------------------------------------------------------------------------------
# Daily endpoints: one multi-asset each (raw + the tables parsed from it)


@dataclass(frozen=True)
class DailyTable:
    """One table a daily endpoint feeds, and how to take it out of a normalized day."""

    spec: TableSpec
    rows_of: Callable[[Any], pa.Table]
    description: str


@dataclass(frozen=True)
class DailyEndpoint:
    """A daily endpoint: how to ask it for a range of days, how to parse a day, the tables it feeds."""

    name: str
    raw_key: dg.AssetKey
    area_column: str
    areas_of: Callable[[EnergyChartsResource], list[str]]
    fetch: Callable[[EnergyChartsClient, str, date, date], dict[str, Any]]
    normalize: Callable[[dict[str, Any], str, Any], Any]
    tables: tuple[DailyTable, ...]
    raw_description: str


def daily_endpoint_assets(endpoint: DailyEndpoint, tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """The multi-asset of a daily endpoint: fetch, parse once, audit every table, then publish all."""
    source = tables.source
    first_spec = endpoint.tables[0].spec
    keys = [table_asset_key(table.spec) for table in endpoint.tables]
    # The first table of an endpoint must cover every day; the others (share series) may be absent on one.
    rules_of = {
        index: interval_rules(table.spec.series_columns, rows_required=index == 0)
        for index, table in enumerate(endpoint.tables)
    }
    warnings = {PHYSICAL_SIGNS: _PHYSICAL_SIGNS} if first_spec is tables.public_power else {}
    check_specs = [
        check
        for table, key in zip(endpoint.tables, keys, strict=True)
        for check in audit_check_specs(
            key, table.spec, rules_of[0], warnings=warnings if table.spec is tables.public_power else None
        )
    ]
    specs = [
        dg.AssetSpec(
            endpoint.raw_key,
            group_name=source.name,
            kinds={"python", "json"},
            description=endpoint.raw_description,
        ),
        *(
            dg.AssetSpec(
                key,
                deps=[endpoint.raw_key],
                group_name=source.name,
                kinds={"python", "parquet", "postgres"},
                description=table.description,
                metadata=static_metadata(table.spec),
            )
            for table, key in zip(endpoint.tables, keys, strict=True)
        ),
    ]

    @dg.multi_asset(
        name=f"{source.name}__{endpoint.name}",
        specs=specs,
        check_specs=check_specs,
        partitions_def=daily_partitions_for(source),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=POSTGRES_POOL,
        retry_policy=NETWORK_RETRY,
        required_resource_keys={source.name, "lake", "postgres"},
    )
    def _assets(context: dg.AssetExecutionContext) -> Iterator[Any]:
        energy_charts: EnergyChartsResource = getattr(context.resources, source.name)
        lake: LakeResource = context.resources.lake
        postgres: PostgresResource = context.resources.postgres
        with retry_only_transient():  # a partition range outside the definition fails at once
            days = partition_days(context.partition_keys)
        client = energy_charts.client()
        first_request = len(client.requests_made)
        areas = endpoint.areas_of(energy_charts)
        chunks = contiguous_chunks(days, energy_charts.max_days_per_request)
        candidates: dict[int, list[Candidate]] = {index: [] for index in range(len(endpoint.tables))}
        windows = []
        extras: list[Any] = []
        with retry_only_transient():
            fetched = [
                (area, first, last, endpoint.fetch(client, area, first, last))
                for area in areas
                for first, last in chunks
            ]
        with retry_only_transient():
            for area, first, last, body in fetched:
                # The whole response is validated before it is cut into days (a ragged one never is).
                endpoint.normalize(body, area, local_days_window(first, last, timezone_for(area)))
                for day in days_between(first, last):
                    window = local_day_window(day, timezone_for(area))
                    day_body = slice_response(
                        body, start_unix=window.start_unix, end_unix=window.end_unix, endpoint=endpoint.name
                    )
                    parsed = endpoint.normalize(day_body, area, window)
                    extras.append(parsed)
                    partition = {endpoint.area_column: area, "date": day.isoformat()}
                    windows.append((partition_label(partition), window))
                    scope = {endpoint.area_column: area, "interval_start": (window.start_utc, window.end_utc)}
                    raw = {
                        raw_path(lake, source.name, endpoint.name, area, day.isoformat()): raw_bytes(day_body)
                    }
                    for index, table in enumerate(endpoint.tables):
                        candidates[index].append(
                            Candidate(partition, scope, table.rows_of(parsed), raw if index == 0 else {})
                        )
        relations = {LOCAL_DAYS: local_days_relation(windows)}
        requests = [
            PublishRequest(
                table.spec,
                candidates[index],
                rules=rules_of[index],
                relations=relations,
                allow_shrink=allow_shrink(context.op_execution_context),
            )
            for index, table in enumerate(endpoint.tables)
        ]
        publisher = make_publisher(lake, postgres)
        results = yield from publish_or_fail(context.op_execution_context, publisher, requests, keys)
        made = client.requests_made[first_request:]
        context.log.info(
            f"{len(made)} request(s) to /{endpoint.name} for {len(days)} day(s) via {client.describe()}"
        )
        yield dg.MaterializeResult(
            asset_key=endpoint.raw_key,
            metadata={
                "requests": len(made),
                "request_params": dg.MetadataValue.json([request.params for request in made[:50]]),
                "days": len(days),
                "chunks": len(chunks),
                "documents": len(windows),
                "client": client.describe(),
                "dagster/uri": dg.MetadataValue.path(str(lake.raw_dir() / source.name / endpoint.name)),
            },
        )
        for request, key, result in zip(requests, keys, results, strict=True):
            data = (
                pa.concat_tables([c.data for c in request.candidates])
                if request.candidates
                else request.spec.empty()
            )
            yield published_result(
                key,
                request,
                result,
                check_specs,
                lake=lake,
                postgres=postgres,
                preview=data,
                metadata=_key_figures(request.spec.name, data, extras),
                partitions_in_run=len(days),
                extra_checks=[_physical_signs_result(key, data)]
                if request.spec is tables.public_power
                else [],
            )

    return _assets


_PHYSICAL_SIGNS = (
    "Generation and load are >= 0, pumping consumption <= 0 (trade and residual load may be either)."
)


def _physical_signs_result(key: dg.AssetKey, data: pa.Table) -> dg.AssetCheckResult:
    result = check_physical_signs(data)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=PHYSICAL_SIGNS,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=result.summary,
        metadata={"rows_checked": data.num_rows, "details": dg.MetadataValue.json(result.details)},
    )


def _key_figures(table_name: str, data: pa.Table, parsed: Sequence[Any]) -> dict[str, Any]:
    """Numeric metadata per table, so the UI plots them across materializations."""
    if table_name == PUBLIC_POWER.name:
        all_null = sorted({name for day in parsed for name in day.all_null_series})
        return {
            "series": len(set(data.column("production_type").to_pylist())),
            "all_null_series_left_out": dg.MetadataValue.json(all_null),
        }
    if table_name == DAY_AHEAD_PRICE.name:
        minutes = pc.value_counts(data.column("interval_minutes")).to_pylist() if data.num_rows else []
        prices = data.column("price_eur_per_mwh")
        return {
            "units_seen": dg.MetadataValue.json(sorted({day.unit for day in parsed})),
            "intervals_by_minutes": dg.MetadataValue.json({str(m["values"]): m["counts"] for m in minutes}),
            "negative_price_intervals": int(pc.sum(pc.less(prices, 0)).as_py() or 0),
            "max_price_eur_per_mwh": float(pc.max(prices).as_py() or 0.0) if data.num_rows else 0.0,
        }
    return {}


def public_power_assets(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/public_power: raw JSON, `<source>.public_power` and `<source>.public_power_share`."""
    endpoint = DailyEndpoint(
        name=endpoints.PUBLIC_POWER,
        raw_key=tables.raw_key(endpoints.PUBLIC_POWER),
        area_column="country",
        areas_of=lambda resource: list(resource.countries),
        fetch=lambda client, area, first, last: client.public_power(area, first, last),
        normalize=lambda body, area, window: normalize_public_power(body, country=area, window=window),
        tables=(
            DailyTable(
                tables.public_power,
                lambda parsed: parsed.power,
                "Public net production, load and trade in MW per interval, long format: one row per country,"
                " series and interval start (UTC). Series matched by name (case-insensitive, new names kept);"
                " series null at every timestamp (Nuclear since 2023) are left out. PostgreSQL"
                f" {tables.public_power.qualified_name}.",
            ),
            DailyTable(
                tables.public_power_share,
                lambda parsed: parsed.share,
                "The percentage series of /public_power (`Renewable share of generation`, `... of load`), kept"
                f" apart from the MW series: {tables.public_power_share.qualified_name}.",
            ),
        ),
        raw_description=(
            "Raw /public_power responses (MW per interval and series, 15-minute for Germany), one JSON document"
            " per country and local day with the documented fields only. One request per country and chunk of"
            " days; written only after the tables parsed from it passed their audit."
        ),
    )
    return daily_endpoint_assets(endpoint, tables)


def price_assets(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/price: raw JSON and `<source>.day_ahead_price`."""
    endpoint = DailyEndpoint(
        name=endpoints.PRICE,
        raw_key=tables.raw_key(endpoints.PRICE),
        area_column="bidding_zone",
        areas_of=lambda resource: list(resource.bidding_zones),
        fetch=lambda client, area, first, last: client.price(area, first, last),
        normalize=lambda body, area, window: normalize_price(body, bidding_zone=area, window=window),
        tables=(
            DailyTable(
                tables.day_ahead_price,
                lambda parsed: parsed.table,
                "Day-ahead prices in EUR/MWh per bidding zone and interval; interval_minutes is 60 for hourly"
                " days (to 2025-09-30) and 15 from 2025-10-01. Both unit spellings accepted. PostgreSQL"
                f" {tables.day_ahead_price.qualified_name}.",
            ),
        ),
        raw_description=(
            "Raw /price (day-ahead) responses, one JSON document per bidding zone and local day: hourly to"
            " 2025-09-30, quarter-hourly from 2025-10-01. One request per zone and chunk of days."
        ),
    )
    return daily_endpoint_assets(endpoint, tables)


# ---------------------------------------------------------------------------------------------------------
# Installed power: not partitioned (the API returns all periods)


def installed_power_assets(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/installed_power (not partitioned: the API returns all periods): raw JSON and `<source>.installed_power`."""
    source = tables.source
    raw_key = tables.raw_key(endpoints.INSTALLED_POWER)
    key = table_asset_key(tables.installed_power)
    check_specs = audit_check_specs(key, tables.installed_power)

    @dg.multi_asset(
        name=f"{source.name}__installed_power",
        specs=[
            dg.AssetSpec(
                raw_key,
                group_name=source.name,
                kinds={"python", "json"},
                description="Raw /installed_power responses, yearly and monthly, for the configured country.",
            ),
            dg.AssetSpec(
                key,
                deps=[raw_key],
                group_name=source.name,
                kinds={"python", "parquet", "postgres"},
                metadata=static_metadata(tables.installed_power),
                description=(
                    "Installed capacity in GW per production type, monthly (`MM.YYYY`) and yearly (`YYYY`)"
                    " periods; period_start is the first day of the labelled period."
                    f" {tables.installed_power.qualified_name}."
                ),
            ),
        ],
        check_specs=check_specs,
        pool=POSTGRES_POOL,
        retry_policy=NETWORK_RETRY,
        required_resource_keys={source.name, "lake", "postgres"},
    )
    def _installed_power(context: dg.AssetExecutionContext) -> Iterator[Any]:
        energy_charts: EnergyChartsResource = getattr(context.resources, source.name)
        lake: LakeResource = context.resources.lake
        postgres: PostgresResource = context.resources.postgres
        client = energy_charts.client()
        country = energy_charts.installed_power_country
        candidates = []
        for time_step in endpoints.TIME_STEPS:
            with retry_only_transient():
                body = client.installed_power(country, time_step)
                table = normalize_installed_power(body, country=country, time_step=time_step).table
            partition = {"country": country, "time_step": time_step}
            raw = {
                raw_path(lake, source.name, endpoints.INSTALLED_POWER, country, time_step): raw_bytes(
                    documented_fields(endpoints.INSTALLED_POWER, body)
                )
            }
            candidates.append(Candidate(partition, dict(partition), table, raw))
        request = PublishRequest(
            tables.installed_power, candidates, allow_shrink=allow_shrink(context.op_execution_context)
        )
        publisher = make_publisher(lake, postgres)
        results = yield from publish_or_fail(context.op_execution_context, publisher, [request], [key])
        yield dg.MaterializeResult(
            asset_key=raw_key,
            metadata={
                "requests": len(endpoints.TIME_STEPS),
                "client": client.describe(),
                "dagster/uri": dg.MetadataValue.path(
                    str(lake.raw_dir() / source.name / endpoints.INSTALLED_POWER)
                ),
            },
        )
        data = pa.concat_tables([c.data for c in candidates])
        yield published_result(
            key, request, results[0], check_specs, lake=lake, postgres=postgres, preview=data
        )

    return _installed_power


# ---------------------------------------------------------------------------------------------------------
# Marts


def read_daily(
    lake: LakeResource, spec: TableSpec, area_column: str, areas: Sequence[str], days: Sequence[date]
) -> pa.Table:
    """The published lake partitions of `spec` for every area and day that exists, in a fixed order."""
    partitions = [{area_column: area, "date": day.isoformat()} for day in days for area in areas]
    return read_published(lake.store(), spec, partitions)


def mart_candidates(table: pa.Table, days: Sequence[date]) -> list[Candidate]:
    """One lake partition per local day (all areas), the truth for that day's rows in PostgreSQL."""
    candidates = []
    for day in days:
        rows = table.filter(pc.equal(table.column("local_date"), pa.scalar(day, pa.date32())))
        candidates.append(Candidate({"date": day.isoformat()}, {"local_date": day}, rows))
    return candidates


def mart_assets(tables: EnergyChartsTables) -> list[dg.AssetsDefinition]:
    """The three marts of a source, each from the source's lake tables, partitioned like them."""
    source = tables.source
    partitions = daily_partitions_for(source)
    power_key = table_asset_key(tables.public_power)

    def resource(context: dg.AssetExecutionContext) -> EnergyChartsResource:
        return getattr(context.resources, source.name)

    def production_trend(context: dg.AssetExecutionContext) -> MartOutput:
        days = partition_days(context.partition_keys)
        countries = resource(context).countries
        power = read_daily(context.resources.lake, tables.public_power, "country", countries, days)
        trend = aggregates.daily_production_trend(power)
        generation = trend.filter(trend.column("is_generation"))
        figures: dict[str, Any] = {}
        for name in ("Wind onshore", "Wind offshore", "Solar"):
            rows = generation.filter(pc.equal(generation.column("production_type"), name))
            figures[f"{name.lower().replace(' ', '_')}_mwh"] = float(
                pc.sum(rows.column("energy_mwh")).as_py() or 0.0
            )
        shares = trend.column("renewable_share_of_generation_percent")
        figures["renewable_share_of_generation_percent"] = (
            float(pc.mean(shares).as_py() or 0.0) if trend.num_rows else 0.0
        )
        return MartOutput(trend, mart_candidates(trend, days), figures)

    def price_analysis(context: dg.AssetExecutionContext) -> MartOutput:
        days = partition_days(context.partition_keys)
        zones = resource(context).bidding_zones
        lake = context.resources.lake
        prices = read_daily(lake, tables.day_ahead_price, "bidding_zone", zones, days)
        countries = sorted({aggregates.BIDDING_ZONE_COUNTRIES.get(zone, zone.lower()) for zone in zones})
        power = read_daily(lake, tables.public_power, "country", countries, days)
        analysis = aggregates.daily_price_analysis(prices, power)
        mean_price = analysis.column("mean_price_eur_per_mwh")
        figures = {
            "mean_price_eur_per_mwh": float(pc.mean(mean_price).as_py() or 0.0) if analysis.num_rows else 0.0,
            "negative_price_intervals": int(
                pc.sum(analysis.column("negative_price_interval_count")).as_py() or 0
            ),
            "wind_onshore_mwh": float(pc.sum(analysis.column("wind_onshore_mwh")).as_py() or 0.0),
        }
        return MartOutput(analysis, mart_candidates(analysis, days), figures)

    def underperformance(context: dg.AssetExecutionContext) -> MartOutput:
        config = context.op_execution_context.op_config or {}
        threshold = config.get("threshold_fraction", aggregates.DEFAULT_THRESHOLD_FRACTION)
        trailing = config.get("trailing_days", aggregates.DEFAULT_TRAILING_DAYS)
        lookback = config.get("max_lookback_days", aggregates.DEFAULT_MAX_LOOKBACK_DAYS)
        days = partition_days(context.partition_keys)
        energy_charts, lake = resource(context), context.resources.lake
        history = days_between(days[0] - timedelta(days=lookback), days[-1])
        power = read_daily(lake, tables.public_power, "country", energy_charts.countries, history)
        capacity = read_published(
            lake.store(),
            tables.installed_power,
            [
                {"country": energy_charts.installed_power_country, "time_step": step}
                for step in endpoints.TIME_STEPS
            ],
        )
        if capacity.num_rows == 0:
            context.log.warning("No installed_power in the lake: capacity factors will be NULL.")
        result = aggregates.underperformance_30min(
            power,
            capacity,
            threshold_fraction=threshold,
            trailing_days=trailing,
            max_lookback_days=lookback,
            output_days=days,
        )
        flagged = result.filter(pc.fill_null(result.column("is_underperforming"), False))
        figures = {
            "underperforming_buckets": flagged.num_rows,
            "history_days_loaded": len(local_days_present(power)),
        }
        return MartOutput(result, mart_candidates(result, days), figures)

    return [
        mart_asset(
            spec=tables.daily_production_trend,
            deps=[power_key],
            partitions_def=partitions,
            resource_keys=[source.name],
            compute=production_trend,
            description=(
                f"Per local day ({source.timezone}), country and production type: energy in MWh (MW x interval"
                " hours), mean/min/max MW, share of the day's generation, and the day's renewable share."
                f" {tables.daily_production_trend.qualified_name}."
            ),
        ),
        mart_asset(
            spec=tables.daily_price_analysis,
            deps=[table_asset_key(tables.day_ahead_price), power_key],
            partitions_def=partitions,
            resource_keys=[source.name],
            compute=price_analysis,
            description=(
                "Per local day and bidding zone: time-weighted mean, min and max price, negative-price intervals,"
                " onshore and offshore wind energy, and the Pearson correlation of price and wind power on a"
                " common 15-minute grid (hourly prices expanded to quarter hours), NULL where undefined."
                f" {tables.daily_price_analysis.qualified_name}."
            ),
        ),
        mart_asset(
            spec=tables.underperformance_30min,
            deps=[power_key, table_asset_key(tables.installed_power)],
            partitions_def=partitions,
            resource_keys=[source.name],
            compute=underperformance,
            config_schema={
                "threshold_fraction": dg.Field(float, default_value=aggregates.DEFAULT_THRESHOLD_FRACTION),
                "trailing_days": dg.Field(int, default_value=aggregates.DEFAULT_TRAILING_DAYS),
                "max_lookback_days": dg.Field(int, default_value=aggregates.DEFAULT_MAX_LOOKBACK_DAYS),
            },
            description=(
                "Wind onshore, wind offshore and solar in 30-minute buckets (mean of the quarter hours), capacity"
                " factor against installed power (monthly figure of the month, else the latest yearly one), and a"
                " flag when output falls below threshold_fraction (default 0.5) of the expected level: the median"
                " of the same local half-hour slot over the previous trailing_days (7) days available, none older"
                f" than max_lookback_days (28). {tables.underperformance_30min.qualified_name}."
            ),
        ),
    ]


def local_days_present(table: pa.Table) -> list[date]:
    """The local days (Europe/Berlin) a table with `interval_start` has rows for."""
    return sorted({local_day_of(value) for value in pc.unique(table.column("interval_start")).to_pylist()})


@dataclass(frozen=True)
class EnergyChartsAssets:
    """Everything one declared source materializes: the endpoint multi-assets and the marts."""

    tables: EnergyChartsTables
    public_power: dg.AssetsDefinition
    price: dg.AssetsDefinition
    installed_power: dg.AssetsDefinition
    marts: list[dg.AssetsDefinition]

    @property
    def sources(self) -> list[dg.AssetsDefinition]:
        return [self.public_power, self.price, self.installed_power]

    @property
    def all(self) -> list[dg.AssetsDefinition]:
        return [*self.sources, *self.marts]

    def key(self, spec: TableSpec) -> dg.AssetKey:
        return table_asset_key(spec)


def energy_charts_assets(source: EnergyChartsSource) -> EnergyChartsAssets:
    """Build every asset of a declared Energy-Charts source."""
    tables = EnergyChartsTables.of(source)
    return EnergyChartsAssets(
        tables,
        public_power_assets(tables),
        price_assets(tables),
        installed_power_assets(tables),
        mart_assets(tables),
    )
