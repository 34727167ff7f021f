"""The freshness check of the Energy-Charts tables: is the newest partition in the lake recent enough?

Partition-level checks are emitted by the assets themselves through the publish path (see
`energy_assets.defs.publishing`): the audit's blocking checks and the lake/PostgreSQL comparison. Freshness
is a standalone WARN check over the lake, since it is about the newest partition rather than the ones a run
just wrote.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from energy_assets.defs.resources import LakeResource
from energy_assets.sources.energy_charts.checks import check_freshness
from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE_NAME


class FreshnessConfig(dg.Config):
    """How old the newest partition may be: 1 = yesterday (the newest complete day)."""

    max_lag_days: int = 2


def _latest_lake_day(lake: LakeResource, dataset: str) -> date | None:
    days = [date.fromisoformat(partition["date"]) for partition in lake.store().list_partitions(dataset)]
    return max(days) if days else None


def build_freshness_check(
    asset_key: dg.AssetKey, dataset: str, timezone: str = MARKET_TIMEZONE_NAME
) -> dg.AssetChecksDefinition:
    """A WARN check that the newest partition of `dataset` in the lake is at most `max_lag_days` old."""

    @dg.asset_check(
        asset=asset_key,
        name="latest_partition_fresh",
        description=(
            f"The newest local day in the lake dataset {dataset} is at most max_lag_days old; evaluated every"
            f" morning at 09:00 {timezone} by declarative automation, also when no run happened."
        ),
        automation_condition=dg.AutomationCondition.cron_tick_passed("0 9 * * *", timezone),  # type: ignore[arg-type]  # the builder is typed for assets; it applies to checks as well
    )
    def latest_partition_fresh(config: FreshnessConfig, lake: LakeResource) -> dg.AssetCheckResult:
        today = datetime.now(ZoneInfo(timezone)).date()
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
