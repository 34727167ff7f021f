"""Running the bundled BDG2-shaped sample record through Dagster, offline: part of `energy-assets sample run`.

The archive, metadata and weather first; then one run per meter the archive holds (static partitions); then
the marts, which read everything published.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from energy_assets.defs.buildings.assets import fetch_archive
from energy_assets.defs.buildings.resources import ZenodoResource
from energy_assets.sources.buildings import Bdg2Archive


def materialize_buildings_sample(
    defs: dg.Definitions, instance: dg.DagsterInstance, *, run_config: Mapping[str, Any] | None = None
) -> list[dg.ExecuteInProcessResult]:
    """Materialize every buildings asset and mart from the bundled sample (never the network)."""
    zenodo = ZenodoResource(source="sample")
    resources = {"zenodo": zenodo}
    with Bdg2Archive(fetch_archive(zenodo).path) as archive:
        meters = archive.available_meters(zenodo.kind())
    results = [
        defs.resolve_job_def("buildings_reference_job").execute_in_process(
            instance=instance, resources=resources, run_config=run_config
        )
    ]
    readings_job = defs.resolve_job_def("buildings_meter_readings_job")
    for meter in meters:
        results.append(
            readings_job.execute_in_process(
                instance=instance, resources=resources, run_config=run_config, partition_key=meter
            )
        )
    results.append(
        defs.resolve_job_def("buildings_marts_job").execute_in_process(
            instance=instance, resources=resources, run_config=run_config
        )
    )
    return results
