"""The publish path: candidate partitions -> audit -> lake and PostgreSQL in step. No Dagster here.

Every table of every source is published through `Publisher.publish`, per run and for all the run's
partitions at once (a one-year backfill is one audit, one merge, one records write):

1. **Lock** the table's partitions in the run (PostgreSQL session advisory locks, one statement, in
   key order): two runs over one partition queue instead of interleaving.
2. **Recover** what an interrupted publish left: a staged file whose load committed (its load id is
   the partition's publish record) is moved into place; any other staged or temporary file is removed.
3. **Stage** each candidate partition as a hidden Parquet file beside the published one (sorted by
   key, so identical content gives identical bytes and the same sha256), without an fsync per file:
   one `syncfs` makes the whole batch durable before the commit names it.
4. **Audit** the staged candidate with DuckDB: the table's own rules (`audit.spec_rules`), the
   source's rules, and "no partition shrinks" (unless `allow_shrink`): no fewer rows or series than
   the publish record, and no published value replaced by a missing one (per series and value column,
   no fewer non-NULL values than the published version: the lake file, read only for partitions whose
   content changed, or PostgreSQL's rows where the lake file is not the recorded version).
   A refusal moves the candidate and a JSON report under `rejected/` and publishes nothing.
5. **Commit** the changed partitions' rows to PostgreSQL (`WarehouseLoader.merge`; with `replace`
   the partitions are the whole truth for their scopes) together with one publish record per partition
   (`energy_meta.published_partitions`: content hash, rows, series, load id), in one transaction.
6. **Move** the staged files (and raw documents) into place. A kill before 5 leaves the old version
   everywhere; a kill after 5 leaves staged files that step 2 of the next run moves into place.

Partitions whose content hash equals their publish record (and whose lake file is intact) are
`unchanged`: nothing is written for them. `lake_comparison.compare_lake_with_postgres` checks content,
not counts.

The lake may be on object storage (the store's `pyarrow.fs.S3FileSystem`): staged files are hidden objects
read back by pyarrow for the audit, and step 6 is a copy and a delete per partition instead of a rename,
so it is not atomic as a step; the publish record still makes the lake and PostgreSQL converge, since step 2
of the next run promotes a committed staged object again. Raw documents and refused candidates
(`rejected_root`) stay on local disk.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from energy_assets.errors import DataValidationError
from energy_assets.files import sync_filesystem, write_atomic, write_replace
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.warehouse.audit import (
    PARTITION_COLUMN,
    AuditFailedError,
    AuditReport,
    AuditRule,
    quote,
    run_audit,
    spec_rules,
)
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.lake_comparison import cast_partition_columns
from energy_assets.warehouse.lake_sql import partition_files_sql, partition_label, sql_text
from energy_assets.warehouse.loader import LoadResult, WarehouseLoader
from energy_assets.warehouse.meta import META_SCHEMA, ensure_meta_tables, published_partitions_table
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.schema_inference import InferredSchema, infer_arrow
from energy_assets.warehouse.scopes import Scope, coalesce_scopes, scope_condition
from energy_assets.warehouse.table_spec import TableSpec
from energy_assets.warehouse.timing import StepTimes

SHRINK_RULE = "no_shrinking_partition"
# Audit relations: the candidate's and the published version's non-NULL counts per partition and series.
CANDIDATE_SERIES = "candidate_series"
PUBLISHED_SERIES = "published_series"
SERIES_ROWS = "__series_rows"
STAGING_THREADS = 2
Mode = Literal["replace", "upsert"]


@dataclass(frozen=True)
class Candidate:
    """One lake partition's next version, and the PostgreSQL rows it is the truth for.

    `data` is an Arrow table with the spec's columns, or a Parquet file of them (streamed into the
    lake, for large partitions). `raw_files` are raw documents published with the partition (written
    only after the audit passed and the rows committed).
    """

    partition: Mapping[str, str]
    scope: Scope
    data: pa.Table | Path
    raw_files: Mapping[Path, bytes] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return partition_label(self.partition)


@dataclass(frozen=True)
class PublishRequest:
    """One table's candidates and how to audit and load them."""

    spec: TableSpec
    candidates: Sequence[Candidate]
    rules: Sequence[AuditRule] = ()
    relations: Mapping[str, Any] | None = None
    allow_shrink: bool = False
    keep_history: bool = False
    mode: Mode = "replace"
    # Extra bookkeeping written in the publish transaction (commits or rolls back with the rows).
    before_commit: Callable[[psycopg.Cursor], None] | None = None


