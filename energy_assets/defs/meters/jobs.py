"""The job of the meter-file source: one NEM12 file per run (the inbox sensor's and the CLI's)."""

import dagster as dg

from energy_assets.defs.meters.assets import meter_readings, nmi_daily_consumption

meters_ingest_job = dg.define_asset_job(
    name="meters_ingest_job",
    # The file's table and its mart; the report follows by declarative automation.
    selection=dg.AssetSelection.assets(meter_readings, nmi_daily_consumption),
    description="Load one NEM12 file (run config: path and sha256) into meters.meter_readings, then the NMI mart.",
)

INGEST_OP = meter_readings.op.name


def ingest_run_config(path: str, sha256: str) -> dict:
    """The run config of `meters_ingest_job` for one file (the sensor and the CLI use the same)."""
    return {"ops": {INGEST_OP: {"config": {"path": path, "sha256": sha256}}}}
