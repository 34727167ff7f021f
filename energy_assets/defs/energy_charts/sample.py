"""Running the bundled Energy-Charts sample through Dagster, offline: what `energy-assets sample run` calls.

The sample covers the local days `SAMPLE_PARTITION_KEYS` (a normal day, both DST days and the two days of
the switch to quarter-hourly prices). Installed power is loaded first; then each run of consecutive sample
days is one single-run backfill of the daily job, in date order, so the underperformance baseline of a
later day finds the earlier days in the lake.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from energy_assets.defs.energy_charts.component import DEFAULT_NAME
from energy_assets.defs.energy_charts.jobs import daily_job_name, installed_power_job_name
from energy_assets.defs.energy_charts.partitions import sample_partition_ranges
from energy_assets.defs.energy_charts.resources import EnergyChartsResource


def materialize_sample(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    resource_overrides: Mapping[str, Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    source_name: str = DEFAULT_NAME,
) -> list[dg.ExecuteInProcessResult]:
    """Materialize every Energy-Charts asset and mart for the sample days from the recorded responses.

    `defs` supplies `postgres` and `lake` (e.g. `build_defs()`); `resource_overrides` replace resources for
    these runs. Unless overridden, the source's client resource (`source_name`) reads the bundled sample, whatever ENERGY_ASSETS_SOURCE
    says, so nothing touches the network. Runs raise on the first failure.
    """
    resources = {source_name: EnergyChartsResource(source="sample"), **(resource_overrides or {})}
    installed_job = defs.resolve_job_def(installed_power_job_name(source_name))
    results = [
        installed_job.execute_in_process(instance=instance, resources=resources, run_config=run_config)
    ]
    daily_job = defs.resolve_job_def(daily_job_name(source_name))
    for first, last in sample_partition_ranges():
        results.append(
            daily_job.execute_in_process(
                instance=instance,
                resources=resources,
                run_config=run_config,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
        )
    return results
