"""Jobs and schedules of the Energy-Charts assets.

- `energy_charts_daily_job` (daily-partitioned assets and marts) runs every morning for yesterday's local
  day: `build_schedule_from_partitioned_job` targets the newest complete partition. A backfill over a range
  runs as one run (`BackfillPolicy.single_run()` on every asset), asking the API once per series and chunk.
- `energy_charts_installed_power_job` refreshes installed capacity weekly (the API returns all periods).
- `energy_charts_sample_job` selects everything: run it for the partition ranges of
  `partitions.sample_partition_ranges()` with `ENERGY_ASSETS_SOURCE=sample` to build the sample offline.
"""

from __future__ import annotations

import dagster as dg

from energy_assets.defs.energy_charts.assets import (
    ENERGY_CHARTS_ASSETS,
    MART_ASSETS,
    RAW_INSTALLED_POWER,
)
from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE_NAME

_ALL_KEYS = [key for asset in (*ENERGY_CHARTS_ASSETS, *MART_ASSETS) for key in asset.keys]
_INSTALLED_KEYS = [dg.AssetKey(RAW_INSTALLED_POWER), dg.AssetKey("installed_power")]

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

energy_charts_daily_schedule = dg.build_schedule_from_partitioned_job(
    energy_charts_daily_job,
    name="energy_charts_daily_schedule",
    hour_of_day=6,
    minute_of_hour=30,
    description="Every day at 06:30 Europe/Berlin, for yesterday's local day.",
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
