"""Asset checks of the Energy-Charts assets: which exist, which block downstream assets, how results look.

The rules themselves are plain functions in `energy_assets.sources.energy_charts.quality`. Partition-level
checks are emitted by the assets (`check_specs` + `MaterializeResult(check_results=...)`): the asset knows
exactly which partitions it just wrote, which a separately scheduled check would have to guess. Blocking
checks stop the marts in the same run when a partition has the wrong number of intervals, duplicate
timestamps, prices outside the market bounds, or differs between Parquet and PostgreSQL. Freshness is a
standalone check over the lake, since it is about the newest partition rather than the one just written.
"""

from collections.abc import Sequence
from datetime import date, datetime

import dagster as dg

from energy_assets.defs.resources import LakeResource
from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE
from energy_assets.sources.energy_charts.quality import QualityResult, check_freshness

INTERVAL_COUNTS = "interval_counts"
UNIQUE_INTERVALS = "unique_intervals"
PRICE_BOUNDS = "price_bounds"
PHYSICAL_SIGNS = "physical_signs"
PARQUET_MATCHES_POSTGRES = "parquet_matches_postgres"

_DESCRIPTIONS = {
    INTERVAL_COUNTS: "Every series has as many intervals per local day as its length implies "
    "(96/92/100 quarter hours, 24/23/25 hours).",
    UNIQUE_INTERVALS: "No duplicate timestamps: the table key is unique in the loaded partitions.",
    PRICE_BOUNDS: "Every price lies within the day-ahead market bounds, -600 to 4000 EUR/MWh.",
    PHYSICAL_SIGNS: "Generation and load are >= 0, pumping consumption <= 0 (trade and residual load may be either).",
    PARQUET_MATCHES_POSTGRES: "The Parquet partition and the PostgreSQL table hold the same number of rows.",
}

# Checks whose failure must keep the partition out of the marts.
BLOCKING = frozenset({INTERVAL_COUNTS, UNIQUE_INTERVALS, PRICE_BOUNDS, PARQUET_MATCHES_POSTGRES})


def check_specs(asset_key: str, names: Sequence[str], *, blocking: bool = True) -> list[dg.AssetCheckSpec]:
    """The specs of the checks an asset emits itself (`blocking` False turns blocking off for all)."""
    return [
        dg.AssetCheckSpec(
            name=name,
            asset=asset_key,
            description=_DESCRIPTIONS[name],
            blocking=blocking and name in BLOCKING,
        )
        for name in names
    ]


def to_check_result(result: QualityResult, *, check_name: str | None = None) -> dg.AssetCheckResult:
    """A `QualityResult` as an `AssetCheckResult`; blocking checks fail with ERROR, the others WARN."""
    name = check_name or result.name
    return dg.AssetCheckResult(
        check_name=name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if name in BLOCKING else dg.AssetCheckSeverity.WARN,
        description=result.summary,
        metadata={"details": dg.MetadataValue.json(result.details)},
    )


class FreshnessConfig(dg.Config):
    """How old the newest partition may be: 1 = yesterday (the newest complete day)."""

    max_lag_days: int = 2


def _latest_lake_day(lake: LakeResource, dataset: str) -> date | None:
    days = [date.fromisoformat(partition["date"]) for partition in lake.store().list_partitions(dataset)]
    return max(days) if days else None


def build_freshness_check(asset_key: dg.AssetKey, dataset: str) -> dg.AssetChecksDefinition:
    """A WARN check that the newest partition of `dataset` in the lake is at most `max_lag_days` old."""

    @dg.asset_check(
        asset=asset_key,
        name="latest_partition_fresh",
        description=f"The newest local day in the lake dataset {dataset} is at most max_lag_days old.",
    )
    def latest_partition_fresh(config: FreshnessConfig, lake: LakeResource) -> dg.AssetCheckResult:
        today = datetime.now(MARKET_TIMEZONE).date()
        result = check_freshness(
            _latest_lake_day(lake, dataset), today=today, max_lag_days=config.max_lag_days
        )
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN,
            description=result.summary,
            metadata={"details": dg.MetadataValue.json(result.details)},
        )

    return latest_partition_fresh
