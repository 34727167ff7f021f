"""Ingesting one file of a declared file source into `<source>.records`: the steps in order. No Dagster.

`ingest_file` is what a run of `<source>_ingest_job` does for the file the sensor (or the CLI) named; the
steps are those of the NEM12 inbox (`sources.meters.ingest`), with the source's own ledger:

1. look the content up in the ledger: finished content whose file is gone is done; content committed by
   an earlier run that died before moving the file is only moved;
2. check that the file is still there with the content the sensor saw, and record an attempt (`loading`);
3. read the whole file as declared (streamed; sensitive columns pseudonymized batch by batch, so clear
   values are never kept); a value that does not read moves the file to `quarantine/` with a JSON report
   naming file, line and column (`FileQuarantinedError`), nothing published;
4. publish through `publish`: the audit runs the declaration's rules, then the rows are upserted on the
   natural key into the table's partitions (month of the time column, or one partition), superseded values
   kept in `<source>.records__history`; the encrypted tokens of new pseudonyms and the ledger's `committed`
   mark are written in the same transaction. A refused audit quarantines the file too: only then are the
   file's rows checked again on their own, so the report names the lines and columns that broke a rule;
5. only after the commit, move the file to `processed/` and record it `processed`.

Re-ingesting the same content changes nothing: its partitions' content hashes equal their publish records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.errors import ConfigurationError, DataValidationError
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.errors import FileFormatError
from energy_assets.sources.files.ledger import FileLedger
from energy_assets.sources.files.reader import DeclaredCsv
from energy_assets.sources.files.rules import declared_rules, file_problems
from energy_assets.sources.meters.file_claims import claim_file
from energy_assets.sources.meters.identifiers import NmiProtector
from energy_assets.sources.meters.inbox import (
    InboxLayout,
    QuarantineReport,
    move_to_processed,
    quarantine,
)
from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY
from energy_assets.warehouse.audit import AuditFailedError
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.lake_sql import partition_label
from energy_assets.warehouse.merge import ensure_history_table
from energy_assets.warehouse.publish import Candidate, Publish, PublishRequest, PublishResult

NO_PARTITION = {"part": "all"}
PREVIEW_ROWS = 12


class FileQuarantinedError(DataValidationError):
    """The file broke its declaration and is now in `quarantine/` with its report."""


@dataclass(frozen=True)
class SourceInbox(InboxLayout):
    """A file source's inbox, with `processed/` and `quarantine/` inside it (the inbox folders of several
    sources sit side by side under `<data home>/inbox/`; files in sub-folders are never candidates)."""

    @property
    def processed(self) -> Path:
        return self.inbox / "processed"

    @property
    def quarantine(self) -> Path:
        return self.inbox / "quarantine"


@dataclass
class IngestedFile:
    """What one run did with its file: published rows, or nothing (`status` says why)."""

    status: str
    rows: int = 0
    preview: pa.Table | None = None  # rows spread evenly over the file, for the UI (the file is not kept)
    request: PublishRequest | None = None
    result: PublishResult | None = None
    moved_to: Path | None = None
    discarded_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(inserted, updated, unchanged) rows of the file."""
        rows = self.rows
        load = self.result.load if self.result is not None else None
        inserted, updated = (load.inserted, load.updated) if load is not None else (0, 0)
        return inserted, updated, max(rows - inserted - updated, 0)


def require_protector(declaration: FileSourceDeclaration, protector: NmiProtector | None) -> None:
    if declaration.sensitive_columns and protector is None:
        raise ConfigurationError(
            f"source {declaration.name}: columns {', '.join(declaration.sensitive_columns)} are sensitive but the keys"
            f" are missing: set {ENV_NMI_HMAC_KEY} and {ENV_NMI_FERNET_KEYS} (generate them with `energy-assets meters keys`)."
        )


