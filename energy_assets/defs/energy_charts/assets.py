"""Energy-Charts assets: each endpoint's raw responses with the tables parsed from them, and the marts.

Keep dataset logic out of this module: fetching, validation, cutting into days and the publish requests
live in `energy_assets.sources.energy_charts.ingest`, aggregation in `aggregates`; every asset here is built
by the table-asset factory (`energy_assets.defs.factories`), which audits, publishes and reports. This module
only declares the tables and wires the source's functions in.

Data flow (daily partitions are local days; a single-run backfill handles a whole range in one step):

    /public_power -> raw/energy_charts/public_power + energy_charts/public_power + energy_charts/public_power_share
    /price        -> raw/energy_charts/price + energy_charts/day_ahead_price
    /installed_power -> raw/energy_charts/installed_power + energy_charts/installed_power (all periods)
    energy_charts/* -> marts/daily_production_trend, marts/daily_price_analysis, marts/underperformance_30min

Each endpoint is one step: its response is fetched once per area and chunk of days, parsed once, audited
for every table it feeds, and only then published (raw JSON, lake, PostgreSQL, in step). Asset keys mirror
where the data lives: `raw/<source>/<endpoint>`, `<schema>/<table>`. Everything is built by
`energy_charts_assets(source)` from a declared `EnergyChartsSource` (its name, areas and partitions), so two
declared instances build two independent sets of assets.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.defs.energy_charts.component import EnergyChartsSource
from energy_assets.defs.energy_charts.partitions import daily_partitions_for, partition_days
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.factories import (
    AssetOutput,
    MartOutput,
    Publish,
    TableDeclaration,
    TableOutput,
    mart_asset,
    table_asset,
)
from energy_assets.defs.publishing import table_asset_key
from energy_assets.defs.resources import LakeResource
from energy_assets.sources.energy_charts import aggregates, endpoints
from energy_assets.sources.energy_charts.checks import check_physical_signs
from energy_assets.sources.energy_charts.ingest import (
    DailyEndpoint,
    DailyTable,
    ingest_days,
    ingest_installed_power,
    raw_document_path,
)
from energy_assets.sources.energy_charts.local_days import days_between
from energy_assets.sources.energy_charts.responses import normalize_price, normalize_public_power
from energy_assets.sources.energy_charts.tables import (
    DAILY_PRICE_ANALYSIS,
    DAILY_PRODUCTION_TREND,
    DAY_AHEAD_PRICE,
    INSTALLED_POWER,
    PUBLIC_POWER,
    PUBLIC_POWER_SHARE,
    UNDERPERFORMANCE_30MIN,
)
from energy_assets.warehouse.publish import Candidate, read_published
from energy_assets.warehouse.table_spec import TableSpec

PHYSICAL_SIGNS = "physical_signs"
_PHYSICAL_SIGNS = (
    "Generation and load are >= 0, pumping consumption <= 0 (trade and residual load may be either)."
)


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


def raw_path(lake: LakeResource, source: str, endpoint: str, area: str, name: str) -> Path:
    """`<raw>/<source>/<endpoint>/<area>/<name>.json`: where a day's (or a time step's) document is kept."""
    return raw_document_path(lake.raw_dir() / source / endpoint, area, name)


# ---------------------------------------------------------------------------------------------------------
# Daily endpoints: one step each (raw + the tables parsed from it)


def daily_endpoint_asset(
    endpoint: DailyEndpoint,
    tables: EnergyChartsTables,
    descriptions: Sequence[str],
    raw_description: str,
    areas_of: Callable[[EnergyChartsResource], list[str]],
) -> dg.AssetsDefinition:
    """The step of a daily endpoint: fetch, parse once, audit every table, then publish all."""
    source = tables.source
    raw_key = tables.raw_key(endpoint.name)
    declarations = [
        TableDeclaration(
            table.spec,
            description,
            rules=endpoint.rules(0),
            warnings={PHYSICAL_SIGNS: _PHYSICAL_SIGNS} if table.spec is tables.public_power else {},
        )
        for table, description in zip(endpoint.tables, descriptions, strict=True)
    ]

    def compute(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput:
        resource: EnergyChartsResource = getattr(context.resources, source.name)
        lake: LakeResource = context.resources.lake
        days = partition_days(context.partition_keys)
        client = resource.client()
        first_request = len(client.requests_made)
        ingested = ingest_days(
            endpoint,
            client,
            areas_of(resource),
            days,
            max_days_per_request=resource.max_days_per_request,
            raw_dir=lake.raw_dir() / source.name / endpoint.name,
        )
        results = publish(ingested.requests)
        made = client.requests_made[first_request:]
        context.log.info(
            f"{len(made)} request(s) to /{endpoint.name} for {len(days)} day(s) via {client.describe()}"
        )
        outputs = []
        for request, result in zip(ingested.requests, results, strict=True):
            data = (
                pa.concat_tables([c.data for c in request.candidates])
                if request.candidates
                else request.spec.empty()
            )
            is_power = request.spec is tables.public_power
            outputs.append(
                TableOutput(
                    request,
                    result,
                    preview=data,
                    figures=_key_figures(request.spec.name, data, ingested.parsed_days),
                    extra_checks=[_physical_signs_result(table_asset_key(request.spec), data)]
                    if is_power
                    else (),
                )
            )
        raw = {
            "requests": len(made),
            "request_params": dg.MetadataValue.json([request.params for request in made[:50]]),
            "days": len(days),
            "chunks": ingested.chunks,
            "documents": ingested.documents,
            "client": client.describe(),
            "dagster/uri": dg.MetadataValue.path(str(lake.raw_dir() / source.name / endpoint.name)),
        }
        return AssetOutput(outputs, raw={raw_key: raw}, partitions_in_run=len(days))

    return table_asset(
        name=f"{source.name}__{endpoint.name}",
        tables=declarations,
        compute=compute,
        group_name=source.name,
        raw=[dg.AssetSpec(raw_key, kinds={"python", "json"}, description=raw_description)],
        partitions_def=daily_partitions_for(source),
        resource_keys=[source.name],
        network=True,
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


def public_power_asset(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/public_power: raw JSON, `<source>.public_power` and `<source>.public_power_share`."""
    endpoint = DailyEndpoint(
        name=endpoints.PUBLIC_POWER,
        area_column="country",
        fetch=lambda client, area, first, last: client.public_power(area, first, last),
        normalize=lambda body, area, window: normalize_public_power(body, country=area, window=window),
        tables=(
            DailyTable(tables.public_power, lambda parsed: parsed.power),
            DailyTable(tables.public_power_share, lambda parsed: parsed.share),
        ),
    )
    return daily_endpoint_asset(
        endpoint,
        tables,
        [
            "Public net production, load and trade in MW per interval, long format: one row per country,"
            " series and interval start (UTC). Series matched by name (case-insensitive, new names kept);"
            " series null at every timestamp (Nuclear since 2023) are left out. PostgreSQL"
            f" {tables.public_power.qualified_name}.",
            "The percentage series of /public_power (`Renewable share of generation`, `... of load`), kept"
            f" apart from the MW series: {tables.public_power_share.qualified_name}.",
        ],
        "Raw /public_power responses (MW per interval and series, 15-minute for Germany), one JSON document"
        " per country and local day with the documented fields only. One request per country and chunk of"
        " days; written only after the tables parsed from it passed their audit.",
        lambda resource: list(resource.countries),
    )


