"""Jobs and schedules of a declared Energy-Charts source (names prefixed with the source name).

- `<name>_daily_job` (daily-partitioned assets and marts) runs every morning (`daily_schedule`, default
  06:30 in the source's time zone) for yesterday's local day, the newest complete partition. A backfill over
  a range runs as one run (`BackfillPolicy.single_run()` on every asset), asking the API once per series and
  chunk.
- `<name>_installed_power_job` refreshes installed capacity weekly (the API returns all periods).
- `<name>_sample_job` selects everything: run it for the partition ranges of
  `partitions.sample_partition_ranges()` with `ENERGY_ASSETS_SOURCE=sample` to build the sample offline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from energy_assets.defs.energy_charts.assets import EnergyChartsAssets
from energy_assets.sources.energy_charts import endpoints


def daily_job_name(source_name: str) -> str:
    return f"{source_name}_daily_job"


def installed_power_job_name(source_name: str) -> str:
    return f"{source_name}_installed_power_job"


def energy_charts_jobs(assets: EnergyChartsAssets) -> list[dg.UnresolvedAssetJobDefinition]:
    """The daily, installed-power and sample jobs of one source."""
    name = assets.tables.source.name
    all_keys = [key for asset in assets.all for key in asset.keys]
    installed_keys = list(assets.installed_power.keys)
    return [
        dg.define_asset_job(
            name=daily_job_name(name),
            selection=dg.AssetSelection.assets(*all_keys) - dg.AssetSelection.assets(*installed_keys),
            description=f"Raw responses, normalized tables and marts of the {name} source for daily partitions.",
        ),
        dg.define_asset_job(
            name=installed_power_job_name(name),
            selection=dg.AssetSelection.assets(*installed_keys),
            description=f"Installed capacity (yearly and monthly) from /{endpoints.INSTALLED_POWER}.",
        ),
        dg.define_asset_job(
            name=f"{name}_sample_job",
            selection=dg.AssetSelection.assets(*all_keys),
            description=f"Every {name} asset and mart; with ENERGY_ASSETS_SOURCE=sample it runs offline.",
        ),
    ]


def energy_charts_schedules(assets: EnergyChartsAssets) -> list[dg.ScheduleDefinition]:
    """The daily run for yesterday's local day and the installed-capacity refresh, in the source's zone."""
    source = assets.tables.source
    zone = ZoneInfo(source.timezone)

    @dg.schedule(
        name=f"{source.name}_daily_schedule",
        job_name=daily_job_name(source.name),
        cron_schedule=source.daily_schedule,
        execution_timezone=source.timezone,
        description=f"`{source.daily_schedule}` {source.timezone}, for yesterday's local day (the newest complete one).",
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        now = context.scheduled_execution_time or datetime.now(zone)
        yesterday = now.astimezone(zone).date() - timedelta(days=1)
        return dg.RunRequest(
            partition_key=yesterday.isoformat(), tags={f"{source.name}/day": yesterday.isoformat()}
        )

    installed_power_schedule = dg.ScheduleDefinition(
        name=f"{source.name}_installed_power_schedule",
        job_name=installed_power_job_name(source.name),
        cron_schedule=source.installed_power_schedule,
        execution_timezone=source.timezone,
        description=f"`{source.installed_power_schedule}` {source.timezone}.",
    )
    return [daily_schedule, installed_power_schedule]
