"""Jobs of a declared Energy-Charts source (names prefixed with the source name).

- `<name>_daily_job`: the daily-partitioned assets and marts; a backfill over a range runs as one run
  (`BackfillPolicy.single_run()` on every asset), asking the API once per series and chunk.
- `<name>_installed_power_job`: installed capacity (the API returns all periods).
- `<name>_sample_job`: everything; run it for the partition ranges of `partitions.sample_partition_ranges()`
  with `ENERGY_ASSETS_SOURCE=sample` to build the sample offline.
"""

from __future__ import annotations

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
