"""Dagster layer of the Energy-Charts source: assets, checks, partitions, the client resource, schedules.

`energy_charts_definitions()` is what `energy_assets.defs.build.build_defs` merges. Its `energy_charts`
resource (live or snapshot client, see `resources`) is wired by `build_defs` with the shared `postgres`
and `lake` resources. The bundled sample covers the partition keys in `SAMPLE_PARTITION_KEYS`.
"""

from __future__ import annotations

import dagster as dg

from energy_assets.defs.energy_charts.assets import (
    DAY_AHEAD_PRICE_KEY,
    ENERGY_CHARTS_ASSETS,
    MART_ASSETS,
    PUBLIC_POWER_KEY,
)
from energy_assets.defs.energy_charts.checks import build_freshness_check
from energy_assets.defs.energy_charts.partitions import (
    SAMPLE_PARTITION_KEYS,
    daily_partitions,
    sample_partition_ranges,
)
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.energy_charts.sample import materialize_sample
from energy_assets.defs.energy_charts.schedules import (
    JOBS,
    SCHEDULES,
    energy_charts_daily_job,
    energy_charts_sample_job,
)
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DAYS
from energy_assets.sources.energy_charts.tables import DAY_AHEAD_PRICE, PUBLIC_POWER

FRESHNESS_CHECKS = [
    build_freshness_check(PUBLIC_POWER_KEY, PUBLIC_POWER.qualified_name),
    build_freshness_check(DAY_AHEAD_PRICE_KEY, DAY_AHEAD_PRICE.qualified_name),
]


def energy_charts_definitions() -> dg.Definitions:
    """Assets, checks, jobs and schedules of this source; `build_defs` supplies the resources."""
    return dg.Definitions(
        assets=[*ENERGY_CHARTS_ASSETS, *MART_ASSETS],
        asset_checks=FRESHNESS_CHECKS,
        jobs=JOBS,
        schedules=SCHEDULES,
    )


__all__ = [
    "SAMPLE_DAYS",
    "SAMPLE_PARTITION_KEYS",
    "EnergyChartsResource",
    "daily_partitions",
    "energy_charts_daily_job",
    "energy_charts_definitions",
    "energy_charts_sample_job",
    "materialize_sample",
    "sample_partition_ranges",
]