class PartitionSplit:
    """Rows routed to their lake partition as the reader's batches arrive (the file is never held whole twice):
    one partition per month of the time column in the declared zone, or one for the whole file."""

    def __init__(self, declaration: FileSourceDeclaration) -> None:
        self.declaration = declaration
        self.zone = ZoneInfo(declaration.timezone or "UTC")
        self.buckets: dict[str, list[pa.RecordBatch]] = {}
        self.bounds: dict[str, tuple[Any, Any]] = {}
        self.rows = 0
        self.untimed: list[int] = []  # first rows (0-based) without a time: they have no partition

    def add(self, batch: pa.RecordBatch) -> None:
        first_row, self.rows = self.rows, self.rows + batch.num_rows
        column = self.declaration.time_column
        if self.declaration.partition == "none" or column is None:
            self.buckets.setdefault(partition_label(NO_PARTITION), []).append(batch)
            return
        times = batch.column(column)
        is_date = pa.types.is_date(times.type)
        values = pc.fill_null(pc.cast(times, pa.int32() if is_date else pa.int64()), 0).to_numpy(
            zero_copy_only=False
        )
        present = ~pc.is_null(times).to_numpy(zero_copy_only=False)
        if not present.all():
            self.untimed += [first_row + int(i) for i in np.flatnonzero(~present)[:5]]
        if not present.any():
            return
        # Month boundaries (local midnight on the 1st) as the column's own numbers: one sorted search per row.
        low, high = (
            _as_datetime(v, is_date, self.zone) for v in (values[present].min(), values[present].max())
        )
        months = _months(low.year, low.month, high.year, high.month)
        edges = np.array([_as_number(first, is_date, self.zone) for first in months], dtype=np.int64)
        slot = np.searchsorted(edges, values, side="right") - 1
        for index, first in enumerate(months[:-1]):
            mask = present & (slot == index)
            if not mask.any():
                continue
            label = f"{first:%Y-%m}"
            after = months[index + 1]
            self.bounds[label] = (
                (first, after) if is_date else (_local(first, self.zone), _local(after, self.zone))
            )
            self.buckets.setdefault(label, []).append(batch.filter(pa.array(mask)))

    def candidates(self, schema: pa.Schema) -> list[Candidate]:
        if self.declaration.partition == "none" or self.declaration.time_column is None:
            batches = self.buckets.get(partition_label(NO_PARTITION), [])
            return [Candidate(dict(NO_PARTITION), {}, _table(batches, schema))] if self.rows else []
        column = self.declaration.time_column
        return [
            Candidate(
                {"month": label},
                {column: self.bounds[label]},
                _table(self.buckets[label], schema),
            )
            for label in sorted(self.buckets)
        ]


def _table(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches(batches) if batches else schema.empty_table()


def _months(year: int, month: int, last_year: int, last_month: int) -> list[date]:
    """The first days of each month from (year, month) to one after (last_year, last_month)."""
    out = []
    while (year, month) <= (last_year, last_month):
        out.append(date(year, month, 1))
        year, month = year + month // 12, month % 12 + 1
    return [*out, date(year, month, 1)]


def _local(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _as_datetime(value: int, is_date: bool, zone: ZoneInfo) -> date:
    if is_date:
        return date(1970, 1, 1) + timedelta(days=int(value))
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))).astimezone(zone).date()