@dataclass
class PartitionOutcome:
    label: str
    rows: int
    series: int
    status: str  # "new", "changed", "unchanged"
    content_sha256: str


@dataclass
class PublishResult:
    """What one publish did, for the asset's metadata and checks."""

    spec: TableSpec
    audit: AuditReport
    partitions: list[PartitionOutcome]
    load: LoadResult | None
    lake_path: str
    schema: InferredSchema
    repaired: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    load_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def rows(self) -> int:
        return sum(outcome.rows for outcome in self.partitions)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.partitions if outcome.status == status)


@dataclass
class _Prepared:
    """A request that is locked, recovered, staged and audited, waiting to commit."""

    request: PublishRequest
    tag: str
    records: Mapping[str, Mapping[str, Any]]
    repaired: list[str]
    staged: dict[str, str] = field(default_factory=dict)
    report: AuditReport | None = None
    outcomes: list[PartitionOutcome] = field(default_factory=list)
    # Once a commit was attempted, its staged files belong to recovery: the commit may have succeeded
    # even if the client saw an error, and the next run promotes or drops them by the publish record.
    commit_attempted: bool = False

    @property
    def audit(self) -> AuditReport:
        assert self.report is not None, "audited in _prepare"
        return self.report


@dataclass
class _PublishedSources:
    """Where the shrink rule reads the published values: lake files, or PostgreSQL for partitions whose
    lake file is not the version their publish record names."""

    files: list[tuple[Mapping[str, str], str]] = field(default_factory=list)
    in_postgres: list[Candidate] = field(default_factory=list)