def price_asset(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/price: raw JSON and `<source>.day_ahead_price`."""
    endpoint = DailyEndpoint(
        name=endpoints.PRICE,
        area_column="bidding_zone",
        fetch=lambda client, area, first, last: client.price(area, first, last),
        normalize=lambda body, area, window: normalize_price(body, bidding_zone=area, window=window),
        tables=(DailyTable(tables.day_ahead_price, lambda parsed: parsed.table),),
    )
    return daily_endpoint_asset(
        endpoint,
        tables,
        [
            "Day-ahead prices in EUR/MWh per bidding zone and interval; interval_minutes is 60 for hourly"
            " days (to 2025-09-30) and 15 from 2025-10-01. Both unit spellings accepted. PostgreSQL"
            f" {tables.day_ahead_price.qualified_name}.",
        ],
        "Raw /price (day-ahead) responses, one JSON document per bidding zone and local day: hourly to"
        " 2025-09-30, quarter-hourly from 2025-10-01. One request per zone and chunk of days.",
        lambda resource: list(resource.bidding_zones),
    )


# ---------------------------------------------------------------------------------------------------------
# Installed power: not partitioned (the API returns all periods)


def installed_power_asset(tables: EnergyChartsTables) -> dg.AssetsDefinition:
    """/installed_power (all periods at once): raw JSON and `<source>.installed_power`."""
    source = tables.source
    raw_key = tables.raw_key(endpoints.INSTALLED_POWER)

    def compute(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput:
        resource: EnergyChartsResource = getattr(context.resources, source.name)
        raw_dir = context.resources.lake.raw_dir() / source.name / endpoints.INSTALLED_POWER
        client = resource.client()
        request = ingest_installed_power(
            client, tables.installed_power, resource.installed_power_country, raw_dir=raw_dir
        )
        [result] = publish([request])
        preview = pa.concat_tables([c.data for c in request.candidates])
        raw = {
            "requests": len(endpoints.TIME_STEPS),
            "client": client.describe(),
            "dagster/uri": dg.MetadataValue.path(str(raw_dir)),
        }
        return AssetOutput([TableOutput(request, result, preview=preview)], raw={raw_key: raw})

    return table_asset(
        name=f"{source.name}__installed_power",
        tables=[
            TableDeclaration(
                tables.installed_power,
                "Installed capacity in GW per production type, monthly (`MM.YYYY`) and yearly (`YYYY`)"
                " periods; period_start is the first day of the labelled period."
                f" {tables.installed_power.qualified_name}.",
            )
        ],
        compute=compute,
        group_name=source.name,
        raw=[
            dg.AssetSpec(
                raw_key,
                kinds={"python", "json"},
                description="Raw /installed_power responses, yearly and monthly, for the configured country.",
            )
        ],
        resource_keys=[source.name],
        network=True,
    )


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
        trend = aggregates.daily_production_trend(power, timezone_name=source.timezone)
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
        analysis = aggregates.daily_price_analysis(prices, power, timezone_name=source.timezone)
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
            timezone_name=source.timezone,
        )
        flagged = result.filter(pc.fill_null(result.column("is_underperforming"), False))
        figures = {
            "underperforming_buckets": flagged.num_rows,
            "history_days_loaded": len(local_days_present(power, source.timezone)),
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


def local_days_present(table: pa.Table, timezone: str) -> list[date]:
    """The local days (in `timezone`) a table with `interval_start` has rows for."""
    zone = ZoneInfo(timezone)
    return sorted(
        {value.astimezone(zone).date() for value in pc.unique(table.column("interval_start")).to_pylist()}
    )


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
        public_power_asset(tables),
        price_asset(tables),
        installed_power_asset(tables),
        mart_assets(tables),
    )
