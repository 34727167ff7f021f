"""The one table-asset factory: every table the platform publishes is an asset built here.

Keep data logic out of this module. A source declares its tables (`TableDeclaration`: the `TableSpec`, its
audit rules, description and non-blocking checks) and supplies a compute function (a thin adapter around a
function of the source that fetches, reads or aggregates without Dagster). The factory builds the rest, the
same way for every source:

- the asset specs (the tables and any raw assets the step also writes) and the check specs (one blocking
  check per audit rule family, `lake_matches_postgres`, the declared warnings);
- the publish call: the compute hands its `PublishRequest`s to `publish`, which audits the candidates and
  only then writes raw files, lake and PostgreSQL in step (`energy_assets.warehouse.publish`), honouring the
  run's shrink override tag;
- the materialize results: metadata, previews, key figures and check results, including those of a refused
  audit (recorded before the step fails, so the UI names partition, rule and first rows);
- the one error policy: transient failures (no answer, a deadline, 429, 5xx) are raised for the step's
  retry policy; everything else (bad data, bad configuration) fails at once without retries, naming the
  partitions of the run.

A mart (`mart_asset`) is the case of one table computed from published tables, published under a lock so
that two runs of it queue, with the shrink rule off.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import dagster as dg
import psycopg
import pyarrow as pa
import requests
from psycopg.errors import TransactionRollback

from energy_assets.defs.policy import MARTS_GROUP, NETWORK_RETRY, POSTGRES_POOL
from energy_assets.defs.publishing import (
    allow_shrink,
    audit_check_results,
    audit_check_specs,
    make_publisher,
    published_result,
    refusal_failure,
    table_asset_key,
)
from energy_assets.defs.schemas import table_schema_from_inferred
from energy_assets.warehouse.audit import AuditFailedError, AuditRule
from energy_assets.warehouse.publish import Candidate, Publish, PublishRequest, PublishResult, exclusive
from energy_assets.warehouse.table_spec import TableSpec

TABLE_KINDS = frozenset({"python", "parquet", "postgres"})


@dataclass(frozen=True)
class TableDeclaration:
    """A table an asset publishes: its spec, what it is, its own audit rules and non-blocking checks."""

    spec: TableSpec
    description: str
    rules: Sequence[AuditRule] = ()
    # Non-blocking checks the compute reports itself (name -> description), e.g. physical signs.
    warnings: Mapping[str, str] = field(default_factory=dict)
    # The "no shrinking partition" rule (off for marts and upserted tables, whose partitions may shrink).
    shrink: bool = True
    deps: Sequence[dg.AssetKey] = ()
    kinds: frozenset[str] = TABLE_KINDS

    @property
    def key(self) -> dg.AssetKey:
        return table_asset_key(self.spec)


@dataclass
class TableOutput:
    """One published table of a run: its request, what the publish did, and what the UI should show."""

    request: PublishRequest
    result: PublishResult
    preview: pa.Table | None = None
    figures: Mapping[str, Any] = field(default_factory=dict)
    extra_checks: Sequence[dg.AssetCheckResult] = ()


@dataclass
class AssetOutput:
    """What a compute function returns: the published tables (declaration order) and raw assets' metadata."""

    tables: list[TableOutput]
    raw: Mapping[dg.AssetKey, Mapping[str, Any]] = field(default_factory=dict)
    partitions_in_run: int = 1


Compute = Callable[[dg.AssetExecutionContext, Publish], AssetOutput | dg.MaterializeResult]


def is_transient(error: BaseException) -> bool:
    """A failure the step's retry may cure: no answer, a cut body, rate limiting or a server error that the
    client has not already retried (`client_retried`: it spent its own retries or deadline on it).

    An error may say so itself (`transient`); PostgreSQL being unreachable or restarting, a deadlock or a
    serialization failure (also behind the project's `DatabaseError`) is transient; API errors carry the
    HTTP `status` (None: no answer).
    Everything else (bad data, bad configuration, a bug) fails at once: a retry would meet it again.
    """
    declared = getattr(error, "transient", None)
    if isinstance(declared, bool):
        return declared
    if _database_unavailable(error):
        return True
    if getattr(error, "client_retried", False):
        return False
    if hasattr(error, "status") and not isinstance(error, OSError):
        status = getattr(error, "status")  # noqa: B009 (an API error's HTTP status; None: no answer)
        return status is None or status == 429 or (isinstance(status, int) and status >= 500)
    return isinstance(error, ConnectionError | TimeoutError | requests.RequestException)


def _database_unavailable(error: BaseException) -> bool:
    """PostgreSQL unreachable or restarting, or a deadlock or serialization failure: worth another try."""
    retryable = (psycopg.OperationalError, TransactionRollback)
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, retryable):
            return True
        cause = cause.__cause__
    return False


@contextmanager
def failures_by_kind(partitions: str) -> Iterator[None]:
    """The one error policy: transient errors go to the step's retry policy, the rest fail at once."""
    try:
        yield
    except (dg.Failure, AuditFailedError):
        raise
    except Exception as error:
        if is_transient(error):
            raise
        where = f"{partitions}: " if partitions else ""
        raise dg.Failure(
            description=f"{where}{type(error).__name__}: {error}", allow_retries=False
        ) from error


def static_metadata(spec: TableSpec) -> dict[str, Any]:
    """Metadata known before any data: the table's name and its column schema as in PostgreSQL."""
    return {
        "dagster/column_schema": table_schema_from_inferred(spec.inferred_schema(), spec.descriptions()),
        "dagster/table_name": spec.qualified_name,
    }


