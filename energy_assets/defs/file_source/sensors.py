"""A file source's inbox sensor and ingest job: stable new files -> one run each, keyed by content.

Keep file logic out of this module: the tick is `energy_assets.defs.inbox.inbox_tick` (shared with the NEM12
inbox), the durable record is the source's ledger (`energy_assets.sources.files.ledger`). Semantics: a file is stable when its size
and modification time did not change between two ticks (the cursor), its identity is its sha256, content
already finished is moved without loading, and a run key names the content and the attempt.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from energy_assets.defs.file_source.assets import resource_key
from energy_assets.defs.inbox import InboxRuns, inbox_tick
from energy_assets.defs.resources import PostgresResource
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.ledger import FileLedger


def sha_tag(name: str) -> str:
    return f"{name}/sha256"


def ingest_run_config(ingest_op: str, path: str, sha256: str) -> dict[str, Any]:
    """The run config of `<name>_ingest_job` for one file (the sensor and the CLI use the same)."""
    return {"ops": {ingest_op: {"config": {"path": path, "sha256": sha256}}}}


def ingest_job(
    declaration: FileSourceDeclaration, assets: list[dg.AssetsDefinition]
) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=f"{declaration.name}_ingest_job",
        selection=dg.AssetSelection.assets(*assets),
        description=f"Load one {declaration.name} file (run config: path and sha256) into {declaration.name}.records, then its marts.",
    )


def inbox_sensor(
    declaration: FileSourceDeclaration, job: dg.UnresolvedAssetJobDefinition, ingest_op: str
) -> dg.SensorDefinition:
    """`<name>_inbox_sensor`: the shared inbox tick over the source's inbox, with its ledger and run names."""
    name = declaration.name
    ledger = FileLedger(name)
    key = resource_key(declaration)
    runs = InboxRuns(
        run_key_prefix=name,
        file_tag=f"{name}/file",
        sha_tag=sha_tag(name),
        run_config=lambda path, sha256: ingest_run_config(ingest_op, path, sha256),
    )

    @dg.sensor(
        name=f"{name}_inbox_sensor",
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={key, "postgres"},
        description=(
            f"Watches the {name} inbox: a file whose size and modification time did not change between two ticks is"
            f" hashed; new content gets one run (run key {name}-<sha256>-<attempt>), content already loaded under"
            " another name is moved to processed/ without loading it again."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        layout = getattr(context.resources, key).layout()
        postgres: PostgresResource = context.resources.postgres
        return inbox_tick(context, layout, postgres.settings(), ledger, runs)

    return _sensor
