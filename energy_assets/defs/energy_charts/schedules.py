"""Schedules of a declared Energy-Charts source (names prefixed with the source name), in its time zone.

- `<name>_daily_schedule` (`daily_schedule`, default 06:30) runs `<name>_daily_job` for yesterday's local
  day, the newest complete partition;
- `<name>_installed_power_schedule` (`installed_power_schedule`, default Mondays 06:00) refreshes capacity.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from energy_assets.defs.energy_charts.assets import EnergyChartsAssets
from energy_assets.defs.energy_charts.jobs import daily_job_name, installed_power_job_name


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
