"""Dagster layer of the Energy-Charts source: the component, assets, checks, partitions, resource, schedules.

`EnergyChartsSource` (in `component`) is what a `defs.yaml` declares; its `build_defs` calls
`energy_charts_definitions`, which builds the assets, the freshness checks, the jobs, the schedules and the
source's client resource (keyed by the source name; live or snapshot client, see `resources`). The shared
`postgres` and `lake` resources come from `build_defs`. The bundled sample covers `SAMPLE_PARTITION_KEYS`.
"""

from __future__ import annotations

import dagster as dg

from energy_assets.defs.energy_charts.assets import EnergyChartsAssets, energy_charts_assets
from energy_assets.defs.energy_charts.checks import build_freshness_check
from energy_assets.defs.energy_charts.component import EnergyChartsSource
from energy_assets.defs.energy_charts.jobs import energy_charts_jobs
from energy_assets.defs.energy_charts.partitions import SAMPLE_PARTITION_KEYS, sample_partition_ranges
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.energy_charts.sample import materialize_sample
from energy_assets.defs.energy_charts.schedules import energy_charts_schedules
from energy_assets.defs.publishing import table_asset_key


def freshness_checks(assets: EnergyChartsAssets) -> list[dg.AssetChecksDefinition]:
    tables, zone = assets.tables, assets.tables.source.timezone
    return [
        build_freshness_check(table_asset_key(spec), spec.qualified_name, zone)
        for spec in (tables.public_power, tables.day_ahead_price)
    ]


def energy_charts_definitions(source: EnergyChartsSource) -> dg.Definitions:
    """Assets, checks, jobs, schedules and the client resource of one declared source."""
    assets = energy_charts_assets(source)
    return dg.Definitions(
        assets=assets.all,
        asset_checks=freshness_checks(assets),
        jobs=energy_charts_jobs(assets),
        schedules=energy_charts_schedules(assets),
        resources={
            source.name: EnergyChartsResource(
                countries=source.countries,
                bidding_zones=source.bidding_zones,
                installed_power_country=source.installed_power_country,
            )
        },
    )


__all__ = [
    "SAMPLE_PARTITION_KEYS",
    "EnergyChartsAssets",
    "EnergyChartsResource",
    "EnergyChartsSource",
    "energy_charts_assets",
    "energy_charts_definitions",
    "materialize_sample",
    "sample_partition_ranges",
]