def _as_number(day: date, is_date: bool, zone: ZoneInfo) -> int:
    if is_date:
        return (day - date(1970, 1, 1)).days
    return (_local(day, zone) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def ingest_file(
    path: Path,
    sha256: str,
    *,
    declaration: FileSourceDeclaration,
    settings: PostgresSettings,
    layout: InboxLayout,
    protector: NmiProtector | None,
    publish: Publish,
    log: Callable[[str], Any] = lambda message: None,
) -> IngestedFile:
    """Load one inbox file (the steps in the module docstring)."""
    require_protector(declaration, protector)
    ledger = FileLedger(declaration.name)
    claim = claim_file(path, sha256, settings=settings, layout=layout, ledger=ledger, log=log)
    if claim.done is not None:
        return IngestedFile(claim.done, moved_to=claim.moved_to)
    size, attempt = claim.size, claim.attempt
    log(f"Loading {path.name} (sha256 {sha256[:12]}, {size} bytes, attempt {attempt}).")
    tokens: dict[str, tuple[str, str]] = {}
    # Per sensitive column, the clear values met so far and their pseudonyms (this run only, in memory):
    # each value is hashed and encrypted once, each batch is mapped by one hash lookup.
    known: dict[str, tuple[pa.Array, pa.Array]] = {
        column: (pa.array([], pa.string()), pa.array([], pa.string()))
        for column in declaration.sensitive_columns
    }

    def pseudonymize(batch: pa.RecordBatch) -> pa.RecordBatch:
        assert protector is not None
        for column in declaration.sensitive_columns:
            index = batch.schema.get_field_index(column)
            values = batch.column(index)
            clear, pseudonyms = known[column]
            found = pc.index_in(values, value_set=clear)
            new = pc.unique(values.filter(pc.and_(pc.is_null(found), pc.is_valid(values)))).to_pylist()
            if new:
                made = [protector.pseudonym(value) for value in new]
                for value, pseudonym in zip(new, made, strict=True):
                    tokens.setdefault(pseudonym, (column, protector.encrypt(value)))
                clear = pa.concat_arrays([clear, pa.array(new, pa.string())])
                pseudonyms = pa.concat_arrays([pseudonyms, pa.array(made, pa.string())])
                known[column] = (clear, pseudonyms)
                found = pc.index_in(values, value_set=clear)
            batch = batch.set_column(index, batch.schema.field(index), pseudonyms.take(found))
        return batch

    split = PartitionSplit(declaration)
    hook = pseudonymize if declaration.sensitive_columns else None
    try:
        reader = DeclaredCsv(path, declaration, label=path.name)
        for batch in reader.batches(hook):
            split.add(batch)
        if split.untimed:
            lines = reader.lines_of(split.untimed)
            raise FileFormatError(
                path.name,
                [
                    {
                        "line": lines[row],
                        "column": declaration.time_column,
                        "reason": "no time: the row has no month partition",
                    }
                    for row in split.untimed
                ],
            )
    except FileFormatError as error:
        report = QuarantineReport(path.name, sha256, size, tuple(error.to_report()), datetime.now(UTC))
        target = _quarantine(ledger, settings, layout, path, sha256, report, str(error)[:2000])
        raise FileQuarantinedError(f"Quarantined: {error}; moved to {target}") from error
    spec = declaration.table_spec()
    candidates = split.candidates(spec.arrow_schema)
    rows, discarded, missing = split.rows, reader.discarded, reader.missing
    del split
    if discarded:
        log(f"Discarded undeclared column(s) {', '.join(discarded)} (contract: discard).")
    preview = _preview(candidates, rows)

    def bookkeeping(cur: Any) -> None:
        ledger.store_tokens(cur, tokens)
        ledger.mark_committed(cur, sha256, rows)

    request = PublishRequest(
        spec,
        candidates,
        rules=declared_rules(declaration),
        mode="upsert",
        keep_history=True,
        before_commit=bookkeeping,
    )
    try:
        [result] = publish([request])
    except AuditFailedError as refused:
        # Only now are the file's own rows checked again, to name the lines and columns that broke a rule.
        reader = DeclaredCsv(path, declaration, label=path.name)
        problems = file_problems(
            reader.read(hook).table,
            declaration,
            reader.lines_of,
        )
        reasons = "; ".join(outcome.summary(refused.report.table) for outcome in refused.report.failures)
        if problems:
            located = FileFormatError(path.name, problems)
            report = QuarantineReport(path.name, sha256, size, tuple(located.to_report()), datetime.now(UTC))
            reasons = str(located)
        else:  # a rule over the partition as published (not the file alone)
            report = QuarantineReport.from_reason(path.name, sha256, size, f"audit refused: {reasons}")
        _quarantine(ledger, settings, layout, path, sha256, report, reasons[:2000])
        raise
    with connect(settings) as conn, conn.cursor() as cur:
        ensure_history_table(cur, TableName(spec.schema, spec.name))  # superseded values land here
        conn.commit()
    ingested = IngestedFile("processed", rows, preview, request, result, None, discarded, missing)
    inserted, updated, _ = ingested.counts
    moved = move_to_processed(layout, path, sha256)
    ingested.moved_to = moved
    with connect(settings) as conn:
        ledger.finish(
            conn, sha256, "processed", rows=rows, moved_to=str(moved), inserted=inserted, updated=updated
        )
    return ingested


def _preview(candidates: list[Candidate], rows: int) -> pa.Table | None:
    """Rows spread evenly over the file's partitions, for the UI."""
    tables = [c.data for c in candidates if isinstance(c.data, pa.Table)]
    if not tables:
        return None
    every = pa.concat_tables(tables)
    return (
        every
        if rows <= PREVIEW_ROWS
        else every.take([int(i * rows / PREVIEW_ROWS) for i in range(PREVIEW_ROWS)])
    )


def _quarantine(
    ledger: FileLedger,
    settings: PostgresSettings,
    layout: InboxLayout,
    path: Path,
    sha: str,
    report: QuarantineReport,
    error: str,
) -> Path:
    target, _ = quarantine(layout, path, report)
    with connect(settings) as conn:
        ledger.finish(conn, sha, "quarantined", error=error, moved_to=str(target))
    return target
