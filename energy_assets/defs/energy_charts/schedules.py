"""Jobs and schedules of the Energy-Charts assets.

- `energy_charts_daily_job` (daily-partitioned assets and marts) runs every morning for yesterday's local
  day, the newest complete partition. A backfill over a range
  runs as one run (`BackfillPolicy.single_run()` on every asset), asking the API once per series and chunk.
- `energy_charts_installed_power_job` refreshes installed capacity weekly (the API returns all periods).
- `energy_charts_sample_job` selects everything: run it for the partition ranges of
  `partitions.sample_partition_ranges()` with `ENERGY_ASSETS_SOURCE=sample` to build the sample offline.
"""

from datetime import datetime, timedelta

import dagster as dg

from energy_assets.defs.energy_charts.assets import (
    ENERGY_CHARTS_ASSETS,
    INSTALLED_POWER_KEY,
    MART_ASSETS,
    RAW_INSTALLED_POWER,
)
from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE, MARKET_TIMEZONE_NAME

_ALL_KEYS = [key for asset in (*ENERGY_CHARTS_ASSETS, *MART_ASSETS) for key in asset.keys]
_INSTALLED_KEYS = [RAW_INSTALLED_POWER, INSTALLED_POWER_KEY]

energy_charts_daily_job = dg.define_asset_job(
    name="energy_charts_daily_job",
    selection=dg.AssetSelection.assets(*_ALL_KEYS) - dg.AssetSelection.assets(*_INSTALLED_KEYS),
    description="Raw responses, normalized tables and marts of the Energy-Charts source for daily partitions.",
)

energy_charts_installed_power_job = dg.define_asset_job(
    name="energy_charts_installed_power_job",
    selection=dg.AssetSelection.assets(*_INSTALLED_KEYS),
    description="Installed capacity (yearly and monthly) from /installed_power.",
)

energy_charts_sample_job = dg.define_asset_job(
    name="energy_charts_sample_job",
    selection=dg.AssetSelection.assets(*_ALL_KEYS),
    description="Every Energy-Charts asset and mart; with ENERGY_ASSETS_SOURCE=sample it runs offline.",
)


@dg.schedule(
    name="energy_charts_daily_schedule",
    job=energy_charts_daily_job,
    cron_schedule="30 6 * * *",
    execution_timezone=MARKET_TIMEZONE_NAME,
    description="Every day at 06:30 Europe/Berlin, for yesterday's local day (the newest complete one).",
)
def energy_charts_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    now = context.scheduled_execution_time or datetime.now(MARKET_TIMEZONE)
    yesterday = now.astimezone(MARKET_TIMEZONE).date() - timedelta(days=1)
    return dg.RunRequest(
        partition_key=yesterday.isoformat(), tags={"energy_charts/day": yesterday.isoformat()}
    )


energy_charts_installed_power_schedule = dg.ScheduleDefinition(
    name="energy_charts_installed_power_schedule",
    job=energy_charts_installed_power_job,
    cron_schedule="0 6 * * 1",
    execution_timezone=MARKET_TIMEZONE_NAME,
    description="Mondays at 06:00 Europe/Berlin.",
)

JOBS = [energy_charts_daily_job, energy_charts_installed_power_job, energy_charts_sample_job]
SCHEDULES = [energy_charts_daily_schedule, energy_charts_installed_power_schedule]
