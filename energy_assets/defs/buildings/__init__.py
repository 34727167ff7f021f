"""Dagster layer of the buildings source (BDG2 on Zenodo): assets, marts, the new-version sensor, the resource.

`buildings_definitions()` is what `energy_assets.defs.build.build_defs` merges; `build_defs` supplies the
`zenodo`, `lake` and `postgres` resources.
"""

import dagster as dg

from energy_assets.defs.buildings.assets import (
    ARCHIVE_KEY,
    BUILDING_ASSETS,
    BUILDING_MARTS,
    READINGS_KEY,
    meter_partitions,
)
from energy_assets.defs.buildings.resources import ZenodoResource
from energy_assets.defs.buildings.sensors import bdg2_new_version_sensor

buildings_reference_job = dg.define_asset_job(
    name="buildings_reference_job",
    selection=dg.AssetSelection.assets(ARCHIVE_KEY)
    | dg.AssetSelection.groups("buildings") - dg.AssetSelection.assets(READINGS_KEY),
    description="The BDG2 archive, buildings.metadata and buildings.weather.",
)
buildings_meter_readings_job = dg.define_asset_job(
    name="buildings_meter_readings_job",
    selection=dg.AssetSelection.assets(READINGS_KEY),
    description="buildings.meter_readings for the selected meters (one partition per meter; a range is one run).",
)
buildings_marts_job = dg.define_asset_job(
    name="buildings_marts_job",
    selection=dg.AssetSelection.assets(*BUILDING_MARTS),
    description="The building marts, recomputed from everything published.",
)


def buildings_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[*BUILDING_ASSETS, *BUILDING_MARTS],
        jobs=[buildings_reference_job, buildings_meter_readings_job, buildings_marts_job],
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
