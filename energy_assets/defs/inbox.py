"""One inbox tick, shared by every inbox sensor (the NEM12 inbox and each file source), and what the
`ingest` commands share when they start those runs by hand (`bring_into_inbox`, `failure_reason`).

Keep file logic out of this module: listing, stability, hashing and moves are `energy_assets.sources.meters
.inbox`; which contents are done is the source's durable ledger. A tick:

1. lists the inbox and keeps the files whose size and modification time did not change over the last
   ticks (two by default; the sensor's cursor holds them; never a clock, so an old modification time is
   still picked up);
2. hashes them; content the ledger has finished is moved aside without loading (to `processed/`, or beside
   its first copy in `quarantine/`), under its new name too;
3. asks for one run per new content, keyed by content and attempt: never a second run while one is queued
   or running, a new key after a run that ended without loading, never again once finished.

Each tick says why it skipped or what it requested.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import psycopg

from energy_assets.files import open_regular_file
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.sources.meters.inbox import (
    FINISHED_STATUSES,
    InboxLayout,
    QuarantineReport,
    decode_observations,
    encode_observations,
    identify,
    list_candidates,
    move_to_processed,
    move_without_overwrite,
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


class Ledger(Protocol):
    """What a tick reads and writes of a source's durable file record."""

    def ensure_tables(self, conn: psycopg.Connection) -> None: ...

    def lookup(self, conn: psycopg.Connection, shas: Sequence[str]) -> Mapping[str, Any]: ...

    def mark_seen(self, conn: psycopg.Connection, files: Iterable[tuple[str, str, int]]) -> None: ...

    def add_duplicate_name(self, conn: psycopg.Connection, sha: str, name: str) -> None: ...


@dataclass(frozen=True)
class InboxRuns:
    """How one source names its runs: the run key's prefix, the file and content tags, the run config."""

    run_key_prefix: str
    file_tag: str
    sha_tag: str
    run_config: Callable[[str, str], dict[str, Any]]


def inbox_tick(
    context: dg.SensorEvaluationContext,
    layout: InboxLayout,
    settings: PostgresSettings,
    ledger: Ledger,
    runs: InboxRuns,
    stable_ticks: int = 2,
) -> dg.SensorResult:
    """One tick over `layout.inbox` (the steps in the module docstring); a file is stable once
    `stable_ticks` ticks in a row saw the same size and time."""
    current = list_candidates(layout.inbox)
    stable, state = stable_files(current, decode_observations(context.cursor), stable_ticks)
    changing = len(current) - len(stable)
    files = identify(layout.inbox, stable)
    with connect(settings) as conn:
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

    def runs_of(sha256: str, statuses: list[dg.DagsterRunStatus]) -> int:
        return len(
            context.instance.get_run_ids(
                filters=dg.RunsFilter(tags={runs.sha_tag: sha256}, statuses=statuses)
            )
        )

    requests, in_flight = [], []
    for file in to_load:
        if runs_of(file.sha256, IN_FLIGHT):
            in_flight.append(file.name)  # its run is queued or running: never a second one
            continue
        # A new key for each try after one that ended without loading (failed, cancelled, or killed after
        # it counted an attempt); a finished content is never requested again.
        ended = runs_of(file.sha256, ENDED_UNLOADED)
        attempt = max(ended, records[file.sha256].attempts if file.sha256 in records else 0)
        requests.append(
            dg.RunRequest(
                run_key=f"{runs.run_key_prefix}-{file.sha256}-{attempt}",
                run_config=runs.run_config(str(file.path), file.sha256),
                tags={runs.file_tag: file.name, runs.sha_tag: file.sha256},
            )
        )
    cursor = encode_observations(state)
    summary = (
        f"{len(current)} file(s) in {layout.inbox}: {len(requests)} to load, {len(in_flight)} being loaded,"
        f" {changing} not yet stable (new, or size or time changed, within the last {stable_ticks} ticks),"
        f" {len(duplicates)} already"
        f" loaded under another name (moved to processed/: {', '.join(duplicates) or 'none'})."
    )
    context.log.info(summary)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


@dataclass(frozen=True)
class IngestOutcome:
    """What an `ingest` command did with one given file: loaded or not, and one line saying so."""

    path: Path
    ok: bool
    message: str


def bring_into_inbox(path: Path, inbox: Path, sha: str) -> Path:
    """A file given on the command line, moved into the inbox (never over an inbox file); from another
    filesystem it is copied under a hidden name first, so a sensor never takes half a file, and the
    original stays where it was. Links and non-regular files are refused unread (`open_regular_file`)."""
    try:
        return move_without_overwrite(path, inbox, sha)
    except OSError:
        inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
        hidden = inbox / f".{sha[:12]}.copying"
        with open_regular_file(path) as source, open(hidden, "xb") as copy:
            shutil.copyfileobj(source, copy)
        shutil.copystat(path, hidden, follow_symlinks=False)
        taken = (inbox / path.name).exists() or (inbox / path.name).is_symlink()
        target = inbox / (f"{sha[:12]}_{path.name}" if taken else path.name)
        os.rename(hidden, target)
        return target


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The first line of the first step failure of a run, for a one-line outcome."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None and event.step_failure_data.error:
            return event.step_failure_data.error.message.strip().splitlines()[0]
    return "the run failed; see the run in the Dagster UI"