@contextmanager
def exclusive(settings: PostgresSettings, name: str) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock named `name` (released when the session ends, also on a kill).

    For work whose inputs must not change between reading and publishing, such as a mart computed from the
    lake: two runs of it queue, so an older computation never overwrites a newer one.
    """
    conn = connect(settings, autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (f"exclusive:{name}",))
        yield
    finally:
        conn.close()


class Publisher:
    """Publishes candidate partitions of one table at a time; see the module docstring."""

    def __init__(self, settings: PostgresSettings, store: ParquetStore, rejected_root: Path) -> None:
        self.settings = settings
        self.store = store
        self.rejected_root = Path(rejected_root)
        self.records_table = published_partitions_table(META_SCHEMA)

    def publish(
        self,
        spec: TableSpec,
        candidates: Sequence[Candidate],
        *,
        rules: Sequence[AuditRule] = (),
        relations: Mapping[str, Any] | None = None,
        allow_shrink: bool = False,
        keep_history: bool = False,
        mode: Mode = "replace",
    ) -> PublishResult:
        """Audit the candidates, then publish the changed partitions to PostgreSQL and the lake."""
        request = PublishRequest(spec, candidates, rules, relations, allow_shrink, keep_history, mode)
        return self.publish_all([request])[0]

    def publish_all(self, requests: Sequence[PublishRequest]) -> list[PublishResult]:
        """Audit every table's candidates first; publish them (table by table) only if all passed.

        Tables fed by one raw response (public power and its share series) go through one call, so a
        refused share series keeps the power series, the raw files and the lake unchanged too.
        """
        timings = StepTimes()
        load_id = uuid.uuid4()
        for request in requests:
            labels = [candidate.label for candidate in request.candidates]
            if len(set(labels)) != len(labels):
                raise ValueError(f"{request.spec.qualified_name}: a partition appears twice: {labels}")
        with timings.step("lock"):
            lock = connect(self.settings)
        prepared: list[_Prepared] = []
        try:
            with timings.step("lock"):
                ensure_meta_tables(lock)
                self._lock(lock, requests)
            try:
                for request in requests:
                    prepared.append(self._prepare(lock, request, str(load_id), timings))
                failed = [item for item in prepared if not item.audit.passed]
                if failed:
                    rejected = [self._reject(item) for item in failed]
                    raise AuditFailedError([item.audit for item in failed], rejected)
                return [self._finish(item, load_id, timings) for item in prepared]
            finally:
                for item in prepared:
                    if item.commit_attempted:
                        continue
                    for candidate in item.request.candidates:
                        self.store.discard_staged(
                            item.request.spec.qualified_name, candidate.partition, item.tag
                        )
        finally:
            lock.close()  # ends the session: its advisory locks go with it

    def _prepare(
        self, lock: psycopg.Connection, request: PublishRequest, tag: str, timings: StepTimes
    ) -> _Prepared:
        spec, candidates = request.spec, request.candidates
        with timings.step("recover"):
            records = self._records(lock, spec, [candidate.label for candidate in candidates])
            repaired = self._recover(spec, candidates, records)
        item = _Prepared(request, tag, records, repaired)
        with timings.step("stage"):
            if candidates:
                self.store.check_layout(spec.qualified_name, candidates[0].partition)
            if request.mode == "upsert":
                self._require_lake_in_step(spec, candidates, records)
            try:
                # Parquet encoding releases the GIL: two writers keep both cores busy on a year of partitions.
                with ThreadPoolExecutor(
                    max_workers=STAGING_THREADS, thread_name_prefix="publish-stage"
                ) as pool:
                    paths = pool.map(lambda c: self._stage(spec, c, tag, request.mode), candidates)
                    item.staged.update(zip([c.label for c in candidates], paths, strict=True))
            except BaseException:
                for candidate in candidates:  # this request never reached the caller's clean-up
                    self.store.discard_staged(spec.qualified_name, candidate.partition, tag)
                raise
            # One flush for every staged file: they must be on disk before the commit names them.
            self.store.sync()
            digests = {c.label: self.store.file_sha256(item.staged[c.label]) for c in candidates}
        with timings.step("audit"):
            guard = not request.allow_shrink and request.mode == "replace"
            item.report, counts = self._audit(
                spec,
                candidates,
                item.staged,
                records,
                request.rules,
                request.relations,
                self._published_sources(spec, candidates, records, digests) if guard else None,
            )
        for candidate in candidates:
            digest = digests[candidate.label]
            rows, series = counts.get(candidate.label, (0, 0))
            record = records.get(candidate.label)
            if record is None:
                status = "new"
            elif record["content_sha256"] == digest and self._lake_matches(spec, candidate, digest):
                status = "unchanged"
            else:
                status = "changed"
            item.outcomes.append(PartitionOutcome(candidate.label, rows, series, status, digest))
        return item

    def _finish(self, item: _Prepared, load_id: uuid.UUID, timings: StepTimes) -> PublishResult:
        """Commit the changed partitions with their records, then move the staged files into place."""
        request, dataset = item.request, item.request.spec.qualified_name
        pairs = list(zip(request.candidates, item.outcomes, strict=True))
        changed = [(candidate, outcome) for candidate, outcome in pairs if outcome.status != "unchanged"]
        load = None
        if changed:
            item.commit_attempted = True
            load = self._commit(request, changed, load_id, timings)
        with timings.step("move"):
            raw_written = []
            for candidate, outcome in pairs:
                if outcome.status == "unchanged":
                    self.store.discard_staged(dataset, candidate.partition, item.tag)
                else:
                    self.store.promote_staged(dataset, candidate.partition, item.tag, durable=False)
                raw_written += _write_raw(candidate.raw_files)
            # The renames and raw files of the whole batch reach the disk together.
            self.store.sync()
            for root in {path.parent.parent for path in raw_written}:
                sync_filesystem(root)
        with timings.step("schema artefact"):
            schema = self._write_schema(request.spec, request.candidates, write=bool(changed))
        assert item.report is not None
        return PublishResult(
            spec=request.spec,
            audit=item.report,
            partitions=item.outcomes,
            load=load,
            lake_path=self.store.dataset_path(dataset),
            schema=schema,
            repaired=item.repaired,
            timings=dict(timings),
            load_id=load_id,
        )

    # ------------------------------------------------------------------ steps
    def _lock(self, conn: psycopg.Connection, requests: Sequence[PublishRequest]) -> None:
        keys = sorted(
            f"publish:{request.spec.qualified_name}:{candidate.label}"
            for request in requests
            for candidate in request.candidates
        )
        conn.execute(
            "SELECT pg_advisory_lock(hashtextextended(k, 0)) FROM (SELECT unnest(%s::text[]) AS k ORDER BY 1) s",
            (keys,),
        )
        conn.commit()

    def _records(
        self, conn: psycopg.Connection, spec: TableSpec, labels: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        rows = conn.execute(
            sql.SQL(
                "SELECT lake_partition, content_sha256, row_count, series_count, load_id FROM {} "
                "WHERE table_schema = %s AND table_name = %s AND lake_partition = ANY(%s)"
            ).format(self.records_table.sql()),
            (spec.schema, spec.name, list(labels)),
        ).fetchall()
        conn.commit()
        return {
            row[0]: {
                "content_sha256": row[1],
                "row_count": row[2],
                "series_count": row[3],
                "load_id": str(row[4]),
            }
            for row in rows
        }

    def _recover(
        self, spec: TableSpec, candidates: Sequence[Candidate], records: Mapping[str, Mapping[str, Any]]
    ) -> list[str]:
        """Finish what an interrupted publish committed; drop what it did not. Returns repaired labels."""
        repaired = []
        for candidate in candidates:
            self.store.remove_orphan_temporaries(spec.qualified_name, candidate.partition)
            committed = records.get(candidate.label, {}).get("load_id")
            for tag in self.store.staged_tags(spec.qualified_name, candidate.partition):
                if tag == committed:
                    self.store.promote_staged(spec.qualified_name, candidate.partition, tag)
                    repaired.append(candidate.label)
                else:
                    self.store.discard_staged(spec.qualified_name, candidate.partition, tag)
        return repaired

    def _require_lake_in_step(
        self, spec: TableSpec, candidates: Sequence[Candidate], records: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Upserts build on the published lake partition: it must be the one PostgreSQL's record names."""
        for candidate in candidates:
            record = records.get(candidate.label)
            if record is not None and not self._lake_matches(spec, candidate, record["content_sha256"]):
                raise DataValidationError(
                    f"{spec.qualified_name} partition {candidate.label}: the lake file does not match its publish"
                    f" record (load {record['load_id']}); an interrupted publish lost its staged file. Nothing was"
                    " published. Rebuild the lake partition from PostgreSQL (or restore it) before loading more files"
                    " into it."
                )

    def _stage(self, spec: TableSpec, candidate: Candidate, tag: str, mode: Mode) -> str:
        dataset = spec.qualified_name
        if isinstance(candidate.data, Path):
            if mode == "upsert":
                raise ValueError(f"{dataset}: upsert publishes Arrow candidates, not files.")
            return self.store.stage_partition_file(dataset, candidate.partition, candidate.data, tag)
        table = spec.conform(candidate.data)
        if mode == "upsert" and self.store.has_partition(dataset, candidate.partition):
            table = _upsert(spec, self._read_published(spec, candidate.partition), table)
        return self.store.write_staged_partition(
            dataset, candidate.partition, _sorted(spec, table), tag, check_layout=False, durable=False
        )

    def _read_published(self, spec: TableSpec, partition: Mapping[str, str]) -> pa.Table:
        table = self.store.read_partition(spec.qualified_name, partition)
        return _with_partition_columns(spec, table, partition)

    def _published_sources(
        self,
        spec: TableSpec,
        candidates: Sequence[Candidate],
        records: Mapping[str, Mapping[str, Any]],
        digests: Mapping[str, str],
    ) -> _PublishedSources:
        """Where the published values of the partitions whose candidate differs from its record are read:
        the lake file where it is the version the record names, else PostgreSQL's rows in the partition's
        scope (committed with the record). A partition equal to its record loses nothing."""
        sources = _PublishedSources()
        for candidate in candidates:
            record = records.get(candidate.label)
            if record is None or record["content_sha256"] == digests[candidate.label]:
                continue
            if self._lake_matches(spec, candidate, record["content_sha256"]):
                path = self.store.partition_path(spec.qualified_name, candidate.partition)
                sources.files.append((candidate.partition, path))
            else:
                sources.in_postgres.append(candidate)
        return sources

    def _audit(
        self,
        spec: TableSpec,
        candidates: Sequence[Candidate],
        staged: Mapping[str, str],
        records: Mapping[str, Mapping[str, Any]],
        rules: Sequence[AuditRule],
        relations: Mapping[str, Any] | None,
        published_sources: _PublishedSources | None,
    ) -> tuple[AuditReport, dict[str, tuple[int, int]]]:
        """Run the audit; the shrink rules only with `published_sources` (None with allow_shrink or upsert).

        Returns the report and each partition's (rows, series) from one per-series aggregate of the
        candidate, which the shrink rules read too.
        """
        guard = published_sources is not None
        counted = counted_value_columns(spec) if guard else []
        con = duckdb.connect()
        try:
            con.sql("SET threads = 2")
            relation = self._candidate_sql(spec, candidates, staged, con)
            published = pa.table(
                {
                    PARTITION_COLUMN: pa.array(list(records), pa.string()),
                    "row_count": pa.array([r["row_count"] for r in records.values()], pa.int64()),
                    "series_count": pa.array([r["series_count"] for r in records.values()], pa.int64()),
                }
            )
            # Registered after `candidate`, in this order: each is materialized from the ones before it.
            extra: dict[str, Any] = {
                "published": published,
                CANDIDATE_SERIES: series_counts_sql(spec, "candidate", counted, with_rows=True),
            }
            all_rules = [*spec_rules(spec), *rules]
            if published_sources is not None:
                all_rules.append(shrink_rule(spec))
                parts = []
                if published_sources.files and counted:
                    scan = partition_files_sql(
                        con, self.store, spec, published_sources.files, name="published_files"
                    )
                    present = {str(row[0]) for row in con.sql(f"DESCRIBE {scan}").fetchall()}
                    parts.append(series_counts_sql(spec, f"({scan})", counted, present=present))
                if published_sources.in_postgres and counted:
                    con.register(
                        "published_postgres",
                        self._postgres_series_counts(spec, published_sources.in_postgres, counted),
                    )
                    parts.append("SELECT * FROM published_postgres")
                if parts:
                    extra[PUBLISHED_SERIES] = " UNION ALL BY NAME ".join(parts)
                    all_rules.append(lost_values_rule(spec))
            report = run_audit(
                spec,
                relation,
                all_rules,
                relations={**extra, **(relations or {})},
                connection=con,
            )
            counts = {
                row[0]: (int(row[1]), int(row[2]) if spec.series_columns else 1)
                for row in con.sql(
                    f"SELECT {PARTITION_COLUMN}, sum({SERIES_ROWS}), count(*) FROM {CANDIDATE_SERIES} GROUP BY 1"
                ).fetchall()
            }
        finally:
            con.close()
        return report, counts

    def _postgres_series_counts(
        self, spec: TableSpec, candidates: Sequence[Candidate], counted: Sequence[str]
    ) -> pa.Table:
        """`series_counts_sql` of PostgreSQL's rows in the candidates' scopes (one query for them all); a
        column the table does not have yet counts 0."""
        table = TableName(spec.schema, spec.name)
        grouping = series_key_columns(spec)
        with connect(self.settings) as conn:
            present = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (spec.schema, spec.name),
                ).fetchall()
            }
            measures = [
                sql.SQL("count({})").format(sql.Identifier(name)) if name in present else sql.SQL("0")
                for name in counted
            ]
            selects, params = [], []
            for candidate in candidates:
                condition, values = scope_condition(candidate.scope)
                selects.append(
                    sql.SQL(
                        "SELECT %s::text, {columns} FROM {table} WHERE {condition} GROUP BY {grouping}"
                    ).format(
                        columns=sql.SQL(", ").join([*(sql.Identifier(n) for n in grouping), *measures]),
                        table=table.sql(),
                        condition=condition,
                        grouping=sql.SQL(", ").join([sql.SQL("1"), *(sql.Identifier(n) for n in grouping)]),
                    )
                )
                params += [candidate.label, *values]
            found = conn.execute(sql.SQL(" UNION ALL ").join(selects), params).fetchall()
        names = [PARTITION_COLUMN, *grouping, *counted]
        schema = pa.schema(
            [
                (PARTITION_COLUMN, pa.string()),
                *((name, spec.column(name).arrow_type) for name in grouping),
                *((name, pa.int64()) for name in counted),
            ]
        )
        return pa.table({name: [row[i] for row in found] for i, name in enumerate(names)}, schema=schema)

    def _candidate_sql(
        self,
        spec: TableSpec,
        candidates: Sequence[Candidate],
        staged: Mapping[str, str],
        con: duckdb.DuckDBPyConnection,
    ) -> str:
        """SQL for the staged candidate rows with their partition columns and `lake_partition` restored."""
        files = [(c.partition, staged[c.label]) for c in candidates]
        return partition_files_sql(con, self.store, spec, files, name="candidate_files")

    def _reject(self, item: _Prepared) -> str:
        """Keep the refused candidate and its report under `rejected/<table>/<time>-<load>/`."""
        spec, candidates, staged, tag = item.request.spec, item.request.candidates, item.staged, item.tag
        assert item.report is not None
        report = item.report
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        folder = self.rejected_root / spec.qualified_name / f"{stamp}-{tag[:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        for candidate in candidates:
            name = candidate.label.replace("/", "__")
            if candidate.label in staged:
                self._keep_rejected(staged.pop(candidate.label), folder / f"{name}.parquet")
            for path, body in candidate.raw_files.items():
                (folder / f"{name}__{path.name}").write_bytes(body)
        write_atomic(folder / "report.json", report.to_json().encode("utf-8"))
        return str(folder)

    def _keep_rejected(self, staged_path: str, target: Path) -> None:
        """Move a refused staged file to the local `rejected/` folder (downloaded from object storage)."""
        if self.store.is_local:
            shutil.move(staged_path, target)
            return
        pafs.copy_files(
            staged_path,
            str(target),
            source_filesystem=self.store.filesystem,
            destination_filesystem=pafs.LocalFileSystem(),
        )
        self.store.filesystem.delete_file(staged_path)

    def _lake_matches(self, spec: TableSpec, candidate: Candidate, digest: str) -> bool:
        path = self.store.partition_path(spec.qualified_name, candidate.partition)
        exists = (
            os.path.exists(path)
            if self.store.is_local
            else self.store.has_partition(spec.qualified_name, candidate.partition)
        )
        return exists and self.store.file_sha256(path) == digest

    def _commit(
        self,
        request: PublishRequest,
        changed: Sequence[tuple[Candidate, PartitionOutcome]],
        load_id: uuid.UUID,
        timings: StepTimes,
    ) -> LoadResult:
        spec, keep_history, mode = request.spec, request.keep_history, request.mode
        """One merge of every changed partition's rows, with the publish records, in one transaction."""
        tables = []
        for candidate, _ in changed:
            if isinstance(candidate.data, Path):
                tables.append(spec.conform(pq.read_table(candidate.data)))
            else:
                tables.append(spec.conform(candidate.data))
        data = pa.concat_tables(tables) if tables else spec.empty()
        scopes = coalesce_scopes([candidate.scope for candidate, _ in changed]) if mode == "replace" else None

        def write_records(cur: psycopg.Cursor, result: LoadResult) -> None:
            if request.before_commit is not None:
                request.before_commit(cur)
            outcomes = [outcome for _, outcome in changed]
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} AS p (table_schema, table_name, lake_partition, content_sha256, row_count,"
                    " series_count, load_id, published_at)"
                    " SELECT %s, %s, u.label, u.digest, u.row_count, u.series_count, %s, now()"
                    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
                    " AS u(label, digest, row_count, series_count)"
                    " ON CONFLICT (table_schema, table_name, lake_partition) DO UPDATE SET"
                    " content_sha256 = EXCLUDED.content_sha256, row_count = EXCLUDED.row_count,"
                    " series_count = EXCLUDED.series_count, load_id = EXCLUDED.load_id,"
                    " published_at = EXCLUDED.published_at"
                ).format(self.records_table.sql()),
                (
                    spec.schema,
                    spec.name,
                    load_id,
                    [o.label for o in outcomes],
                    [o.content_sha256 for o in outcomes],
                    [o.rows for o in outcomes],
                    [o.series for o in outcomes],
                ),
            )

        with timings.step("merge"):
            loader = WarehouseLoader(self.settings)
            return loader.merge(
                TableName(spec.schema, spec.name),
                data,
                key=list(spec.primary_key),
                schema=spec.inferred_schema(),
                keep_history=keep_history,
                delete_missing_in=scopes,
                before_commit=write_records,
                key_after_initial_copy=spec.key_after_initial_copy,
            )

    def _write_schema(
        self, spec: TableSpec, candidates: Sequence[Candidate], *, write: bool
    ) -> InferredSchema:
        """The dataset's inferred-schema artefact (statistics of this run's partitions); written only when a
        partition changed, so an unchanged re-run rewrites nothing."""
        tables = [spec.conform(c.data) for c in candidates if isinstance(c.data, pa.Table)]
        if tables and len(tables) == len(candidates):
            schema = infer_arrow(
                pa.concat_tables(tables),
                primary_key=list(spec.primary_key),
                source=spec.qualified_name,
                detect_primary_key=False,
                verify_primary_key=False,  # the audit's unique-key rule passed on these rows
            )
        else:
            schema = spec.inferred_schema()
        if write or self.store.read_inferred_schema(spec.qualified_name) is None:
            self.store.write_inferred_schema(spec.qualified_name, schema)
        return schema


