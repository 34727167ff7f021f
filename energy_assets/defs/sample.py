"""The main job end to end: `energy-assets sample run` (the README's first Quick start command).

Starts the managed cluster (or uses ENERGY_PG_URL), points the Dagster instance at PostgreSQL
(`dagster.yaml` in DAGSTER_HOME), then materializes, offline, the platform health asset and the bundled
samples of all three sources with their marts: every Energy-Charts sample day, the BDG2-shaped Zenodo
record, and the NEM12 sample files dropped into the inbox.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from energy_assets.defs.build import build_defs
from energy_assets.defs.buildings.sample import materialize_buildings_sample
from energy_assets.defs.energy_charts import SAMPLE_PARTITION_KEYS, materialize_sample
from energy_assets.defs.meters.sample import ingest_meters_sample
from energy_assets.defs.report import REPORT_KEY
from energy_assets.errors import EnergyAssetsError
from energy_assets.instance.home import dagster_environment, write_dagster_yaml
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.settings_from_env import external_settings
from energy_assets.settings import DAGSTER_DATABASE, ENV_PG_URL, DataHome

# Step events stay in the run history (UI); the terminal shows INFO and above.
CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@contextmanager
def dagster_instance(home: DataHome, *, ephemeral: bool = False) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance on PostgreSQL (dagster.yaml in DAGSTER_HOME), or an in-memory one."""
    if ephemeral:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance
        return
    url = os.environ.get(ENV_PG_URL)
    settings = (
        external_settings(url).with_database(DAGSTER_DATABASE)
        if url
        else ManagedCluster(home).ensure_running(DAGSTER_DATABASE)
    )
    write_dagster_yaml(home.dagster_home)
    os.environ.update(dagster_environment(settings, home.dagster_home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def run_sample_pipeline(home: DataHome, *, ephemeral_instance: bool = False) -> str:
    """Run everything on the bundled sample; returns a short summary (raises on the first failure)."""
    os.environ.setdefault("ENERGY_ASSETS_HOME", str(home.root))
    defs = build_defs()
    with dagster_instance(home, ephemeral=ephemeral_instance) as instance:
        health = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("platform_tls_health")}
        )
        results = [health.execute_in_process(instance=instance, run_config=CONSOLE_INFO)]
        results.extend(materialize_sample(defs, instance, run_config=CONSOLE_INFO))
        results.extend(materialize_buildings_sample(defs, instance, run_config=CONSOLE_INFO))
        meter_files = ingest_meters_sample(defs, instance)
        report_job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={REPORT_KEY})
        results.append(report_job.execute_in_process(instance=instance, run_config=CONSOLE_INFO))
        [report] = [
            event.materialization
            for event in results[-1].get_asset_materialization_events()
            if event.materialization.asset_key == REPORT_KEY
        ]
        report_path = report.metadata["dagster/uri"].value
        materializations = sum(len(r.get_asset_materialization_events()) for r in results)
        checks = [c for r in results for c in r.get_asset_check_evaluations()]
        failed = [c for c in checks if not c.passed]
    lines = [
        f"Ran {len(results)} runs: {materializations} materializations, {len(checks)} checks "
        f"({len(checks) - len(failed)} passed).",
        f"Sample days: {', '.join(SAMPLE_PARTITION_KEYS)}.",
        *(f"Meter file {o.path.name}: {'ok' if o.ok else 'FAILED'}, {o.message}" for o in meter_files),
        f"Data home: {home.root}; lake: {home.lake_dir}; raw downloads: {home.raw_dir}.",
        f"Report (opens offline in a browser): {report_path}",
        "Tables (database `energy`): energy_charts.*, buildings.*, meters.*, marts.* (see `energy-assets db url`).",
    ]
    for key, check_name, severity in sorted(
        {(c.asset_key.to_user_string(), c.check_name, c.severity.value) for c in failed}
    ):
        lines.append(f"  {severity.lower()}: check {key}:{check_name} did not pass")
    if any(c.check_name == "latest_partition_fresh" for c in failed):
        lines.append("  (the bundled sample ends in 2025, so its newest partition is not fresh: expected)")
    if not all(o.ok for o in meter_files):
        raise EnergyAssetsError(" ".join([*lines, "A sample meter file failed to load (see above)."]))
    lines.append(
        'Open the UI at http://127.0.0.1:3000 after: eval "$(.venv/bin/energy-assets dagster env)" &&'
        " .venv/bin/dagster dev -w workspace.yaml"
    )
    return "\n".join(lines)
