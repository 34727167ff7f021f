"""The inbox sensor: stable new NEM12 files -> one run each, keyed by content.

Keep file logic out of this module: listing, stability, hashing and moves live in
`energy_assets.sources.meters.inbox`, the durable record in `ledger`. The sensor's cursor only holds the
size and modification time of each inbox file from the previous tick (a file is stable when both are
unchanged between two ticks); which contents are done is read from `meters.ingested_files`, never from a
clock, so a file with an old modification time is still picked up. Each tick says why it skipped or what
it requested.
"""

import dagster as dg

from energy_assets.defs.meters.jobs import ingest_run_config, meters_ingest_job
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.resources import PostgresResource
from energy_assets.postgres.connection import connect
from energy_assets.sources.meters import ledger
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

SHA_TAG = "meters/sha256"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
ENDED_UNLOADED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _runs_of(instance: dg.DagsterInstance, sha256: str, statuses: list[dg.DagsterRunStatus]) -> int:
    return len(instance.get_run_ids(filters=dg.RunsFilter(tags={SHA_TAG: sha256}, statuses=statuses)))


def inbox_sensor(interval_seconds: int) -> dg.SensorDefinition:
    """`meters_inbox_sensor`, ticking every `interval_seconds` (a file is stable after two equal ticks)."""
    return dg.sensor(
        name="meters_inbox_sensor",
        job=meters_ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Watches the NEM12 inbox (ENERGY_ASSETS_INBOX): a file whose size and modification time did not change"
            " between two ticks is hashed; new content gets one run (run key nem12-<sha256>-<attempt>), content"
            " already loaded under another name is moved to processed/ without loading it again."
        ),
    )(check_inbox)


def check_inbox(
    context: dg.SensorEvaluationContext, meters: MetersResource, postgres: PostgresResource
) -> dg.SensorResult | dg.SkipReason:
    layout = meters.layout()
    current = list_candidates(layout.inbox)
    stable, state = stable_files(current, decode_observations(context.cursor))
    changing = len(current) - len(stable)
    files = identify(layout.inbox, stable)
    with connect(postgres.settings()) as conn:
        ledger.ensure_tables(conn)
        records = ledger.lookup(conn, [file.sha256 for file in files])
        to_load, known = split_new_and_known(files, {sha: record.status for sha, record in records.items()})
        duplicates = []
        for file in known:
            record = records.get(file.sha256)
            if record is not None and record.status in FINISHED_STATUSES:
                if record.status == "quarantined":  # the same bad bytes again: beside the first copy
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
        if _runs_of(context.instance, file.sha256, IN_FLIGHT):
            in_flight.append(file.name)  # its run is queued or running: never a second one
            continue
        # A new key for each try after one that ended without loading (failed, cancelled, or killed after
        # it counted an attempt); a finished content is never requested again.
        ended = _runs_of(context.instance, file.sha256, ENDED_UNLOADED)
        attempt = max(ended, records[file.sha256].attempts if file.sha256 in records else 0)
        requests.append(
            dg.RunRequest(
                run_key=f"{file.run_key}-{attempt}",
                run_config=ingest_run_config(str(file.path), file.sha256),
                tags={"meters/file": file.name, SHA_TAG: file.sha256},
            )
        )
    cursor = encode_observations(state)
    summary = (
        f"{len(current)} file(s) in {layout.inbox}: {len(requests)} to load, {len(in_flight)} being loaded,"
        f" {changing} not yet stable"
        f" (size or time changed since the last tick), {len(duplicates)} already loaded under another name"
        f" (moved to processed/: {', '.join(duplicates) or 'none'})."
    )
    context.log.info(summary)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