# ---------------------------------------------------------------------------------------------------------
# Rules and SQL pieces that depend on the publish records


def series_key_columns(spec: TableSpec) -> list[str]:
    """The columns a partition's values are counted by: the spec's series, else its key (one row each)."""
    return list(spec.series_columns or spec.primary_key)


def counted_value_columns(spec: TableSpec) -> list[str]:
    """Every column outside the key and the series: those whose non-NULL values may not go missing."""
    grouping = set(series_key_columns(spec))
    return [name for name in spec.value_columns() if name not in grouping]


def series_counts_sql(
    spec: TableSpec,
    source: str,
    counted: Sequence[str],
    *,
    present: set[str] | None = None,
    with_rows: bool = False,
) -> str:
    """Per partition and series (`series_key_columns`): each counted column's non-NULL values (0 for a
    column `source` lacks, such as one added to the table after an older file was written), and with
    `with_rows` the series' rows as `SERIES_ROWS`."""
    keys = ", ".join([PARTITION_COLUMN, *(quote(name) for name in series_key_columns(spec))])
    measures = [f"count(*) AS {SERIES_ROWS}"] if with_rows else []
    for name in counted:
        present_here = present is None or name in present
        measures.append(
            f"{f'count({quote(name)})' if present_here else 'CAST(0 AS BIGINT)'} AS {quote(name)}"
        )
    return f"SELECT {', '.join([keys, *measures])} FROM {source} GROUP BY {keys}"


