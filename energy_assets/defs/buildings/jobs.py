"""Jobs of the buildings source: the reference tables, the meter readings (one partition per meter), the marts."""

import dagster as dg

from energy_assets.defs.buildings.assets import ARCHIVE_KEY, BUILDING_MARTS, READINGS_KEY

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

JOBS = [buildings_reference_job, buildings_meter_readings_job, buildings_marts_job]
