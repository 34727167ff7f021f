"""`energy-assets meters ingest PATH...`: the sensor's runs, started by hand for given files.

Keep parsing and publishing out of this module: each file goes through `meters_ingest_job`, exactly as a
sensor run does (recorded in the Dagster instance, same audit, same quarantine and processed moves). A file
outside the inbox is first moved into it (never overwriting), so every file ends in `processed/` or
`quarantine/`. A file whose content was already loaded is moved to `processed/` without a run. A symbolic
link, fifo or folder is refused where it is, unread and unmoved; so is everything when a file-limit setting
(`energy_assets.archive_limits`) is malformed.
"""

from pathlib import Path

import dagster as dg

from energy_assets.archive_limits import FileLimits
from energy_assets.defs.inbox import IngestOutcome, bring_into_inbox, failure_reason
from energy_assets.defs.meters.jobs import ingest_run_config, meters_ingest_job
from energy_assets.defs.meters.resources import MetersResource
from energy_assets.defs.resources import PostgresResource
from energy_assets.files import NotARegularFileError
from energy_assets.postgres.connection import connect
from energy_assets.sources.meters import ledger
from energy_assets.sources.meters.inbox import (
    FINISHED_STATUSES,
    move_to_processed,
    sha256_of_file,
)


def ingest_files(
    defs: dg.Definitions, instance: dg.DagsterInstance, paths: list[Path]
) -> list[IngestOutcome]:
    """Load each file through the ingest job; one outcome per file, in order.

    A malformed file-limit setting raises `ConfigurationError` before any file is touched.
    """
    FileLimits.from_env()
    # Resolved as a run resolves them (EnvVar values read now, never printed).
    resources = defs.resources or {}
    meters: MetersResource = resources["meters"].process_config_and_initialize()
    postgres: PostgresResource = resources["postgres"].process_config_and_initialize()
    layout = meters.layout()
    job = defs.resolve_job_def(meters_ingest_job.name)
    outcomes = []
    for given in paths:
        try:
            sha = sha256_of_file(given)  # lstat first: a link or fifo is refused without being opened
        except FileNotFoundError:
            outcomes.append(
                IngestOutcome(given, False, f"{given}: no such file; give the path of a NEM12 file.")
            )
            continue
        except NotARegularFileError as refused:
            outcomes.append(IngestOutcome(given, False, f"{refused} It was left where it is."))
            continue
        path = (
            given
            if given.resolve().parent == layout.inbox.resolve()
            else bring_into_inbox(given, layout.inbox, sha)
        )
        with connect(postgres.settings()) as conn:
            ledger.ensure_tables(conn)
            record = ledger.lookup(conn, [sha]).get(sha)
            if record is not None and record.status in FINISHED_STATUSES:
                moved = move_to_processed(layout, path, sha)
                ledger.add_duplicate_name(conn, sha, path.name)
                outcomes.append(
                    IngestOutcome(
                        given,
                        record.status == "processed",
                        f"already {record.status} (same content as {record.file_name}); moved to {moved}",
                    )
                )
                continue
        result = job.execute_in_process(
            # Step events stay in the run history (UI); the terminal shows INFO and above.
            run_config=ingest_run_config(str(path), sha)
            | {"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            instance=instance,
            tags={
                "meters/file": path.name,
                "meters/sha256": sha,
                "meters/started_by": "energy-assets meters ingest",
            },
            raise_on_error=False,
        )
        with connect(postgres.settings()) as conn:
            record = ledger.lookup(conn, [sha]).get(sha)
        if result.success and record is not None and record.status == "processed":
            outcomes.append(IngestOutcome(given, True, f"{record.rows} rows; moved to {record.moved_to}"))
        else:
            reason = record.error if record is not None and record.error else failure_reason(result)
            where = (
                f"; moved to {record.moved_to}"
                if record is not None and record.moved_to
                else "; left in the inbox"
            )
            outcomes.append(IngestOutcome(given, False, f"{reason}{where}"))
    return outcomes
