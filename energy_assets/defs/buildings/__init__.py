"""Dagster layer of the buildings source (BDG2 on Zenodo): assets, marts, the new-version sensor, the resource.

`buildings_definitions(source)` builds what the declared `Bdg2Source` (`component`) contributes; its `zenodo`
resource comes from the component, `lake` and `postgres` from `build_defs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from energy_assets.defs.buildings.assets import BUILDING_MARTS, building_assets
from energy_assets.defs.buildings.jobs import (
    JOBS,
    buildings_marts_job,
    buildings_meter_readings_job,
    buildings_reference_job,
)
from energy_assets.defs.buildings.resources import ZenodoResource
from energy_assets.defs.buildings.sensors import new_version_sensor

if TYPE_CHECKING:
    from energy_assets.defs.buildings.component import Bdg2Source


def buildings_definitions(source: Bdg2Source) -> dg.Definitions:
    """Assets, marts, jobs and the new-version sensor of the declared BDG2 source (its `zenodo` resource
    comes from the component)."""
    return dg.Definitions(
        assets=[*building_assets(source.meters), *BUILDING_MARTS],
        jobs=JOBS,
        sensors=[new_version_sensor(source.version_check_interval_hours)],
    )


__all__ = [
    "ZenodoResource",
    "building_assets",
    "buildings_definitions",
    "buildings_marts_job",
    "buildings_meter_readings_job",
    "buildings_reference_job",
]
