"""Ingesting one NEM12 file from the inbox into meters.meter_readings: the steps in order. No Dagster.

`ingest_file` is what a run of `meters_ingest_job` does for the file the sensor (or the CLI) named:

1-2. claim the file (`file_claims.claim_file`, shared with the file sources): content already finished is
   done, content committed by an earlier run is only moved, a gone or changed file is `FileGoneError`,
   otherwise one more attempt is recorded (`loading`);
3. parse the whole file; a malformed file goes to `quarantine/` with a JSON report naming line, record and
   reason (`FileQuarantinedError`);
4. pseudonymize NMIs when identifiers are protected (tokens kept in `meters.protected_nmis`);
5. publish through `publish` (audit, then lake and PostgreSQL in step, upserted into monthly partitions,
   superseded values kept in history; the ledger marks the content committed in the same transaction);
   a refused audit moves the file to `quarantine/` with the audit's reasons and re-raises the refusal;
6. only after the commit, move the file to `processed/` and record it `processed`.

A process killed anywhere leaves the file in the inbox; the next sensor tick asks for it again and, since
publishing identical content changes nothing, finishes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.errors import DataValidationError
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.sources.meters import aggregates, ledger
from energy_assets.sources.meters.errors import Nem12Error
from energy_assets.sources.meters.file_claims import claim_file
from energy_assets.sources.meters.identifiers import NmiProtector, protect_batch
from energy_assets.sources.meters.inbox import (
    InboxLayout,
    QuarantineReport,
    move_to_processed,
    quarantine,
)
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.rules import METER_READINGS_RULES
from energy_assets.sources.meters.tables import METER_READINGS
from energy_assets.warehouse.audit import AuditFailedError
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.merge import ensure_history_table
from energy_assets.warehouse.publish import Candidate, Publish, PublishRequest, PublishResult

HISTORY_VIEW_SQL = aggregates.load_sql("meter_readings_history")
NEM_OFFSET = timezone(timedelta(hours=10))


class FileQuarantinedError(DataValidationError):
    """The file was malformed and is now in `quarantine/` with its report."""


@dataclass
class IngestedFile:
    """What one run did with its file: published readings, or nothing (`status` says why)."""

    status: str  # "processed", or the earlier state of content that needed no publish
    readings: pa.Table | None = None
    request: PublishRequest | None = None
    result: PublishResult | None = None
    moved_to: Path | None = None


def month_partitions(readings: pa.Table) -> list[Candidate]:
    """Split readings by NEM month of `interval_end` (UTC+10, no DST): one candidate per month."""
    if readings.num_rows == 0:
        return []
    nem = pc.add(readings.column("interval_end"), pa.scalar(10 * 3600 * 1_000_000, pa.duration("us")))
    months = pc.strftime(pc.cast(nem, pa.timestamp("us")), format="%Y-%m")
    candidates = []
    for month in sorted(set(months.to_pylist())):
        rows = readings.filter(pc.equal(months, month))
        year, number = (int(part) for part in month.split("-"))
        start = datetime(year, number, 1, tzinfo=NEM_OFFSET)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=NEM_OFFSET)
        candidates.append(Candidate({"month": month}, {"interval_end": (start, end)}, rows))
    return candidates


def ingest_file(
    path: Path,
    sha256: str,
    *,
    settings: PostgresSettings,
    layout: InboxLayout,
    protector: NmiProtector | None,
    publish: Publish,
    log: Callable[[str], Any] = lambda message: None,
) -> IngestedFile:
    """Load one inbox file (the steps in the module docstring); the file's name is hidden when protected."""
    claim = claim_file(path, sha256, settings=settings, layout=layout, ledger=ledger, log=log)
    if claim.done is not None:
        return IngestedFile(claim.done, moved_to=claim.moved_to)
    size, attempt = claim.size, claim.attempt
    shown_name = "[protected]" if protector else path.name
    log(f"Loading {shown_name} (sha256 {sha256[:12]}, {size} bytes, attempt {attempt}).")
    try:
        readings = read_nem12_table(path, source_file=path.name, protect_nmi=protector is not None)
    except Nem12Error as error:
        report = QuarantineReport.from_error(shown_name, sha256, size, error)
        _quarantine(settings, layout, path, sha256, report, str(error))
        raise FileQuarantinedError(f"Quarantined: {error}") from error
    if protector is not None:
        readings = _protected(readings, protector, settings)
    rows = readings.num_rows
    request = PublishRequest(
        METER_READINGS,
        month_partitions(readings),
        rules=METER_READINGS_RULES,
        mode="upsert",
        keep_history=True,
        before_commit=lambda cur: ledger.mark_committed(cur, sha256, rows),
    )
    try:
        [result] = publish([request])
    except AuditFailedError as refused:
        reasons = "; ".join(outcome.summary(refused.report.table) for outcome in refused.report.failures)
        report = QuarantineReport.from_reason(shown_name, sha256, size, f"audit refused: {reasons}")
        _quarantine(settings, layout, path, sha256, report, reasons[:2000])
        raise
    with connect(settings) as conn, conn.cursor() as cur:
        ensure_history_table(cur, TableName(METER_READINGS.schema, METER_READINGS.name))
        cur.execute(HISTORY_VIEW_SQL)  # idempotent: the view over the history the merge keeps
        conn.commit()
    moved = move_to_processed(layout, path, sha256)
    with connect(settings) as conn:
        ledger.finish(conn, sha256, "processed", rows=rows, moved_to=str(moved))
    return IngestedFile("processed", readings, request, result, moved)


def _protected(readings: pa.Table, protector: NmiProtector, settings: PostgresSettings) -> pa.Table:
    """NMIs replaced by their pseudonyms; the encrypted originals stored in meters.protected_nmis."""
    batches: list[pa.RecordBatch] = []
    tokens: dict[str, str] = {}
    for batch in readings.to_batches():
        protected, batch_tokens = protect_batch(batch, protector)
        batches.append(protected)
        tokens |= batch_tokens
    with connect(settings) as conn:
        ledger.store_tokens(conn, tokens)
    return pa.Table.from_batches(batches, schema=readings.schema)


def _quarantine(
    settings: PostgresSettings,
    layout: InboxLayout,
    path: Path,
    sha: str,
    report: QuarantineReport,
    error: str,
) -> None:
    target, _ = quarantine(layout, path, report)
    with connect(settings) as conn:
        ledger.finish(conn, sha, "quarantined", error=error, moved_to=str(target))