def table_check_specs(tables: Sequence[TableDeclaration]) -> list[dg.AssetCheckSpec]:
    return [
        check
        for table in tables
        for check in audit_check_specs(
            table.key, table.spec, table.rules, shrink=table.shrink, warnings=table.warnings
        )
    ]


def table_asset(
    *,
    name: str,
    tables: Sequence[TableDeclaration],
    compute: Compute,
    group_name: str,
    raw: Sequence[dg.AssetSpec] = (),
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_keys: Sequence[str] = (),
    config_schema: Mapping[str, Any] | None = None,
    network: bool = False,
    lock: bool = False,
) -> dg.AssetsDefinition:
    """The asset (one step) that computes and publishes `tables`, and writes the `raw` assets beside them.

    `network`: the step calls an external API, so transient failures are retried with the platform's
    backoff. `lock`: compute and publish under the tables' lock (two runs queue; an older computation
    never overwrites a newer one), as marts do (one table).
    """
    if lock and len(tables) != 1:
        raise ValueError("lock: a locked asset publishes exactly one table")
    keys = [table.key for table in tables]
    check_specs = table_check_specs(tables)
    specs = [
        *(spec.replace_attributes(group_name=group_name) for spec in raw),
        *(
            dg.AssetSpec(
                table.key,
                deps=[*table.deps, *(spec.key for spec in raw)],
                group_name=group_name,
                kinds=set(table.kinds),
                description=table.description,
                metadata=static_metadata(table.spec),
            )
            for table in tables
        ),
    ]

    @dg.multi_asset(
        name=name,
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def is not None else None,
        pool=POSTGRES_POOL,
        retry_policy=NETWORK_RETRY if network else None,
        required_resource_keys={"lake", "postgres", *resource_keys},
        config_schema=config_schema,
    )
    def _asset(context: dg.AssetExecutionContext) -> Iterator[Any]:
        if lock:
            with exclusive(context.resources.postgres.settings(), tables[0].spec.qualified_name):
                yield from _run(context)
        else:
            yield from _run(context)

    def _run(context: dg.AssetExecutionContext) -> Iterator[Any]:
        lake, postgres = context.resources.lake, context.resources.postgres
        shrink_allowed = allow_shrink(context.op_execution_context)

        def publish(requests: Sequence[PublishRequest]) -> list[PublishResult]:
            # The database is reached only once there is something to publish (a dead API fails first).
            return make_publisher(lake, postgres).publish_all(
                [replace(r, allow_shrink=True) if shrink_allowed else r for r in requests]
            )

        try:
            with failures_by_kind(_partitions_of(context)):
                output = compute(context, publish)
        except AuditFailedError as refused:
            by_table = {report.table: report for report in refused.reports}
            for table in tables:
                report = by_table.get(table.spec.qualified_name)
                if report is not None:
                    yield from audit_check_results(table.key, report, check_specs)
            raise refusal_failure(refused) from refused
        if isinstance(output, dg.MaterializeResult):
            yield output
            return
        for key, metadata in output.raw.items():
            yield dg.MaterializeResult(asset_key=key, metadata=dict(metadata))
        for key, published in zip(keys, output.tables, strict=True):
            yield published_result(
                key,
                published.request,
                published.result,
                check_specs,
                lake=lake,
                postgres=postgres,
                preview=published.preview,
                metadata=published.figures,
                partitions_in_run=output.partitions_in_run,
                extra_checks=published.extra_checks,
            )

    return _asset


def _partitions_of(context: dg.AssetExecutionContext) -> str:
    if not context.has_partition_key_range:
        return ""
    window = context.partition_key_range
    return (
        f"partition {window.start}"
        if window.start == window.end
        else f"partitions {window.start}..{window.end}"
    )


@dataclass
class MartOutput:
    """What a mart's compute function returns: all rows, split into lake partitions, plus key figures."""

    table: pa.Table
    candidates: list[Candidate]
    metadata: dict[str, Any] = field(default_factory=dict)


MartCompute = Callable[[dg.AssetExecutionContext], MartOutput]


def mart_asset(
    *,
    spec: TableSpec,
    deps: Sequence[dg.AssetKey],
    description: str,
    compute: MartCompute,
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_keys: Sequence[str] = (),
    config_schema: Mapping[str, Any] | None = None,
) -> dg.AssetsDefinition:
    """A mart: compute its rows from published tables, publish them (audit first) under the mart's lock.

    A recomputed mart partition may hold fewer rows than before (a series left the inputs), so marts
    are published with the shrink rule off; every other rule of the spec applies.
    """
    declaration = TableDeclaration(
        spec,
        description,
        shrink=False,
        deps=deps,
        kinds=frozenset({"python", "duckdb", "parquet", "postgres"}),
    )

    def compute_and_publish(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput:
        output = compute(context)
        request = PublishRequest(spec, output.candidates, allow_shrink=True)
        [result] = publish([request])
        in_run = len(context.partition_keys) if partitions_def is not None else 1
        return AssetOutput(
            [TableOutput(request, result, output.table, output.metadata)], partitions_in_run=in_run
        )

    return table_asset(
        name="__".join(declaration.key.path),
        tables=[declaration],
        compute=compute_and_publish,
        group_name=MARTS_GROUP,
        partitions_def=partitions_def,
        resource_keys=resource_keys,
        config_schema=config_schema,
        lock=True,
    )