def shrink_rule(spec: TableSpec) -> AuditRule:
    """A re-fetched partition may not have fewer rows or series than its published version."""
    series = "count(*)" if spec.series_columns else "1"
    return AuditRule(
        name=SHRINK_RULE,
        description=(
            "a re-fetched partition has at least the rows and series of its published version"
            " (re-run with allow_shrink to accept a smaller one)"
        ),
        sql=(
            f"WITH c AS (SELECT {PARTITION_COLUMN}, sum({SERIES_ROWS}) AS candidate_rows, {series}"
            f" AS candidate_series FROM {CANDIDATE_SERIES} GROUP BY 1)"
            f" SELECT p.{PARTITION_COLUMN}, p.row_count AS published_rows,"
            f" coalesce(c.candidate_rows, 0) AS candidate_rows, p.series_count AS published_series,"
            f" coalesce(c.candidate_series, 0) AS candidate_series"
            f" FROM published p LEFT JOIN c USING ({PARTITION_COLUMN})"
            f" WHERE coalesce(c.candidate_rows, 0) < p.row_count OR coalesce(c.candidate_series, 0) < p.series_count"
            f" ORDER BY 1"
        ),
    )


def lost_values_rule(spec: TableSpec) -> AuditRule:
    """No published value may be replaced by a missing one: per partition, series and value column, the
    candidate has at least the non-NULL values of the published version (`PUBLISHED_SERIES`).

    Each offending row names the partition, the series (`country=de/production_type=Solar`, or the key of
    a row for tables without series), the column and how many values would be lost.
    """
    counted = ", ".join(quote(name) for name in counted_value_columns(spec))
    grouping = series_key_columns(spec)
    keys = ", ".join([PARTITION_COLUMN, *(quote(name) for name in grouping)])
    on = " AND ".join(
        [
            f"p.{PARTITION_COLUMN} = c.{PARTITION_COLUMN}",
            *(f"p.{quote(name)} IS NOT DISTINCT FROM c.{quote(name)}" for name in grouping),
            "p.value_column = c.value_column",
        ]
    )
    label = (
        "concat_ws('/', "
        + ", ".join(
            f"{sql_text(name + '=')} || coalesce(CAST(p.{quote(name)} AS VARCHAR), 'NULL')"
            for name in grouping
        )
        + ")"
        if grouping
        else "'(whole partition)'"
    )
    return AuditRule(
        name=f"{SHRINK_RULE}:values",
        description=(
            "no published value is replaced by a missing one: per series and column, a re-fetched partition"
            " has at least the non-NULL values of its published version (re-run with allow_shrink to accept"
            " fewer)"
        ),
        counted_as="series and column(s) losing values",
        sql=(
            f"WITH p AS (UNPIVOT (SELECT {keys}, {counted} FROM {PUBLISHED_SERIES}) ON {counted}"
            f" INTO NAME value_column VALUE published_values),"
            f" c AS (UNPIVOT (SELECT {keys}, {counted} FROM {CANDIDATE_SERIES}) ON {counted}"
            f" INTO NAME value_column VALUE candidate_values)"
            f" SELECT p.{PARTITION_COLUMN}, {label} AS series, p.value_column, p.published_values,"
            f" coalesce(c.candidate_values, 0) AS candidate_values,"
            f" p.published_values - coalesce(c.candidate_values, 0) AS lost_values"
            f" FROM p LEFT JOIN c ON {on}"
            f" WHERE coalesce(c.candidate_values, 0) < p.published_values"
            f" ORDER BY lost_values DESC, 1, 2, 3"
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Reading what was published


def read_published(store: ParquetStore, spec: TableSpec, partitions: Sequence[Mapping[str, str]]) -> pa.Table:
    """The published lake partitions that exist, as one table with the spec's columns (in the given order)."""
    table = store.read_partitions(spec.qualified_name, partitions)
    if table.num_rows == 0 and not table.column_names:
        return spec.empty()
    return spec.conform(cast_partition_columns(spec, table))


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _sorted(spec: TableSpec, table: pa.Table) -> pa.Table:
    if not spec.primary_key or table.num_rows == 0:
        return table
    return table.take(pc.sort_indices(table, [(name, "ascending") for name in spec.primary_key]))


def _upsert(spec: TableSpec, published: pa.Table, incoming: pa.Table) -> pa.Table:
    """The published partition with `incoming` rows replacing those with the same key."""
    con = duckdb.connect()
    try:
        con.register("published", spec.conform(published))
        con.register("incoming", incoming)
        on = " AND ".join(f"p.{quote(k)} = i.{quote(k)}" for k in spec.primary_key)
        kept = con.sql(f"SELECT p.* FROM published p ANTI JOIN incoming i ON {on}").to_arrow_table()
    finally:
        con.close()
    return pa.concat_tables([spec.conform(kept), incoming])


def _with_partition_columns(spec: TableSpec, table: pa.Table, partition: Mapping[str, str]) -> pa.Table:
    for key, value in partition.items():
        if key in spec.column_names and key not in table.column_names:
            column = pa.array([value] * table.num_rows, pa.string()).cast(spec.column(key).arrow_type)
            table = table.append_column(key, column)
    return table


def _write_raw(files: Mapping[Path, bytes]) -> list[Path]:
    """Publish raw documents (renamed into place; synced by the caller with the batch); an identical
    existing file is left alone (nothing rewritten). Returns the files written."""
    written = []
    for path, body in files.items():
        try:
            if path.read_bytes() == body:
                continue
        except FileNotFoundError:
            pass
        write_replace(path, body)
        written.append(path)
    return written


# How a source's ingest hands its requests over: audit, then raw files, lake and PostgreSQL in step.
Publish = Callable[[Sequence[PublishRequest]], list[PublishResult]]
