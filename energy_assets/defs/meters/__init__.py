"""Dagster layer of the meter-file source: the ingest asset, the NMI mart, the inbox sensor, the resource.

`meters_definitions(source)` builds what the declared `Nem12Inbox` (`component`) contributes; its `meters`
resource comes from the component, `lake` and `postgres` from `build_defs`. `ingest_files` runs the
sensor's job for given files (the `energy-assets meters ingest` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from energy_assets.defs.meters.assets import METER_ASSETS, METER_READINGS_KEY, NMI_DAILY_KEY
from energy_assets.defs.meters.ingest import IngestOutcome, ingest_files
from energy_assets.defs.meters.jobs import ingest_run_config, meters_ingest_job
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.meters.sensors import inbox_sensor

if TYPE_CHECKING:
    from energy_assets.defs.meters.component import Nem12Inbox


def meters_definitions(source: Nem12Inbox) -> dg.Definitions:
    """The ingest asset, the NMI mart, the job and the inbox sensor at the declared interval."""
    return dg.Definitions(
        assets=METER_ASSETS,
        jobs=[meters_ingest_job],
        sensors=[inbox_sensor(source.sensor_interval_seconds, source.stable_ticks)],
    )


__all__ = [
    "METER_READINGS_KEY",
    "NMI_DAILY_KEY",
    "IngestOutcome",
    "MetersResource",
    "ingest_files",
    "ingest_run_config",
    "meters_definitions",
    "inbox_sensor",
    "meters_ingest_job",
]
