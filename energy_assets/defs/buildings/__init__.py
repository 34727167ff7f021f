"""Dagster layer of the buildings source (BDG2 on Zenodo): assets, marts, the new-version sensor, the resource.

`buildings_definitions()` is what `energy_assets.defs.build.build_defs` merges; `build_defs` supplies the
`zenodo`, `lake` and `postgres` resources.
"""

import dagster as dg

from energy_assets.defs.buildings.assets import BUILDING_ASSETS, BUILDING_MARTS
from energy_assets.defs.buildings.jobs import (
    JOBS,
    buildings_marts_job,
    buildings_meter_readings_job,
    buildings_reference_job,
)
from energy_assets.defs.buildings.partitions import meter_partitions
from energy_assets.defs.buildings.resources import ZenodoResource
from energy_assets.defs.buildings.sensors import bdg2_new_version_sensor


def buildings_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*BUILDING_ASSETS, *BUILDING_MARTS],
        jobs=JOBS,
        sensors=[bdg2_new_version_sensor],
    )


__all__ = [
    "ZenodoResource",
    "bdg2_new_version_sensor",
    "buildings_definitions",
    "buildings_marts_job",
    "buildings_meter_readings_job",
    "buildings_reference_job",
    "meter_partitions",
]
