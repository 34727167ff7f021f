"""A file source's inbox sensor and ingest job: stable new files -> one run each, keyed by content.

Keep file logic out of this module: listing, stability, hashing and moves are the NEM12 inbox's
(`energy_assets.sources.meters.inbox`), the durable record is the source's ledger
(`energy_assets.sources.files.ledger`). Semantics are the meters sensor's: a file is stable when its size
and modification time did not change between two ticks (the cursor), its identity is its sha256, content
already finished is moved without loading, and a run key names the content and the attempt.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from energy_assets.defs.file_source.assets import resource_key
from energy_assets.defs.resources import PostgresResource
from energy_assets.postgres.connection import connect
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.ledger import FileLedger
from energy_assets.sources.meters.inbox import (
    FINISHED_STATUSES,
    QuarantineReport,
    decode_observations,
    encode_observations,
    identify,
    list_candidates,
    move_to_processed,
    quarantine,
    split_new_and_known,
    stable_files,
)

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
ENDED_UNLOADED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


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
    name = declaration.name
    ledger = FileLedger(name)
    key = resource_key(declaration)

    def _runs(instance: dg.DagsterInstance, sha256: str, statuses: list[dg.DagsterRunStatus]) -> int:
        return len(
            instance.get_run_ids(filters=dg.RunsFilter(tags={sha_tag(name): sha256}, statuses=statuses))
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
        current = list_candidates(layout.inbox)
        stable, state = stable_files(current, decode_observations(context.cursor))
        changing = len(current) - len(stable)
        files = identify(layout.inbox, stable)
        with connect(postgres.settings()) as conn:
            ledger.ensure_tables(conn)
            records = ledger.lookup(conn, [file.sha256 for file in files])
            to_load, known = split_new_and_known(
                files, {sha: record.status for sha, record in records.items()}
            )
            duplicates = []
            for file in known:
                record = records.get(file.sha256)
                if record is not None and record.status in FINISHED_STATUSES:
                    if record.status == "quarantined":
                        quarantine(
                            layout,
                            file.path,
                            QuarantineReport.from_reason(
                                file.name,
                                file.sha256,
                                file.size,
                                f"same content as {record.file_name}: {record.error}",
                            ),
                        )
                    else:
                        move_to_processed(layout, file.path, file.sha256)
                    ledger.add_duplicate_name(conn, file.sha256, file.name)
                    duplicates.append(file.name)
            ledger.mark_seen(conn, [(file.sha256, file.name, file.size) for file in to_load])
        requests, in_flight = [], []
        for file in to_load:
            if _runs(context.instance, file.sha256, IN_FLIGHT):
                in_flight.append(file.name)
                continue
            ended = _runs(context.instance, file.sha256, ENDED_UNLOADED)
            attempt = max(ended, records[file.sha256].attempts if file.sha256 in records else 0)
            requests.append(
                dg.RunRequest(
                    run_key=f"{name}-{file.sha256}-{attempt}",
                    run_config=ingest_run_config(ingest_op, str(file.path), file.sha256),
                    tags={f"{name}/file": file.name, sha_tag(name): file.sha256},
                )
            )
        cursor = encode_observations(state)
        summary = (
            f"{len(current)} file(s) in {layout.inbox}: {len(requests)} to load, {len(in_flight)} being loaded,"
            f" {changing} not yet stable (size or time changed since the last tick), {len(duplicates)} already"
            f" loaded under another name (moved: {', '.join(duplicates) or 'none'})."
        )
        context.log.info(summary)
        if not requests:
            return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor
