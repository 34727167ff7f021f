"""`energy-assets source ingest NAME FILE...`: the sensor's runs, started by hand for given files.

Keep parsing and publishing out of this module: each file goes through `<name>_ingest_job`, exactly as a
sensor run does (recorded in the Dagster instance, same audit, quarantine and processed moves). A file
outside the inbox is first moved into it (copied when it is on another filesystem), so every loaded file ends in
`processed/` or `quarantine/`. Symlinks and anything but a regular file are refused without being read
(`lstat` first); content already loaded is moved to `processed/` without a run.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from energy_assets.defs.file_source.assets import resource_key
from energy_assets.defs.file_source.resources import FileSourceResource
from energy_assets.defs.file_source.sensors import ingest_run_config, sha_tag
from energy_assets.defs.inbox import IngestOutcome, bring_into_inbox, failure_reason
from energy_assets.defs.resources import PostgresResource
from energy_assets.files import NotARegularFileError, check_regular_file
from energy_assets.postgres.connection import connect
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.ledger import FileLedger
from energy_assets.sources.meters.inbox import (
    FINISHED_STATUSES,
    move_to_processed,
    sha256_of_file,
)


def refuse_unsafe(path: Path) -> str | None:
    """Why `path` is not loaded (a symbolic link, folder, device, missing), or None; never opens it."""
    try:
        check_regular_file(path)
    except FileNotFoundError:
        return "no such file"
    except NotARegularFileError:
        kind = "a symbolic link" if path.is_symlink() else "not a regular file (a folder, device or pipe)"
        return f"{kind}; give the file itself (links are refused without being read)"
    return None


def ingest_files(
    defs: dg.Definitions, instance: dg.DagsterInstance, declaration: FileSourceDeclaration, paths: list[Path]
) -> list[IngestOutcome]:
    """Load each file through the source's ingest job; one outcome per file, in order."""
    resources = defs.resources or {}
    source: FileSourceResource = resources[resource_key(declaration)].process_config_and_initialize()
    postgres: PostgresResource = resources["postgres"].process_config_and_initialize()
    layout = source.layout()
    ledger = FileLedger(declaration.name)
    job = defs.resolve_job_def(f"{declaration.name}_ingest_job")
    ingest_op = next(node.name for node in job.graph.node_defs if node.name.endswith("__records"))
    outcomes = []
    for given in paths:
        refused = refuse_unsafe(given)
        if refused is not None:
            outcomes.append(IngestOutcome(given, False, f"FAILED: {refused}; nothing moved"))
            continue
        sha = sha256_of_file(given)
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
                if record.status == "processed":
                    message = f"ok, {record.rows} rows (inserted 0, updated 0, unchanged {record.rows}); same content as {record.file_name}"
                else:
                    message = f"FAILED: same content as {record.file_name}, {record.status}; moved to {moved}"
                outcomes.append(IngestOutcome(given, record.status == "processed", message))
                continue
        result = job.execute_in_process(
            run_config=ingest_run_config(ingest_op, str(path), sha)
            | {"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            instance=instance,
            tags={
                f"{declaration.name}/file": path.name,
                sha_tag(declaration.name): sha,
                f"{declaration.name}/started_by": "energy-assets source ingest",
            },
            raise_on_error=False,
        )
        with connect(postgres.settings()) as conn:
            record = ledger.lookup(conn, [sha]).get(sha)
            counts = ledger.counts(conn, sha)
        if result.success and record is not None and record.status == "processed":
            inserted, updated = counts or (0, 0)
            rows = record.rows or 0
            outcomes.append(
                IngestOutcome(
                    given,
                    True,
                    f"ok, {rows} rows (inserted {inserted}, updated {updated}, unchanged {max(rows - inserted - updated, 0)})",
                )
            )
        else:
            reason = record.error if record is not None and record.error else failure_reason(result)
            where = (
                f"moved to {record.moved_to}"
                if record is not None and record.moved_to
                else "left in the inbox"
            )
            outcomes.append(IngestOutcome(given, False, f"FAILED: {reason}; {where}"))
    return outcomes
