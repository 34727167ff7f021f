"""Dagster layer of the meter-file source: the ingest asset, the NMI mart, the inbox sensor, the resource.

`meters_definitions()` is what `energy_assets.defs.build.build_defs` merges; `build_defs` supplies the
`meters`, `lake` and `postgres` resources. `ingest_files` runs the sensor's job for given files (the
`energy-assets meters ingest` command).
"""

import dagster as dg

from energy_assets.defs.meters.assets import METER_ASSETS, METER_READINGS_KEY, NMI_DAILY_KEY
from energy_assets.defs.meters.ingest import IngestOutcome, ingest_files
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.meters.sensors import ingest_run_config, meters_inbox_sensor, meters_ingest_job


def meters_definitions() -> dg.Definitions:
    return dg.Definitions(assets=METER_ASSETS, jobs=[meters_ingest_job], sensors=[meters_inbox_sensor])


__all__ = [
    "METER_READINGS_KEY",
    "NMI_DAILY_KEY",
    "IngestOutcome",
    "MetersResource",
    "ingest_files",
    "ingest_run_config",
    "meters_definitions",
    "meters_inbox_sensor",
    "meters_ingest_job",
]
